"""hostside.neon's fast paths against onnxruntime: depthwise as one einsum over a strided view
of the padded input (stride 2, odd sizes, asymmetric padding, dilation, multiplier), conv2d's
zero-bordered output (`out_pads`, whatever stale data the runner's buffers hold), and the fused
runner handing a padded 1x1 output straight to its padding consumer."""
import numpy as np
import pytest

import vc4infer
from hostside import neon
from onnx import helper
from test_onnx_helpers import make_model, ort_run, rel_err, save

RNG = np.random.default_rng(4321)
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def rand(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def ort_conv(x_nhwc, w_ohwi, b, strides, dilations, pads, groups):
    """onnxruntime's Conv on NHWC/OHWI data (transposed at the edges)."""
    inits = {"w": w_ohwi.transpose(0, 3, 1, 2)}
    inputs = ["x", "w"]
    if b is not None:
        inits["b"] = b
        inputs.append("b")
    node = helper.make_node("Conv", inputs, ["y"], strides=list(strides),
                            dilations=list(dilations), pads=list(pads), group=groups)
    model = make_model([node], [("x", x_nhwc.transpose(TO_NCHW).shape)], [("y", None)], inits)
    return ort_run(model, {"x": x_nhwc.transpose(TO_NCHW)})[0].transpose(TO_NHWC)


DEPTHWISE_CASES = [
    # (N, H, W, C, multiplier, K, strides, dilations, pads (top, left, bottom, right))
    (1, 17, 23, 24, 1, 3, (2, 2), (1, 1), (0, 0, 1, 1)),     # TF SAME, stride 2, odd sizes
    (1, 16, 16, 8, 1, 3, (2, 2), (1, 1), (1, 0, 0, 1)),      # asymmetric the other way
    (2, 15, 9, 5, 1, 3, (2, 1), (1, 1), (1, 1, 1, 1)),       # stride 2 rows only, batch 2
    (1, 9, 14, 6, 1, 3, (1, 2), (1, 1), (0, 1, 2, 1)),       # stride 2 columns only
    (1, 19, 18, 4, 1, 3, (2, 2), (2, 2), (2, 2, 2, 2)),      # dilated and strided
    (1, 13, 11, 3, 2, 3, (2, 2), (1, 1), (1, 1, 1, 1)),      # multiplier 2, stride 2
    (1, 21, 20, 7, 1, 5, (2, 2), (1, 1), (2, 1, 2, 3)),      # 5x5 stride 2
    (1, 7, 7, 960, 1, 3, (1, 1), (1, 1), (1, 1, 1, 1)),      # MobileNet tail shape
    (1, 3, 3, 2, 1, 3, (2, 2), (1, 1), (1, 1, 1, 1)),        # output 2x2 from a 3x3 image
]


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[f"dw{i}" for i in range(len(DEPTHWISE_CASES))])
@pytest.mark.parametrize("activation", [None, "relu6"])
def test_depthwise_matches_onnxruntime(case, activation):
    n, h, w, c, mult, k, strides, dil, pads = case
    x, wt, b = rand(n, h, w, c, lo=-3, hi=3), rand(c * mult, k, k, 1), rand(c * mult)
    ref = ort_conv(x, wt, b, strides, dil, pads, c)
    if activation == "relu6":
        ref = np.clip(ref, 0, 6)
    for cache in (None, {}, ):
        y = neon.conv2d(x, wt, b, strides, dil, pads, c, activation, cache=cache)
        assert y.shape == ref.shape and y.dtype == np.float32
        assert rel_err(y, ref) < 1e-5


def test_depthwise_reads_a_non_contiguous_input():
    """A transposed view as input (no padding): the kernel must not assume C-contiguity."""
    base = rand(1, 12, 10, 6)
    x = base.transpose(0, 2, 1, 3)  # (1, 10, 12, 6), not contiguous
    wt, b = rand(6, 3, 3, 1), rand(6)
    ref = ort_conv(np.ascontiguousarray(x), wt, b, (2, 2), (1, 1), (0, 0, 0, 0), 6)
    assert rel_err(neon.conv2d(x, wt, b, (2, 2), (1, 1), (0, 0, 0, 0), 6), ref) < 1e-5


