"""Driver API: numpy arrays in GPU-visible memory, QPU programs and launches, on the Raspberry
Pi's V3D (`hw`) or on the VideoCore IV emulator (`emu`). See hostside.driver.driver.Driver."""
from .backend import Allocation, Backend, LaunchStats
from .driver import (CACHE_BOTH, CACHE_HOST, CACHE_NONE, CACHE_VC, DEFAULT_CODE_AREA_SIZE,
                     DEFAULT_DATA_AREA_SIZE, DEFAULT_MAX_THREADS, MAX_THREADS, Array, Driver,
                     Program)
from .errors import (DriverClosedError, DriverError, ForeignObjectError, GpuMemoryTooSmallError,
                     HardwareUnavailableError, HwPermissionError, KmsOwnsV3dError,
                     LaunchTimeoutError, MailboxError, MailboxTimeoutError, MailboxUnavailableError,
                     NotAProgramError,
                     NotRaspberryPiError, OutOfGpuMemoryError, QpuEnableRefusedError,
                     QpuExecuteError, ThreadCountError, UniformsLayoutError, UnsupportedBoardError)

__all__ = [
    "Allocation", "Array", "Backend", "Driver", "LaunchStats", "MAX_THREADS", "Program",
    "CACHE_NONE", "CACHE_HOST", "CACHE_VC", "CACHE_BOTH", "DEFAULT_CODE_AREA_SIZE",
    "DEFAULT_DATA_AREA_SIZE", "DEFAULT_MAX_THREADS",
    "DriverClosedError", "DriverError", "ForeignObjectError", "GpuMemoryTooSmallError",
    "HardwareUnavailableError", "HwPermissionError", "KmsOwnsV3dError", "LaunchTimeoutError",
    "MailboxError", "MailboxTimeoutError", "MailboxUnavailableError", "NotAProgramError",
    "NotRaspberryPiError",
    "OutOfGpuMemoryError", "QpuEnableRefusedError", "QpuExecuteError", "ThreadCountError",
    "UniformsLayoutError", "UnsupportedBoardError",
]
