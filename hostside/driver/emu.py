"""The `emu` backend: QPU programs run on vc4infer's VideoCore IV emulator (vc4infer.emu).

    backend = EmuBackend(memory_bytes=64 << 20, clock_hz=400e6, strict=True, trace=[0])

Every emu backend of a process allocates in one shared emulated GPU memory (as every Driver on a
Pi shares the board's): bus addresses are unique across backends, and a program may read another
backend's live buffers. Options: `memory_bytes` this backend may hold at once (it must fit the
emulated bus address space, which ends below 4 GiB); `clock_hz` the V3D clock the timing model
assumes (250e6, 300e6 or 400e6: Pi 1/2, Pi Zero, Pi 3); `strict` raises UndefinedBehaviourError
on behaviour the hardware leaves undefined; `trace` QPU numbers whose every instruction is
recorded (`trace_records`, or passed to `trace_callback`); `max_instructions` / `max_cycles` a
budget per launch (BudgetExceededError beyond it); `max_launch_seconds` the modelled time a
launch may run (1 s, as on a Pi; ModelledTimeLimitError beyond it); `fast_path=False` runs
every instruction through the emulator's general loop (slower; for checking the fast path,
vc4infer.emu.fastpath, against it).
LaunchStats figures are modelled, not measured.
"""
from __future__ import annotations

import weakref
from typing import Callable, List, Optional, Sequence, Tuple

from hostside.driver.backend import PI_LAUNCH_LIMIT_SECONDS, Allocation, Backend, LaunchStats
from hostside.driver.errors import DriverClosedError, DriverError, OutOfGpuMemoryError
from vc4infer.emu.machine import Machine
from vc4infer.emu.memory import LOW_RESERVED_BYTES, SHARED_BYTES, shared_memory
from vc4infer.emu.timing import CLOCKS_HZ, DEFAULT_CLOCK_HZ
from vc4infer.emu.trace import TraceRecord
from vc4infer.emu.v3d import EmulatedV3D
from vc4infer.qpu.disasm import line_for


class EmuBackend(Backend):
    """GPU memory and QPU launches on the emulator."""

    name = "emu"
    modelled = True

    def __init__(self, memory_bytes: int = 256 << 20, clock_hz: float = DEFAULT_CLOCK_HZ,
                 strict: bool = False, trace: Sequence[int] = (),
                 max_instructions: Optional[int] = None, max_cycles: Optional[int] = None,
                 trace_callback: Optional[Callable[[TraceRecord], None]] = None,
                 fast_path: bool = True,
                 max_launch_seconds: Optional[float] = PI_LAUNCH_LIMIT_SECONDS):
        if float(clock_hz) not in CLOCKS_HZ:
            raise DriverError(f"clock_hz={clock_hz}: the VideoCore IV runs its V3D at "
                              f"{', '.join(f'{c:.0f}' for c in CLOCKS_HZ)} Hz; pick one of them")
        for name, value in (("max_instructions", max_instructions), ("max_cycles", max_cycles),
                            ("max_launch_seconds", max_launch_seconds)):
            if value is not None and value <= 0:
                raise DriverError(f"{name}={value}: a budget must be a positive number (or None)")
        if memory_bytes % 4096 or not 0 < memory_bytes <= SHARED_BYTES - LOW_RESERVED_BYTES:
            raise DriverError(f"memory_bytes={memory_bytes}: give a multiple of 4096 up to "
                              f"{SHARED_BYTES - LOW_RESERVED_BYTES}: the emulated GPU memory must "
                              "end below 4 GiB of bus address space")
        #: a launch stops once it has run this long in modelled time (ModelledTimeLimitError): as
        #: long as a Pi lets one run by default, so a kernel that never ends costs the host the time
        #: to emulate that, not the execute timeout; None: no modelled limit
        self.max_launch_seconds = max_launch_seconds
        self.memory = shared_memory()
        self.memory_bytes = memory_bytes
        self._owned: dict = {}                 # bus address -> bytes of this backend's buffers
        # a backend dropped without close() gives its buffers back when it is collected
        self._release = weakref.finalize(self, _free_all, self.memory, self._owned)
        self.machine = Machine(self.memory, clock_hz=clock_hz, strict=strict, trace=trace,
                               max_instructions=max_instructions, max_cycles=max_cycles,
                               trace_callback=trace_callback, fast_path=fast_path,
                               describe_instruction=_disassembled)
        #: the V3D register block (hostside.driver.v3d): identity and performance counters
        self.v3d = EmulatedV3D()
        self._closed = False

    @property
    def clock_hz(self) -> float:
        """The V3D clock the timing model assumes."""
        return self.machine.clock_hz

    def _check_open(self) -> None:
        if self._closed:
            raise DriverClosedError("the emu backend was closed; create a new one")

    def alloc(self, nbytes: int, align: int = 4096, label: str = "") -> Allocation:
        self._check_open()
        held = sum(self._owned.values())
        if held + int(nbytes) > self.memory_bytes:
            raise OutOfGpuMemoryError(
                f"cannot allocate {nbytes} bytes ({label or 'unlabelled'}): this emu backend holds "
                f"{held} of its memory_bytes={self.memory_bytes} in {len(self._owned)} buffers; "
                "free buffers or create the backend with a larger memory_bytes")
        bus_address, view = self.memory.alloc(int(nbytes), int(align), label)
        self._owned[bus_address] = int(nbytes)
        return Allocation(bus_address=bus_address, nbytes=int(nbytes), buffer=view, handle=bus_address)

    def free(self, allocation: Allocation) -> None:
        self._check_open()
        self.memory.free(allocation.bus_address)
        del self._owned[allocation.bus_address]

    def execute(self, control: Sequence[Tuple[int, int]], timeout_s: float) -> LaunchStats:
        self._check_open()
        stats = self.machine.run(control, timeout_s, self.max_launch_seconds)
        self.v3d.record_launch(stats)
        return stats

    @property
    def trace_records(self) -> List[TraceRecord]:
        """Trace records of the traced QPUs, oldest first (when no trace_callback was given)."""
        return self.machine.trace_records

    def close(self) -> None:
        """Give this backend's buffers back to the shared memory. Idempotent."""
        self._closed = True
        self._release()


def _disassembled(word: int) -> str:
    """The instruction as the DSL writes it (vc4infer.qpu's disassembler), for the emulator's
    errors and trace records."""
    return line_for(word).text


def _free_all(memory, owned: dict) -> None:
    for bus_address in list(owned):
        memory.free(bus_address)
    owned.clear()
