"""Comparing QPU results with references: error bounds and guarded output buffers.

Float32 bound. A kernel output is a sum of at most T float32 products plus a bias (and a
residual). Each QPU fmul and fadd rounds once, toward zero (spec section 3.4; the emulator's
alu.py says how fmul's was settled), so each operation is off by less than 1 ulp (2**-23
relative) and the kernel's sum is within (T + 2) * 2**-23 * S of the exact value, S being the
sum of the terms' magnitudes (the recursive summation bound with a 1-ulp instead of a half-ulp
step). The NEON reference is float32 as well, rounding to nearest: within (T + 2) * 2**-24 * S.
`sum_bound` allows twice the kernel's share, which covers both with margin and is still ~1e-5
relative for T ~ 64. Clamping (relu, relu6) never increases an error.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .registry import Outcome

EPS32 = 2.0 ** -23
GUARD_VALUE = np.float32(-12345.5)
GUARD = 8                     # guard elements on each side of a guarded row


def sum_bound(magnitude: np.ndarray, terms: int) -> np.ndarray:
    """Per-element bound for a float32 QPU sum of `terms` terms whose magnitudes add up to
    `magnitude`, compared with a float32 host reference (see the module docstring)."""
    return 2.0 * (terms + 2) * EPS32 * np.asarray(magnitude, np.float64) + 1e-30


def compare(result: np.ndarray, reference: np.ndarray, bound, detail: str = "") -> Outcome:
    """Outcome of an element-wise comparison: every |result - reference| <= bound (a scalar or an
    array like reference). Non-finite references must be matched exactly (inf == inf); a NaN
    result fails. The Outcome reports the error and the bound of the element whose error is
    largest relative to its bound (with one bound for all elements: the largest error)."""
    got = np.asarray(result, np.float64)
    want = np.asarray(reference, np.float64)
    if got.shape != want.shape:
        return Outcome(float("inf"), 0.0, False, f"result shape {got.shape}, expected {want.shape}")
    bound = np.broadcast_to(np.asarray(bound, np.float64), want.shape)
    finite = np.isfinite(want)
    with np.errstate(invalid="ignore"):
        err = np.where(finite, np.abs(got - want), np.where(got == want, 0.0, np.inf))
    err = np.where(np.isnan(err), np.inf, err)
    if err.size == 0:
        return Outcome(0.0, 0.0, True, detail)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / bound)
    worst = np.unravel_index(np.argmax(ratio), err.shape)
    passed = bool(np.all(err <= bound))
    notes = [detail] if detail else []
    if not passed:
        notes.append(f"worst at {tuple(int(i) for i in worst)}: got {float(got[worst]):.9g}, "
                     f"expected {float(want[worst]):.9g}")
    return Outcome(float(err[worst]), float(bound[worst]), passed, "; ".join(notes))


class GuardedOutput:
    """A rows x cols float32 output inside a frame of GUARD_VALUE (one row above and below, GUARD
    elements left and right) in GPU memory: `view` is what the kernel writes (row stride = the
    frame's), `intact()` tells whether the kernel left the frame alone."""

    def __init__(self, drv, rows: int, cols: int):
        self.rows, self.cols = rows, cols
        self.whole = drv.alloc((rows + 2, cols + 2 * GUARD), "float32")
        self.whole[:] = GUARD_VALUE
        self.view = self.whole[1:rows + 1, GUARD:GUARD + cols]

    def intact(self) -> Tuple[bool, str]:
        frame = np.array(self.whole)
        frame[1:self.rows + 1, GUARD:GUARD + self.cols] = GUARD_VALUE
        bad = np.argwhere(frame != GUARD_VALUE)
        if bad.size:
            return False, f"wrote outside its output (frame elements {bad[:3].tolist()})"
        return True, ""


def compare_guarded(out: GuardedOutput, reference: np.ndarray, bound,
                    detail: Optional[str] = None) -> Outcome:
    """`compare` of the guarded output with `reference` (rows x cols), failing when the frame
    around it was touched."""
    outcome = compare(np.array(out.view), reference, bound, detail or "")
    ok, why = out.intact()
    if not ok:
        outcome.passed = False
        outcome.detail = "; ".join(s for s in (outcome.detail, why) if s)
    return outcome
