"""Helpers of the kernel tests: guarded output buffers and the float32 error bound.

Both come from vc4infer.selftest.compare, which `vc4infer selftest` uses on a Pi: the bound is
derived there (a float32 sum of T products is within (T + 2) * 2**-23 * S of the exact value, S
the sum of the terms' magnitudes; doubled for margin, ~1e-5 relative for T ~ 64, never a loose
constant). The tests compute their references in float64 from the same float32 inputs, whose
own error is negligible against it.
"""
from typing import Optional, Tuple

import numpy as np

from vc4infer.selftest.compare import EPS32, GUARD, GUARD_VALUE, GuardedOutput, sum_bound  # noqa: F401

gemm_bound = sum_bound


def guarded(drv, rows: int, cols: int) -> Tuple[np.ndarray, np.ndarray]:
    """(whole, view): a Driver array of rows + 2 by cols + 2*GUARD filled with GUARD_VALUE, and
    the rows x cols view inside it (row stride = the whole array's) that a kernel writes."""
    out = GuardedOutput(drv, rows, cols)
    return out.whole, out.view


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
