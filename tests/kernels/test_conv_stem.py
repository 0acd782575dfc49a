"""qpu_kernels.conv_stem (full KHxKW convolution, im2col gathered by the TMU) against float64
numpy loops over the taps. The input sits inside a zero halo of the pads, as the planner lays out
a graph input: the halo is part of the buffer, so a read past it faults in the emulator."""
import numpy as np
import pytest

from qpu_kernels import conv_stem, sgemm
from vc4infer.qpu import assemble_program

from kernel_support import activate, assert_guard_intact, assert_within, gemm_bound, guarded


def reference(x, w, bias, stride, pads, act):
    """float64 conv by loops over the taps of a zero-padded copy of x; and sum |terms|."""
    pt, pl, pb, pr = pads
    cout, kh, kw, cin = w.shape
    xp = np.pad(x, ((pt, pb), (pl, pr), (0, 0)))
    ho = (xp.shape[0] - kh) // stride + 1
    wo = (xp.shape[1] - kw) // stride + 1
    out = np.zeros((ho, wo, cout)) + bias
    mag = np.zeros_like(out) + np.abs(bias)
    for dy in range(kh):
        for dx in range(kw):
            patch = xp[dy:dy + stride * (ho - 1) + 1:stride, dx:dx + stride * (wo - 1) + 1:stride]
            term = np.einsum("hwc,oc->hwo", patch, w[:, dy, dx, :])
            out += term
            mag += np.einsum("hwc,oc->hwo", np.abs(patch), np.abs(w[:, dy, dx, :]))
    return activate(out, act), mag


def run_stem(drv, h, wd, cin, cout, k, stride, pads, act, seed=0, pitch_pad=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, wd, cin)).astype(np.float32)
    w = rng.standard_normal((cout, k, k, cin)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    ref, mag = reference(x.astype(np.float64), w.astype(np.float64), bias.astype(np.float64),
                         stride, pads, act)
    ho, wo = ref.shape[:2]
    pt, pl, pb, pr = pads
    halo = drv.alloc((h + pt + pb, wd + pl + pr, cin + pitch_pad), np.float32)
    halo[:] = 0
    xg = halo[pt:pt + h, pl:pl + wd, :cin]
    xg[:] = x
    panels = drv.copy(conv_stem.pack_weights(w, bias, ho * wo))
    whole, out = guarded(drv, ho * wo, cout)
    launches = conv_stem.build(drv, h, wd, cin, cout, k, k, xg.address, xg.strides[1],
                               xg.strides[0], panels, out.address, out.strides[0],
                               wo * out.strides[0], stride, pads, act)
    for lc in launches:
        lc.run(drv)
    assert_within(np.array(out).reshape(ho, wo, cout), ref, gemm_bound(mag, k * k * cin + 2),
                  "stem")
    assert_guard_intact(whole, ho * wo, cout)
    return launches


@pytest.mark.parametrize("h,wd,cin,cout,k,stride,pads,act", [
    (9, 10, 3, 32, 3, 2, (0, 0, 1, 1), "relu6"),   # MobileNet v1's stem: TF SAME, stride 2
    (10, 10, 3, 32, 3, 2, (1, 1, 1, 1), "relu6"),  # MobileNet v2's: symmetric pads
    (7, 37, 3, 20, 3, 1, (1, 1, 1, 1), None),      # stride 1; rows of 37 pixels: 3 tiles each
    (6, 6, 5, 50, 3, 2, (1, 1, 1, 1), "relu"),     # 50 output channels: two panels
    (5, 5, 2, 8, 5, 1, (2, 2, 2, 2), None),        # a 5x5 kernel
])
def test_stem_matches_loops(drv, h, wd, cin, cout, k, stride, pads, act):
    run_stem(drv, h, wd, cin, cout, k, stride, pads, act)


def test_stem_reads_a_pitched_input(drv):
    run_stem(drv, 8, 8, 3, 16, 3, 2, (1, 1, 1, 1), None, pitch_pad=13)


def test_the_check_fails_a_stem_that_drops_a_tap(drv, monkeypatch):
    """The comparison would catch a gather that reads the wrong column: one offset off by a
    channel."""
    real = sgemm.set_gather_offsets

    def skewed(panels, k, nt, depth, offsets):
        offsets = np.array(offsets)
        offsets[-1] += 4
        real(panels, k, nt, depth, offsets)

    monkeypatch.setattr(sgemm, "set_gather_offsets", skewed)
    with pytest.raises(AssertionError, match="stem"):
        run_stem(drv, 9, 10, 3, 32, 3, 2, (0, 0, 1, 1), "relu6")


@pytest.mark.parametrize("nt", sgemm.PANEL_WIDTHS)
@pytest.mark.parametrize("act", sgemm.ACTIVATIONS)
def test_gather_variants_pass_the_hazard_checker(nt, act):
    for depth in range(2, sgemm.MAX_TMU_DEPTH + 1):
        assemble_program(sgemm.sgemm_kernel, nt, act, False, depth, True, check=True)
