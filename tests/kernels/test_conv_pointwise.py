"""qpu_kernels.conv_pointwise (1x1 NHWC convolution via SGEMM) against an explicit numpy loop."""
import numpy as np
import pytest

from qpu_kernels import conv_pointwise
from qpu_kernels.launch import KernelShapeError

from kernel_support import activate, assert_guard_intact, assert_within, gemm_bound, guarded


def reference(x, w, bias, act, residual):
    """out[y, x, o] = act(sum_c x[y, x, c] * w[o, 0, 0, c] + bias[o]) (+ residual), by loops over
    output channels (float64)."""
    h, wd, cin = x.shape
    cout = w.shape[0]
    out = np.empty((h, wd, cout))
    mag = np.empty((h, wd, cout))
    for o in range(cout):
        out[..., o] = (x * w[o, 0, 0, :]).sum(axis=-1) + bias[o]
        mag[..., o] = np.abs(x * w[o, 0, 0, :]).sum(axis=-1) + abs(bias[o])
    out = activate(out, act)
    if residual is not None:
        out += residual
        mag += np.abs(residual)
    return out, mag


@pytest.mark.parametrize("h,wd,cin,cout,act,res", [
    (3, 5, 3, 8, "relu6", False),        # C = 3 input channels
    (7, 5, 24, 40, "relu", False),
    (4, 6, 32, 16, None, True),          # v2 projection: no activation, residual add
    (2, 3, 17, 1, None, False),          # one output channel
])
def test_pointwise_matches_loops(drv, h, wd, cin, cout, act, res):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((h, wd, cin)).astype(np.float32)
    w = rng.standard_normal((cout, 1, 1, cin)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    xg = drv.copy(x)
    wg = drv.copy(conv_pointwise.pack_weights(w, bias, h * wd))
    whole, out = guarded(drv, h * wd, cout)
    r = drv.copy(rng.standard_normal((h, wd, cout)).astype(np.float32)) if res else None
    launches = conv_pointwise.build(drv, h * wd, cin, cout, xg.address, wg.address, out.address,
                                    act, r.address if res else None,
                                    out_pixel_stride=out.strides[0])
    for lc in launches:
        lc.run(drv)
    ref, mag = reference(x.astype(np.float64), w.astype(np.float64), bias.astype(np.float64), act,
                         None if r is None else np.array(r, np.float64))
    assert_within(np.array(out).reshape(h, wd, cout), ref, gemm_bound(mag, cin + 2), "pointwise")
    assert_guard_intact(whole, h * wd, cout)


def test_rejects_non_pointwise_weights():
    with pytest.raises(KernelShapeError, match="OHWI"):
        conv_pointwise.pack_weights(np.ones((4, 3, 3, 2), np.float32), None, 16)
