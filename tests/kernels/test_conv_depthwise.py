"""qpu_kernels.conv_depthwise (NHWC depthwise 3x3) against explicit numpy loops over the taps."""
import numpy as np
import pytest

from qpu_kernels import conv_depthwise
from qpu_kernels.launch import KernelShapeError
from vc4infer.qpu import assemble_program

from kernel_support import activate, assert_guard_intact, assert_within, gemm_bound, guarded


def reference(x, w, bias, stride, pads, act):
    """float64 depthwise conv by loops over the 9 taps of a zero-padded copy of x; also the sum
    of |terms| per output for the error bound."""
    pt, pl, pb, pr = pads
    xp = np.pad(x, ((pt, pb), (pl, pr), (0, 0)))
    ho = (xp.shape[0] - 3) // stride + 1
    wo = (xp.shape[1] - 3) // stride + 1
    out = np.zeros((ho, wo, x.shape[2])) + bias
    mag = np.zeros_like(out) + np.abs(bias)
    for dy in range(3):
        for dx in range(3):
            patch = xp[dy:dy + stride * (ho - 1) + 1:stride, dx:dx + stride * (wo - 1) + 1:stride, :]
            out += patch * w[:, dy, dx, 0]
            mag += np.abs(patch * w[:, dy, dx, 0])
    return activate(out, act), mag


def run_depthwise(drv, h, wd, c, stride, pads, act, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, wd, c)).astype(np.float32)
    w = rng.standard_normal((c, 3, 3, 1)).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    ref, mag = reference(x.astype(np.float64), w.astype(np.float64), bias.astype(np.float64),
                         stride, pads, act)
    ho, wo = ref.shape[:2]
    xg = drv.copy(x)                               # exact size: a read past it faults
    wg = drv.copy(conv_depthwise.pack_weights(w, bias))
    whole, out = guarded(drv, ho * wo, c)          # one output pixel per guarded row
    launches = conv_depthwise.build(drv, h, wd, c, xg.address, wg.address, out.address, stride,
                                    pads, act, out_pixel_stride=out.strides[0],
                                    out_row_stride=wo * out.strides[0])
    for lc in launches:
        lc.run(drv)
    assert_within(np.array(out).reshape(ho, wo, c), ref, gemm_bound(mag, 10), "depthwise")
    assert_guard_intact(whole, ho * wo, c)
    return launches


@pytest.mark.parametrize("h,wd,c,stride,pads,act", [
    (5, 6, 16, 1, (1, 1, 1, 1), "relu6"),     # one channel block, SAME padding
    (7, 9, 3, 2, (0, 0, 1, 1), "relu"),       # C = 3, stride 2, TF-style asymmetric padding
    (4, 18, 33, 1, (1, 1, 1, 1), None),       # 33 channels: a block of 1; 18 wide: 2 items/row
    (6, 5, 20, 2, (1, 1, 1, 1), "relu6"),     # stride 2, symmetric padding
    (3, 3, 1, 1, (0, 0, 0, 0), None),         # one channel, no padding: one output pixel
    (3, 1, 5, 1, (1, 1, 1, 1), None),         # one pixel per row: its left and right taps pad
    (1, 4, 16, 1, (1, 1, 1, 1), "relu"),      # one row: its top and bottom taps pad
    (3, 17, 20, 1, (1, 1, 1, 1), None),       # 17 wide: two items of 9 that overlap by one
    (2, 40, 17, 2, (1, 1, 1, 1), "relu6"),    # 20 outputs a row: two items of 10
    (4, 34, 16, 2, (0, 0, 1, 1), None),       # 17 outputs, the last one's right tap pads
])
def test_depthwise_matches_loops(drv, h, wd, c, stride, pads, act):
    run_depthwise(drv, h, wd, c, stride, pads, act)


@pytest.mark.parametrize("act", conv_depthwise.ACTIVATIONS)
@pytest.mark.parametrize("pixels", [1, 2, 7, 16])
def test_every_variant_passes_the_hazard_checker(act, pixels):
    assemble_program(conv_depthwise.depthwise_kernel, act, pixels, check=True)


@pytest.mark.parametrize("wo,pixels", [(112, 16), (56, 14), (28, 14), (14, 14), (7, 7), (17, 9),
                                       (1, 1)])
def test_items_cut_rows_evenly(wo, pixels):
    assert conv_depthwise.item_pixels(wo) == pixels


def test_uniforms_do_not_grow_with_the_taps(drv):
    # the tap addresses are made in registers: an item costs a few uniforms, not one per tap
    launches = conv_depthwise.build(drv, 56, 56, 32, 0, 0, 0)
    items = 56 * 4 * 2                               # rows x items a row x channel blocks
    assert sum(int(lc.uniforms[i, 0]) for lc in launches for i in range(lc.n_threads)) == items
    width_words = max(lc.uniforms.shape[1] for lc in launches)
    assert width_words / -(-items // 12) < 16         # under a 64-byte uniform cache line an item


def test_pack_layout():
    c = 20
    w = np.arange(c * 9, dtype=np.float32).reshape(c, 3, 3, 1) + 1
    bias = -np.arange(c, dtype=np.float32) - 1
    packed = conv_depthwise.pack_weights(w, bias)
    blocks = packed.reshape(2, 4, 10, 16)          # channel block, row variant, tap or bias, lane
    assert np.array_equal(blocks[1, 0, 4, :4], w[16:20, 1, 1, 0]) and not blocks[1, 0, 4, 4:].any()
    assert np.array_equal(blocks[0, 0, 9], bias[:16]) and np.array_equal(blocks[0, 3, 9], bias[:16])
    assert np.array_equal(blocks[0, 0, :9].T, w[:16].reshape(16, 9))
    for variant, zero_rows in [(1, [0]), (2, [2]), (3, [0, 2])]:
        taps = blocks[0, variant, :9].reshape(3, 3, 16)
        for dy in range(3):
            expected = 0 if dy in zero_rows else w[:16, dy, :, 0].T
            assert np.array_equal(taps[dy], np.broadcast_to(expected, (3, 16)))


def test_errors(drv):
    with pytest.raises(KernelShapeError, match="stride"):
        conv_depthwise.build(drv, 4, 4, 4, 0, 0, 0, stride=3)
    with pytest.raises(KernelShapeError, match="0 or 1 per side"):
        conv_depthwise.build(drv, 4, 4, 4, 0, 0, 0, pads=(2, 2, 2, 2))
    with pytest.raises(KernelShapeError, match="OHWI"):
        conv_depthwise.pack_weights(np.ones((4, 5, 5, 1), np.float32), None)


@pytest.mark.slow
@pytest.mark.parametrize("h,c,stride", [(56, 144, 1), (112, 32, 1), (28, 192, 2), (14, 960 // 2, 1)])
def test_depthwise_mobilenet_shapes(drv, h, c, stride):
    pads = (1, 1, 1, 1) if stride == 1 else (0, 0, 1, 1)
    run_depthwise(drv, h, h, c, stride, pads, "relu6")
