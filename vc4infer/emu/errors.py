"""Errors the emulator raises. Each is a DriverError, so Driver users catch one family."""
from vc4infer.device import DriverError, LaunchTimeoutError


class EmulatorError(DriverError):
    """Base of the errors a QPU program run on the emulator can cause."""


class MemoryFaultError(EmulatorError):
    """A DMA, TMU, uniform or instruction access outside every live GPU buffer. Nothing was written."""


class DeadlockError(EmulatorError):
    """Every QPU that has not ended waits for something only another waiting QPU could give."""


class BudgetExceededError(EmulatorError):
    """The launch ran past its instruction or cycle budget (a runaway loop, or a budget set too low)."""


class ModelledTimeLimitError(EmulatorError, LaunchTimeoutError):
    """The launch ran past the modelled V3D time one execute may take (on a Pi the mailbox call
    gives up there): a kernel that never ends, or too much work for one launch."""


class UndefinedBehaviourError(EmulatorError):
    """The program does something whose result the hardware leaves undefined (raised in strict mode,
    and always where the hardware would hang or the emulator cannot give any defined result)."""


class StrayReadWarning(UserWarning):
    """A program read bytes outside every live buffer that a Pi would still serve from the
    Driver's memory (just past a buffer's end). The emulator returned them, as a Pi does; strict
    mode refuses such reads (MemoryFaultError)."""
