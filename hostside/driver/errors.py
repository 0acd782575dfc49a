"""Errors raised by the Driver and its backends. Each message names the problem and the fix."""


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
