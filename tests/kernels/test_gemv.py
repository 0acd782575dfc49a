"""qpu_kernels.gemv (y = act(x @ W + bias), M = 1) against float64 numpy, with x at its exact
size (the uniform stream reading past it would fault) and y inside a guard frame."""
import numpy as np
import pytest

from qpu_kernels import gemv
from vc4infer.qpu import assemble_program

from kernel_support import activate, assert_guard_intact, assert_within, gemm_bound, guarded


def run_gemv(drv, k, n, act=None, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(k).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    xg = drv.copy(x)
    weights = drv.copy(gemv.pack_weights(w, bias))
    whole, y = guarded(drv, 1, n)
    launches = gemv.build(drv, k, n, xg.address, weights.address, y.address, act)
    for lc in launches:
        lc.run(drv)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ref = activate(x64 @ w64 + bias, act)
    magnitude = np.abs(x64) @ np.abs(w64) + np.abs(bias)
    assert_within(np.array(y)[0], ref, gemm_bound(magnitude, k + 2), f"gemv {k}x{n} {act}")
    assert_guard_intact(whole, 1, n)
    return launches


@pytest.mark.parametrize("k,n,act", [
    (4, 1, None),                 # the smallest: K = DEPTH, one output
    (5, 17, "relu"),              # one remainder step; a block of one
    (13, 40, "relu6"),            # remainder 1 after one unrolled pass
    (1024, 1001, None),           # MobileNet v1's classifier
    (1280, 1000, None),           # MobileNet v2's
    (100, 300, "relu6"),
])
def test_gemv_matches_numpy(drv, k, n, act):
    run_gemv(drv, k, n, act)


def test_the_check_fails_a_gemv_that_drops_the_last_k(drv, monkeypatch):
    real = gemv.pack_weights

    def drop_last_row(w, bias):
        w = np.array(w)
        w[-1] = 0
        return real(w, bias)

    monkeypatch.setattr(gemv, "pack_weights", drop_last_row)
    with pytest.raises(AssertionError, match="gemv 13x40"):
        run_gemv(drv, 13, 40, "relu6")


@pytest.mark.parametrize("act", gemv.ACTIVATIONS)
def test_every_variant_passes_the_hazard_checker(act):
    assemble_program(gemv.gemv_kernel, act, check=True)