OUT_PAD_CASES = [
    # (H, W, C, O, K, strides, pads, groups, bias, activation, out_pads)
    (9, 7, 4, 12, 1, (1, 1), (0, 0, 0, 0), 1, True, "relu6", (1, 1, 1, 1)),  # expand, bias row
    (9, 7, 12, 4, 1, (1, 1), (0, 0, 0, 0), 1, True, None, (0, 0, 1, 1)),     # project
    (8, 8, 6, 6, 1, (1, 1), (0, 0, 0, 0), 1, False, "relu", (2, 1, 0, 3)),   # no bias
    (11, 10, 3, 8, 3, (2, 2), (1, 1, 1, 1), 1, True, "relu6", (1, 1, 1, 1)),  # im2col
    (10, 9, 8, 8, 3, (1, 1), (1, 1, 1, 1), 8, True, "relu6", (1, 2, 1, 0)),  # depthwise
    (10, 9, 8, 4, 3, (1, 1), (1, 1, 1, 1), 2, True, None, (1, 1, 1, 1)),     # grouped
    (6, 6, 5, 7, 1, (1, 1), (0, 0, 0, 0), 1, True, "relu6", (0, 0, 0, 0)),   # zero out_pads
]


@pytest.mark.parametrize("case", OUT_PAD_CASES, ids=[f"pad{i}" for i in range(len(OUT_PAD_CASES))])
def test_out_pads_gives_the_zero_padded_output(case):
    """conv2d(..., out_pads=p) == the onnxruntime result with zero borders p, also when the
    pool hands out buffers full of stale non-zero data and when blocks are small."""
    h, w, c, o, k, strides, pads, groups, bias, activation, out_pads = case
    x, wt = rand(2, h, w, c, lo=-4, hi=4), rand(o, k, k, c // groups)
    b = rand(o) if bias else None
    ref = ort_conv(x, wt, b, strides, (1, 1), pads, groups)
    ref = {"relu": np.maximum(ref, 0), "relu6": np.clip(ref, 0, 6), None: ref}[activation]
    pt, pl, pb, pr = out_pads
    ref = np.pad(ref, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    pool = neon.BufferPool()
    old_pool, old_chunk = getattr(neon._local, "pool", None), neon.GEMM_CHUNK_ELEMENTS
    try:
        neon._local.pool = pool
        for chunk in (old_chunk, 40):  # 40 elements: blocks of one output row
            neon.GEMM_CHUNK_ELEMENTS = chunk
            for _ in range(2):  # the second round gets the first round's buffers
                y = neon.conv2d(x, wt, b, strides, (1, 1), pads, groups, activation,
                                cache={}, out_pads=out_pads)
                assert y.shape == ref.shape and y.dtype == np.float32
                assert rel_err(y, ref) < 1e-5
                assert not y[:, :pt].any() and not y[:, y.shape[1] - pb:].any()
                assert not y[:, :, :pl].any() and not y[:, :, y.shape[2] - pr:].any()
                pool.put(y)
                pool.put(np.full_like(y, np.nan))  # stale data for the next round
    finally:
        neon._local.pool, neon.GEMM_CHUNK_ELEMENTS = old_pool, old_chunk


def _inverted_residual(shape, stride, pads, second_consumer=False):
    """expand 1x1 + relu6 -> depthwise 3x3 (pads) + relu6 -> project 1x1 (NCHW ONNX), and
    optionally a second consumer of the expand output (which must keep it unpadded)."""
    n, c, h, w = shape
    e = 3 * c
    inits = {"we": rand(e, c, 1, 1), "be": rand(e), "wd": rand(e, 1, 3, 3), "bd": rand(e),
             "wp": rand(c, e, 1, 1), "bp": rand(c), "lo": np.float32(0), "hi": np.float32(6)}
    nodes = [helper.make_node("Conv", ["x", "we", "be"], ["e"]),
             helper.make_node("Clip", ["e", "lo", "hi"], ["e6"]),
             helper.make_node("Conv", ["e6", "wd", "bd"], ["d"], group=e, strides=[stride] * 2,
                              pads=list(pads), kernel_shape=[3, 3]),
             helper.make_node("Clip", ["d", "lo", "hi"], ["d6"]),
             helper.make_node("Conv", ["d6", "wp", "bp"], ["y"])]
    outputs = [("y", None)]
    if second_consumer:
        nodes.append(helper.make_node("ReduceMean", ["e6"], ["m"], axes=[2, 3], keepdims=1))
        outputs.append(("m", None))
    return make_model(nodes, [("x", shape)], outputs, inits)


@pytest.mark.parametrize("stride,pads", [(1, (1, 1, 1, 1)), (2, (0, 0, 1, 1)), (2, (1, 1, 1, 1))])
@pytest.mark.parametrize("second_consumer", [False, True])
def test_runner_hands_padded_outputs_to_the_consumer(tmp_path, stride, pads, second_consumer):
    """The fused runner (expand writes a padded buffer, depthwise runs unpadded) matches
    onnxruntime, run after run (the pool's buffers then hold the previous run's data); with a
    second consumer of the expand output nothing is padded."""
    shape = (1, 8, 13, 11)
    path = save(_inverted_residual(shape, stride, pads, second_consumer), tmp_path)
    model = vc4infer.load(path, backend="neon")
    runner = neon.NeonRunner(model.graph)
    padded = [st for st in runner._fused if st.in_padded]
    assert len(padded) == (0 if second_consumer else 1)
    for _ in range(3):
        x = rand(*shape, lo=-2, hi=2)
        refs = ort_run(path, {"x": x})
        got = model.run(x)
        got = got if isinstance(got, list) else [got]
        for g, r in zip(got, refs):
            assert g.shape == r.shape and rel_err(g, r) < 1e-5
        # node by node (keep=True) gives the same result
        everything = model.run_all(x)
        y_int = everything[model.graph.outputs[0].tensor]
        assert rel_err(model.output_specs[0].from_internal(y_int), refs[0]) < 1e-5


IM2COL_CASES = [
    # (N, H, W, C, O, K, strides, dilations, pads): few channels (an image) take the transposed
    # patch matrix, more channels the plain one
    (2, 23, 30, 3, 8, 3, (2, 2), (1, 1), (1, 1, 1, 1)),   # MobileNet's first layer, batch 2
    (1, 17, 26, 2, 5, 3, (1, 2), (2, 1), (0, 2, 1, 0)),   # dilated rows, asymmetric pads
    (1, 12, 40, 1, 4, 5, (1, 1), (1, 2), (2, 2, 2, 2)),   # dilated columns
    (1, 11, 9, 16, 6, 3, (2, 1), (1, 1), (1, 1, 1, 1)),   # long patch rows: the plain copy
]


@pytest.mark.parametrize("case", IM2COL_CASES, ids=[f"im2col{i}" for i in range(len(IM2COL_CASES))])
@pytest.mark.parametrize("bias", [False, True])
def test_im2col_matches_onnxruntime(case, bias):
    """im2col convs (the bias as a column of ones in the patch matrix), in one block and in
    blocks of one output row."""
    n, h, w, c, o, k, strides, dil, pads = case
    x, wt = rand(n, h, w, c, lo=-3, hi=3), rand(o, k, k, c)
    b = rand(o) if bias else None
    ref = np.clip(ort_conv(x, wt, b, strides, dil, pads, 1), 0, 6)
    old = neon.GEMM_CHUNK_ELEMENTS
    try:
        for chunk in (old, 1):
            neon.GEMM_CHUNK_ELEMENTS = chunk
            y = neon.conv2d(x, wt, b, strides, dil, pads, 1, "relu6", cache={})
            assert y.shape == ref.shape and rel_err(y, ref) < 1e-5
    finally:
        neon.GEMM_CHUNK_ELEMENTS = old


@pytest.mark.parametrize("width", [49, 50])
@pytest.mark.parametrize("pads", [(0, 0, 1, 1), (1, 1, 1, 1), (1, 0, 1, 2)])
def test_wide_stride2_depthwise_reads_a_column_split_input(tmp_path, width, pads):
    """On a wide image the expand conv writes its padded output split into even and odd
    columns for the stride-2 depthwise conv: the result matches onnxruntime run after run,
    also with the split forced on narrow images."""
    shape = (1, 6, 9, width)
    path = save(_inverted_residual(shape, 2, pads), tmp_path)
    model = vc4infer.load(path, backend="neon")
    old = neon.SPLIT_MIN_WIDTH
    try:
        for min_width in (old, 1):
            neon.SPLIT_MIN_WIDTH = min_width
            runner = neon.NeonRunner(model.graph)
            for _ in range(2):
                x = rand(*shape, lo=-2, hi=2)
                feeds = {model.input_spec.tensor: model.input_spec.to_internal(x)}
                got = runner.run(feeds)[model.output_spec.tensor]
                ref = ort_run(path, {"x": x})[0]
                assert rel_err(model.output_spec.from_internal(got), ref) < 1e-5
            # the expand writes its output split for the depthwise conv
            assert neon._splits_for(runner._fused[0], feeds[model.input_spec.tensor])
    finally:
        neon.SPLIT_MIN_WIDTH = old
