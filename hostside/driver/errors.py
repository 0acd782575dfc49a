"""The Driver's error classes. They are defined in vc4infer.device, below both the driver and the
emulator (which raises them too); the driver's users find them here as always."""
from vc4infer.device import (  # noqa: F401 - re-exported
    DriverError, DriverClosedError, OutOfGpuMemoryError, LaunchTimeoutError,
    HardwareUnavailableError, ThreadCountError, UniformsLayoutError, NotAProgramError,
    ForeignObjectError, MailboxError, MailboxTimeoutError, QpuExecuteError, NotRaspberryPiError,
    UnsupportedBoardError, MailboxUnavailableError, HwPermissionError, KmsOwnsV3dError,
    QpuEnableRefusedError, GpuMemoryTooSmallError)
