"""qpu_kernels.conv_expand_depthwise (1x1 expansion + 3x3 depthwise in one kernel) against numpy:
the expansion as a float64 matrix product, the depthwise conv as loops over the 9 taps of a
zero-padded copy of the expanded tensor."""
import numpy as np
import pytest

from qpu_kernels import conv_expand_depthwise as ed
from qpu_kernels.launch import KernelShapeError
from vc4infer.qpu import assemble_program

from kernel_support import activate, assert_guard_intact, assert_within, gemm_bound, guarded
from test_conv_depthwise import reference as depthwise_reference


def reference(x, we, be, wd, bd, stride, pads, act_e, act_d):
    """float64 expansion (a matrix product) then test_conv_depthwise's loops over the taps; also
    the sum of |terms| per output for the error bound: the expansion's own term magnitudes
    carried through the taps beside the taps' products."""
    e = activate(x @ we.T + be, act_e)
    e_mag = np.abs(x) @ np.abs(we.T) + np.abs(be)
    out, _ = depthwise_reference(e, wd[..., None], bd, stride, pads, act_d)
    mag, _ = depthwise_reference(np.abs(e) + e_mag, np.abs(wd[..., None]), np.abs(bd), stride,
                                 pads, None)
    return out, mag


def run_fused(drv, h, w, k, c, stride, pads, act_e, act_d, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, w, k)).astype(np.float32)
    we = rng.standard_normal((c, k)).astype(np.float32) / np.sqrt(k)
    be = rng.standard_normal(c).astype(np.float32)
    wd = rng.standard_normal((c, 3, 3)).astype(np.float32)
    bd = rng.standard_normal(c).astype(np.float32)
    f64 = [a.astype(np.float64) for a in (x, we, be, wd, bd)]
    ref, mag = reference(*f64, stride, pads, act_e, act_d)
    ho, wo = ref.shape[:2]
    xg = drv.copy(x)                               # exact size: a read past it faults
    wg = drv.copy(ed.pack_weights(we, be, wd[..., None], bd))
    whole, out = guarded(drv, ho * wo, c)          # one output pixel per guarded row
    launches = ed.build(drv, h, w, k, c, xg.address, wg.address, out.address, stride, pads,
                        act_e, act_d, out_pixel_stride=out.strides[0],
                        out_row_stride=wo * out.strides[0])
    for lc in launches:
        lc.run(drv)
    assert_within(np.array(out).reshape(ho, wo, c), ref, gemm_bound(mag, k + 10),
                  "expand + depthwise")
    assert_guard_intact(whole, ho * wo, c)
    return launches


@pytest.mark.parametrize("h,w,k,c,stride,pads,act_e,act_d", [
    (5, 6, 16, 16, 1, (1, 1, 1, 1), "relu6", "relu6"),   # one block, SAME padding
    (7, 9, 3, 20, 2, (0, 0, 1, 1), "relu", None),        # TF-style asymmetric padding, 2 blocks
    (6, 13, 24, 33, 1, (1, 1, 1, 1), None, "relu"),      # K = 24: three 5-pixel strips, the last overlapping
    (9, 12, 16, 16, 2, (1, 1, 1, 1), "relu6", "relu6"),  # stride 2, symmetric padding
    (3, 3, 2, 1, 1, (0, 0, 0, 0), None, None),           # one output pixel, no padding
    (4, 1, 5, 17, 1, (1, 1, 1, 1), "relu6", None),       # one column: both edges pad
    (1, 7, 8, 16, 1, (1, 1, 1, 1), "relu", "relu6"),     # one row: top and bottom pad
    (40, 5, 4, 16, 1, (1, 1, 1, 1), "relu6", "relu6"),   # 40 rows: two bands
    (70, 4, 4, 16, 2, (1, 1, 1, 1), None, "relu6"),      # 35 output rows: two bands
])
def test_expand_depthwise_matches_numpy(drv, h, w, k, c, stride, pads, act_e, act_d):
    run_fused(drv, h, w, k, c, stride, pads, act_e, act_d)


@pytest.mark.parametrize("act_e", ed.ACTIVATIONS)
@pytest.mark.parametrize("act_d", ed.ACTIVATIONS)
@pytest.mark.parametrize("k,stride", [(2, 1), (16, 2), (24, 1), (24, 2), (31, 1)])
def test_every_variant_passes_the_hazard_checker(k, stride, act_e, act_d):
    assemble_program(ed.expand_depthwise_kernel, k, stride, ed.max_pixels(k, stride), act_e,
                     act_d, check=True)


def test_strips_fit_the_registers():
    # K weights + the partial sums of 3 (stride 1) or 2 (stride 2) rows share 64 - fixed registers
    for k in range(2, 32):
        for stride in (1, 2):
            p = ed.max_pixels(k, stride)
            fixed_a, fixed_b = ed.fixed_registers(stride)
            assert k + ed.sums_rows(stride) * p <= 64 - fixed_a - fixed_b
            assert ed.sums_rows(stride) * p <= 32 - fixed_b
    # MobileNet v2 224: features.2 (K 16, 56 outputs, stride 2), .3 (K 24, 56, 1), .4 (24, 28, 2)
    assert [ed.strip_pixels(56, 16, 2), ed.strip_pixels(56, 24, 1), ed.strip_pixels(28, 24, 2)] \
        == [8, 6, 7]


@pytest.mark.parametrize("args,match", [
    (dict(k=40), "K = 40"),
    (dict(stride=3), "stride=3"),
    (dict(pads=(2, 1, 1, 1)), "pads"),
    (dict(act_expand="gelu"), "act_expand"),
])
def test_shapes_it_cannot_run_are_refused(drv, args, match):
    shape = dict(h=8, w=8, k=16, c=32, stride=1, pads=(1, 1, 1, 1), act_expand=None)
    shape.update(args)
    with pytest.raises(KernelShapeError, match=match):
        ed.build(drv, shape["h"], shape["w"], shape["k"], shape["c"], 0, 0, 0, shape["stride"],
                 shape["pads"], shape["act_expand"])
