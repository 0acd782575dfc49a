"""What the QPU device layers share, below both the emulator (vc4infer.emu) and the driver
(hostside.driver): the Driver's error classes, which both raise, and the record of one launch.
Each error message names the problem and the fix."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple


@dataclass
class LaunchStats:
    """What one execute cost. Filled by the emulator (modelled figures) or by hw (measured wall time)."""
    backend: str
    n_threads: int
    wall_seconds: float                      # host time the launch took on this machine
    modelled_seconds: Optional[float] = None  # emu only: modelled Pi time at `clock_hz`
    clock_hz: Optional[float] = None
    instructions: Tuple[int, ...] = ()       # per QPU
    cycles: Tuple[int, ...] = ()             # per QPU, modelled
    stalls: dict = field(default_factory=dict)   # cause -> modelled cycles, summed over QPUs
    dma_load_bytes: int = 0
    dma_store_bytes: int = 0
    tmu_bytes: int = 0
    extra: dict = field(default_factory=dict)


class DriverError(Exception):
    """Misuse of the Driver or a failure of the backend underneath it."""


class DriverClosedError(DriverError):
    """The Driver (or an array of it) was used after close()."""


class OutOfGpuMemoryError(DriverError):
    """An allocation does not fit in the GPU memory this Driver may use."""


class LaunchTimeoutError(DriverError):
    """A QPU launch did not finish within its time limit (a hung or too long kernel)."""


class HardwareUnavailableError(DriverError):
    """The `hw` backend cannot run here (not a Pi, Pi 4+, no /dev/vcio, no permission, the
    vc4-kms-v3d driver owns the V3D, too little gpu_mem/CMA). The message says which and how to fix it."""


# --- misuse of the Driver API --------------------------------------------------------------------

class ThreadCountError(DriverError, ValueError):
    """`execute` was asked for fewer than 1 or more than 12 program instances."""


class UniformsLayoutError(DriverError, ValueError):
    """The uniforms given to `execute` do not split into `n_threads` equal rows of 32-bit words,
    or hold values that are not 32-bit words."""


class NotAProgramError(DriverError, TypeError):
    """Something that is not a QPU program was given where one is expected: `program()` takes a
    @qpu kernel, bytes or a uint64 array; `execute()` takes what `program()` returned."""


class ForeignObjectError(DriverError, ValueError):
    """An array or program of one Driver was handed to another Driver."""


# --- failures underneath --------------------------------------------------------------------------

class MailboxError(DriverError):
    """A firmware mailbox property call failed (ioctl error, parse error, malformed answer)."""


class MailboxTimeoutError(MailboxError, TimeoutError):
    """The kernel gave up waiting for the firmware's answer to a mailbox call (its 1 s limit)."""


class QpuExecuteError(DriverError):
    """The firmware answered an execute_qpu request with an unknown failure status."""


# --- why the `hw` backend cannot run here ---------------------------------------------------------

class NotRaspberryPiError(HardwareUnavailableError):
    """This machine is not a Raspberry Pi."""


class UnsupportedBoardError(HardwareUnavailableError):
    """A Raspberry Pi without a VideoCore IV (Pi 4, 400, 5, CM4, CM5: VideoCore VI/VII)."""


class MailboxUnavailableError(HardwareUnavailableError):
    """/dev/vcio (the firmware mailbox) does not exist on this kernel."""


class HwPermissionError(HardwareUnavailableError, PermissionError):
    """/dev/vcio, /dev/vcsm-cma or /dev/mem exist but this user may not open them."""


class KmsOwnsV3dError(HardwareUnavailableError):
    """The Linux vc4 DRM driver (dtoverlay=vc4-kms-v3d or vc4-fkms-v3d) owns the V3D, so the
    firmware refuses QPU work from user space."""


class QpuEnableRefusedError(HardwareUnavailableError):
    """The firmware refused to power on the QPUs (qpu_enable failed)."""


class GpuMemoryTooSmallError(HardwareUnavailableError, OutOfGpuMemoryError):
    """The firmware's GPU memory (gpu_mem) or the kernel's CMA pool cannot hold the request."""
