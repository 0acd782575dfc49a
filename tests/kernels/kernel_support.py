"""Helpers of the kernel tests: guarded output buffers and the float32 error bound.

Error bound. Every kernel output is a sum of at most `terms` float32 products plus a bias (and a
residual). Each QPU fmul and fadd rounds once; the fadd truncates toward zero (spec section 3.4),
so each operation is off by less than 1 ulp = 2**-23 relative, and the accumulated error of a sum
of T terms is below (T + 2) * 2**-23 * (sum of |terms|) (the standard recursive-summation bound,
with the 1-ulp truncation error instead of the 1/2-ulp rounding error). The reference is computed
in float64 from the same float32 inputs, so its own error is negligible. `gemm_bound` returns that
bound per element, doubled for margin; it is ~1e-5 relative for K ~ 64, never a loose constant.
"""
from typing import Optional, Tuple

import numpy as np

EPS32 = 2.0 ** -23
GUARD_VALUE = np.float32(-12345.5)
GUARD = 8                       # guard elements on each side of every guarded row


def gemm_bound(abs_terms_sum: np.ndarray, terms: int) -> np.ndarray:
    """Per-element error bound of a float32 sum of `terms` products whose magnitudes sum to
    `abs_terms_sum` (see the module docstring)."""
    return 2.0 * (terms + 2) * EPS32 * abs_terms_sum + 1e-30


def guarded(drv, rows: int, cols: int) -> Tuple[np.ndarray, np.ndarray]:
    """(whole, view): a Driver array of rows + 2 by cols + 2*GUARD filled with GUARD_VALUE, and
    the rows x cols view inside it (row stride = the whole array's) that a kernel writes."""
    whole = drv.alloc((rows + 2, cols + 2 * GUARD), "float32")
    whole[:] = GUARD_VALUE
    return whole, whole[1:rows + 1, GUARD:GUARD + cols]


def assert_guard_intact(whole: np.ndarray, rows: int, cols: int) -> None:
    """Every element of `whole` outside the written view still holds GUARD_VALUE."""
    g = np.array(whole)
    g[1:rows + 1, GUARD:GUARD + cols] = GUARD_VALUE
    bad = np.argwhere(g != GUARD_VALUE)
    assert bad.size == 0, f"kernel wrote outside its output at {bad[:5].tolist()}"


def assert_within(out: np.ndarray, ref: np.ndarray, bound: np.ndarray, what: str) -> None:
    err = np.abs(out.astype(np.float64) - ref)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), (f"{what}: error {err[worst]:.3g} > bound {bound[worst]:.3g} at "
                                  f"{worst} (got {out[worst]}, want {ref[worst]})")


def activate(y: np.ndarray, act: Optional[str]) -> np.ndarray:
    """The activation written out independently of the kernels."""
    if act == "relu":
        return np.maximum(y, 0.0)
    if act == "relu6":
        return np.minimum(np.maximum(y, 0.0), 6.0)
    return y
