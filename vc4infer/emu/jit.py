"""The emulator's optional numba compilation.

Every hot function of the emulator is written in the subset of Python that numba compiles and is
decorated with `jit`. With numba installed it is compiled (cached on disk, so later processes skip the
compile); without numba, or with the environment variable VC4INFER_NO_NUMBA=1 set before the first
import, the same functions run as plain Python on the same numpy arrays (slowly, but identically).

Numba's on-disk cache of a function is keyed on its own source file only: after editing a helper
module (alu, pack, vpm, dma, tmu, sfu, memory), touch core.py too so that the loop that inlined or
linked the helper is recompiled. Installed copies are unaffected (every file is new on install).
"""
from __future__ import annotations

import os

#: True when the hot loop is compiled by numba
NUMBA_ENABLED = False

if os.environ.get("VC4INFER_NO_NUMBA", "") not in ("1", "true", "yes"):
    try:
        import numba as _numba
        NUMBA_ENABLED = True
    except ImportError:  # numba is an optional extra ([emu]); fall back to plain Python
        _numba = None


#: numba's "numpy" error model drops the zero-divisor test (and its exception path) from every
#: integer `//`, `%` and float `/` of the hot loop; harmless here because every divisor in the
#: emulator is a positive constant or a positive timing parameter, and the SFU guards its own
#: divisions by zero.
ERROR_MODEL = "numpy"


def jit(function):
    """Compile `function` with numba (nopython, cached) when available; else return it unchanged."""
    if NUMBA_ENABLED:
        return _numba.njit(cache=True, nogil=True, error_model=ERROR_MODEL)(function)
    return function


def jit_inline(function):
    """`jit`, and inlined into its callers by numba: for the per-instruction ALU functions, whose
    call would otherwise cost more than their work (ten array arguments per call)."""
    if NUMBA_ENABLED:
        return _numba.njit(cache=True, nogil=True, inline="always", error_model=ERROR_MODEL)(function)
    return function
