"""The interface between the Driver (hostside.driver.Driver) and the places QPU programs run.

A backend owns GPU-visible memory and launches programs. Two exist: `emu` (hostside.driver.emu,
the VideoCore IV emulator in vc4infer.emu) and `hw` (hostside.driver.hw, a Raspberry Pi's V3D
through the firmware mailbox). The Driver is written only against this module.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

from vc4infer.device import LaunchStats  # noqa: F401 - part of the backend interface


@dataclass
class Allocation:
    """One block of GPU-visible memory.

    `buffer` is a writable buffer (numpy uint8 array or memoryview) of exactly `nbytes` bytes that
    the host reads and writes; the GPU sees the same bytes at bus address `bus_address`.
    """
    bus_address: int
    nbytes: int
    buffer: Any
    handle: Any = None


#: the Linux kernel gives up on any firmware mailbox transaction, execute_qpu included, after 1 s
#: (raspberrypi/linux#4321): no launch on a Pi outlasts it
PI_LAUNCH_LIMIT_SECONDS = 1.0


class Backend(abc.ABC):
    """Where QPU programs run. Subclasses: EmuBackend, HwBackend."""

    name: str = "?"
    #: whether launch times are modelled by the emulator's timing model (emu, and hw on a
    #: simulated board) rather than measured on a V3D
    modelled: bool = False
    #: the V3D clock launches run at (emu: are modelled at), when the backend knows it
    clock_hz: Optional[float] = None
    #: longest a single execute may run before the platform gives up (hw: the firmware's
    #: mailbox timeout; emu: the same, in modelled time); None where there is no such limit. The
    #: scheduler keeps launches under it.
    max_launch_seconds: Optional[float] = None

    @abc.abstractmethod
    def alloc(self, nbytes: int, align: int = 4096, label: str = "") -> Allocation:
        """Allocate `nbytes` of GPU-visible memory aligned to `align` bytes. `label` names the
        buffer in error messages (the emulator reports the nearest buffer of a bad access)."""

    @abc.abstractmethod
    def free(self, allocation: Allocation) -> None:
        """Release an allocation; using it afterwards is an error the backend may detect."""

    @abc.abstractmethod
    def execute(self, control: Sequence[Tuple[int, int]], timeout_s: float) -> LaunchStats:
        """Run one program instance per (uniforms_bus_address, code_bus_address) pair, all at once
        (at most 12), and return when every instance has ended. Raises a DriverError subclass on
        timeout or fault."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything this backend holds. Idempotent."""

    def sync_for_gpu(self, allocation: Allocation) -> None:
        """Make host writes to `allocation` visible to the GPU (cache clean); default: nothing to do."""
        return None

    def sync_for_cpu(self, allocation: Allocation) -> None:
        """Make GPU writes to `allocation` visible to the host (cache invalidate); default: nothing."""
        return None
