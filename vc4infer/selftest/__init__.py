"""`vc4infer selftest`: the on-device test suite. Every QPU kernel of qpu_kernels/ against the
NEON (numpy) reference over shape sweeps, and whole-program checks of the QPUs (DMA, VPM,
semaphores, mutex, TMU, SFU), on the board it runs on (`hw`) or on the emulator (`emu`).

    from hostside.driver import Driver
    from vc4infer import selftest
    with Driver() as drv:
        results = [selftest.run_case(c, drv) for c in selftest.cases(quick=True)]

Cases live in `programs` (whole programs) and `kernels` (one `sweep(...)` per kernel module).
"""
from __future__ import annotations

from typing import List, Sequence

from .registry import (Case, CaseContext, Outcome, Result, SelftestError, case, register,
                       registered, run_case, select, sweep)


def cases(quick: bool = False, patterns: Sequence[str] = ()) -> List[Case]:
    """The registered cases (whole programs first, then the kernel sweeps), filtered as
    `registry.select` does."""
    from . import programs  # noqa: F401 - importing registers the cases, programs first
    from . import kernels  # noqa: F401
    return select(registered(), quick=quick, patterns=patterns)


__all__ = ["Case", "CaseContext", "Outcome", "Result", "SelftestError", "case", "cases",
           "register", "registered", "run_case", "select", "sweep"]
