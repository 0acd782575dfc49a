"""The `emu` backend: QPU programs run on vc4infer's VideoCore IV emulator (vc4infer.emu).

    backend = EmuBackend(memory_bytes=64 << 20, clock_hz=400e6, strict=True, trace=[0])

Options: `memory_bytes` of emulated GPU memory; `clock_hz` the V3D clock the timing model assumes
(250e6, 300e6 or 400e6: Pi 1/2, Pi Zero, Pi 3); `strict` raises UndefinedBehaviourError on
behaviour the hardware leaves undefined; `trace` QPU numbers whose every instruction is recorded
(`trace_records`, or passed to `trace_callback`); `max_instructions` / `max_cycles` a budget per
launch (BudgetExceededError beyond it); `fast_path=False` runs every instruction through the
emulator's general loop (slower; for checking the fast path, vc4infer.emu.fastpath, against it).
LaunchStats figures are modelled, not measured.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from hostside.driver.backend import Allocation, Backend, LaunchStats
from hostside.driver.errors import DriverClosedError, DriverError
from vc4infer.emu.machine import Machine
from vc4infer.emu.memory import GpuMemory
from vc4infer.emu.timing import CLOCKS_HZ, DEFAULT_CLOCK_HZ
from vc4infer.emu.trace import TraceRecord


class EmuBackend(Backend):
    """GPU memory and QPU launches on the emulator."""

    name = "emu"
    max_launch_seconds = None

    def __init__(self, memory_bytes: int = 256 << 20, clock_hz: float = DEFAULT_CLOCK_HZ,
                 strict: bool = False, trace: Sequence[int] = (),
                 max_instructions: Optional[int] = None, max_cycles: Optional[int] = None,
                 trace_callback: Optional[Callable[[TraceRecord], None]] = None,
                 fast_path: bool = True):
        if float(clock_hz) not in CLOCKS_HZ:
            raise DriverError(f"clock_hz={clock_hz}: the VideoCore IV runs its V3D at "
                              f"{', '.join(f'{c:.0f}' for c in CLOCKS_HZ)} Hz; pick one of them")
        for name, value in (("max_instructions", max_instructions), ("max_cycles", max_cycles)):
            if value is not None and value <= 0:
                raise DriverError(f"{name}={value}: a budget must be a positive number (or None)")
        self.memory = GpuMemory(memory_bytes)
        self.machine = Machine(self.memory, clock_hz=clock_hz, strict=strict, trace=trace,
                               max_instructions=max_instructions, max_cycles=max_cycles,
                               trace_callback=trace_callback, fast_path=fast_path)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise DriverClosedError("the emu backend was closed; create a new one")

    def alloc(self, nbytes: int, align: int = 4096, label: str = "") -> Allocation:
        self._check_open()
        bus_address, view = self.memory.alloc(int(nbytes), int(align), label)
        return Allocation(bus_address=bus_address, nbytes=int(nbytes), buffer=view, handle=bus_address)

    def free(self, allocation: Allocation) -> None:
        self._check_open()
        self.memory.free(allocation.bus_address)

    def execute(self, control: Sequence[Tuple[int, int]], timeout_s: float) -> LaunchStats:
        self._check_open()
        return self.machine.run(control, timeout_s)

    @property
    def trace_records(self) -> List[TraceRecord]:
        """Trace records of the traced QPUs, oldest first (when no trace_callback was given)."""
        return self.machine.trace_records

    def close(self) -> None:
        self._closed = True
