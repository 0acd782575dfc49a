"""qpu_kernels.pooling (global average pool via the transposed-read SGEMM) against numpy."""
import numpy as np
import pytest

from qpu_kernels import pooling
from qpu_kernels.launch import KernelShapeError

from kernel_support import assert_guard_intact, assert_within, gemm_bound, guarded


@pytest.mark.parametrize("h,w,c", [(7, 7, 40), (2, 3, 3), (1, 2, 17)])
def test_global_average_matches_numpy(drv, h, w, c):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((h, w, c)).astype(np.float32)
    xg = drv.copy(x)
    wg = drv.copy(pooling.pack_weights(h * w, c))
    whole, out = guarded(drv, 1, c)
    for lc in pooling.build_global_average(drv, h * w, c, xg.address, wg.address, out.address):
        lc.run(drv)
    x64 = x.astype(np.float64).reshape(h * w, c)
    ref = x64.sum(axis=0) / (h * w)
    bound = gemm_bound(np.abs(x64).sum(axis=0) / (h * w), h * w + 1)
    assert_within(np.array(out)[0], ref, bound, "global average pool")
    assert_guard_intact(whole, 1, c)


def test_one_pixel_is_refused():
    with pytest.raises(KernelShapeError, match="at least 2"):
        pooling.pack_weights(1, 8)
