"""ONNX importer: operator by operator (both opset forms where they differ) through
vc4infer.load(...).run against onnxruntime, layout tracking, and clear errors on unsupported
operators and malformed files."""
import numpy as np
import pytest

import vc4infer
from vc4infer.errors import ModelFormatError, UnsupportedModelError
from vc4infer.graph.importers import detect_format, import_model
from test_onnx_helpers import helper, load_build_onnx, make_model, ort_run, rel_err, save

RNG = np.random.default_rng(99)


def rand(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def check(tmp_path, model, x, tol=1e-5, **opts):
    """Import `model`, run it on `x` (file layout) and compare with onnxruntime."""
    path = save(model, tmp_path)
    m = vc4infer.load(path, backend="neon", **opts)
    got = m.run(x)
    ref = ort_run(path, {model.graph.input[0].name: x})[0]
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert rel_err(got, ref) < tol
    return m


def conv_node(inp, out, w_name, **attrs):
    return helper.make_node("Conv", [inp, w_name], [out], **attrs)


def test_conv_bn_clip_opset9_attribute_form(tmp_path):
    nodes = [conv_node("x", "c", "w", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], epsilon=1e-3),
             helper.make_node("Clip", ["bn"], ["y"], min=0.0, max=6.0)]
    init = {"w": rand(8, 3, 3, 3, lo=-3, hi=3), "g": rand(8), "b": rand(8), "m": rand(8),
            "v": rand(8, lo=0.5, hi=1.5)}
    model = make_model(nodes, [("x", (1, 3, 15, 15))], [("y", (1, 8, 8, 8))], init, opset=9)
    m = check(tmp_path, model, rand(1, 3, 15, 15))
    assert [n.op for n in m.graph.nodes] == ["conv2d", "batch_norm", "relu6"]


@pytest.mark.parametrize("lo,hi,op", [(0.0, 6.0, "relu6"), (-1.0, 1.0, "clip"), (0.0, None, "relu"),
                                      (None, 0.5, "clip")])
def test_clip_opset11_input_form(tmp_path, lo, hi, op):
    inputs = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
    init = {k: np.float32(v) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
    model = make_model([helper.make_node("Clip", inputs, ["y"])], [("x", (2, 10))],
                       [("y", (2, 10))], init, opset=13)
    m = check(tmp_path, model, rand(2, 10, lo=-8, hi=8))
    assert m.graph.nodes[0].op == op


def test_grouped_dilated_asymmetric_conv_with_bias(tmp_path):
    nodes = [conv_node("x", "y", "w", pads=[0, 2, 1, 1], strides=[1, 2], dilations=[2, 1],
                       group=2)]
    nodes[0].input.append("b")
    init = {"w": rand(6, 2, 3, 3), "b": rand(6)}
    model = make_model(nodes, [("x", (1, 4, 13, 11))], [("y", None)], init)
    check(tmp_path, model, rand(1, 4, 13, 11))


def test_auto_pad_same_upper(tmp_path):
    nodes = [conv_node("x", "y", "w", auto_pad="SAME_UPPER", strides=[2, 2])]
    model = make_model(nodes, [("x", (1, 3, 9, 10))], [("y", None)], {"w": rand(4, 3, 3, 3)})
    check(tmp_path, model, rand(1, 3, 9, 10))


def test_flatten_of_spatial_map_keeps_nchw_order(tmp_path):
    """Flatten of a (N, C, H, W) map with H, W > 1: the element order must be ONNX's (C-major),
    although the tensor is NHWC inside."""
    nodes = [conv_node("x", "c", "w", kernel_shape=[1, 1]),
             helper.make_node("Flatten", ["c"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=0, alpha=0.5, beta=2.0)]
    init = {"w": rand(5, 3, 1, 1), "fw": rand(5 * 4 * 3, 7), "fb": rand(7)}
    model = make_model(nodes, [("x", (2, 3, 4, 3))], [("y", (2, 7))], init)
    m = check(tmp_path, model, rand(2, 3, 4, 3))
    assert "transpose" in [n.op for n in m.graph.nodes]


def test_torch_view_chain_is_folded(tmp_path):
    """x.view(x.size(0), -1) as torch.onnx writes it: Shape, Gather, Unsqueeze, Concat, Reshape."""
    c = helper.make_node
    nodes = [c("GlobalAveragePool", ["x"], ["p"]), c("Shape", ["p"], ["s"]),
             c("Gather", ["s", "zero"], ["n"], axis=0), c("Unsqueeze", ["n", "ax"], ["n1"]),
             c("Concat", ["n1", "m1"], ["shape"], axis=0), c("Reshape", ["p", "shape"], ["r"]),
             c("MatMul", ["r", "mw"], ["mm"]), c("Add", ["mm", "mb"], ["y"])]
    init = {"zero": np.array(0, np.int64), "ax": np.array([0], np.int64),
            "m1": np.array([-1], np.int64), "mw": rand(6, 4), "mb": rand(4)}
    model = make_model(nodes, [("x", (3, 6, 5, 5))], [("y", (3, 4))], init)
    m = check(tmp_path, model, rand(3, 6, 5, 5))
    assert [n.op for n in m.graph.nodes] == ["global_avg_pool", "reshape", "fully_connected", "add"]


def test_tf2onnx_style_nhwc_input_and_transposes(tmp_path):
    """tf2onnx: NHWC input -> Transpose to NCHW -> ops -> Transpose back to NHWC output. The
    transposes cancel against the internal layout: no transpose node is emitted."""
    c = helper.make_node
    nodes = [c("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             conv_node("t", "cv", "w", pads=[1, 1, 1, 1], group=4),
             c("Relu", ["cv"], ["r"]),
             c("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1])]
    model = make_model(nodes, [("x", (1, 9, 7, 4))], [("y", (1, 9, 7, 4))], {"w": rand(4, 1, 3, 3)})
    m = check(tmp_path, model, rand(1, 9, 7, 4))
    assert m.input_spec.layout == "NHWC" and m.output_spec.layout == "NHWC"
    assert "transpose" not in [n.op for n in m.graph.nodes]


def test_nchw_output_of_feature_map(tmp_path):
    nodes = [conv_node("x", "y", "w", kernel_shape=[3, 3])]
    model = make_model(nodes, [("x", (2, 3, 8, 6))], [("y", (2, 5, 6, 4))], {"w": rand(5, 3, 3, 3)})
    m = check(tmp_path, model, rand(2, 3, 8, 6))
    assert m.output_spec.layout == "NCHW" and m.output_spec.shape == (2, 5, 6, 4)


@pytest.mark.parametrize("opset", [10, 13])  # Pad: attributes before 11, inputs since
def test_pad_then_pools(tmp_path, opset):
    c = helper.make_node
    pads = [0, 0, 1, 2, 0, 0, 2, 1]
    if opset < 11:
        pad = c("Pad", ["x"], ["p"], pads=pads, value=0.25)
        init = {}
    else:
        pad = c("Pad", ["x", "pads", "cv"], ["p"])
        init = {"pads": np.array(pads, np.int64), "cv": np.float32(0.25)}
    nodes = [pad,
             c("AveragePool", ["p"], ["a"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             c("MaxPool", ["a"], ["mx"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
             c("AveragePool", ["mx"], ["y"], kernel_shape=[2, 2], ceil_mode=1)]
    model = make_model(nodes, [("x", (1, 3, 13, 12))], [("y", None)], init, opset=opset)
    check(tmp_path, model, rand(1, 3, 13, 12))


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_on_channel_axis(tmp_path, opset):
    nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=1)]
    model = make_model(nodes, [("x", (2, 5, 3, 4))], [("y", (2, 5, 3, 4))], opset=opset)
    check(tmp_path, model, rand(2, 5, 3, 4, lo=-5, hi=5))


@pytest.mark.parametrize("opset,keep", [(13, 0), (13, 1), (18, 0)])
def test_reduce_mean_and_squeeze(tmp_path, opset, keep):
    c = helper.make_node
    init = {}
    if opset >= 18:
        rm = c("ReduceMean", ["x", "axes"], ["m"], keepdims=keep)
        init["axes"] = np.array([3], np.int64)
    else:
        rm = c("ReduceMean", ["x"], ["m"], axes=[3], keepdims=keep)
    nodes = [rm, c("Unsqueeze", ["m", "uax"], ["u"]), c("Squeeze", ["u", "uax"], ["y"])]
    init["uax"] = np.array([0], np.int64)
    model = make_model(nodes, [("x", (2, 5, 3, 4))], [("y", None)], init, opset=opset)
    check(tmp_path, model, rand(2, 5, 3, 4))


def test_elementwise_with_constants_and_residual(tmp_path):
    c = helper.make_node
    nodes = [c("Sub", ["x", "mean"], ["s"]), c("Div", ["s", "std"], ["d"]),
             c("Mul", ["d", "scale"], ["mu"]), conv_node("mu", "cv", "w", pads=[1, 1, 1, 1]),
             c("Add", ["cv", "mu"], ["ad"]), c("Sigmoid", ["ad"], ["sg"]),
             c("Sub", ["one", "sg"], ["y"])]
    init = {"mean": rand(3, 1, 1), "std": rand(3, 1, 1, lo=0.2, hi=1), "scale": np.float32(1.5),
            "w": rand(3, 3, 3, 3), "one": np.ones((1, 1, 1), np.float32)}
    model = make_model(nodes, [("x", (1, 3, 6, 7))], [("y", None)], init)
    check(tmp_path, model, rand(1, 3, 6, 7))


def test_concat_identity_dropout_constant(tmp_path):
    c = helper.make_node
    cval = helper.make_tensor("cv", 1, [1, 2, 4, 4], rand(1, 2, 4, 4).ravel().tolist())
    nodes = [c("Constant", [], ["k"], value=cval), c("Identity", ["x"], ["i"]),
             c("Dropout", ["i"], ["d"]), c("Concat", ["d", "k", "x"], ["y"], axis=1)]
    model = make_model(nodes, [("x", (1, 3, 4, 4))], [("y", (1, 8, 4, 4))], opset=13)
    check(tmp_path, model, rand(1, 3, 4, 4))


def test_batchnorm_on_vector_and_transpose_chain(tmp_path):
    c = helper.make_node
    nodes = [c("BatchNormalization", ["x", "g", "b", "m", "v"], ["bn"]),
             c("Reshape", ["bn", "shape"], ["r"]), c("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
             c("Flatten", ["t"], ["y"])]
    init = {"g": rand(6), "b": rand(6), "m": rand(6), "v": rand(6, lo=0.5, hi=1),
            "shape": np.array([0, 2, 3], np.int64)}
    model = make_model(nodes, [("x", (4, 6))], [("y", (4, 6))], init)
    check(tmp_path, model, rand(4, 6))


def test_dynamic_batch(tmp_path):
    nodes = [conv_node("x", "c", "w"), helper.make_node("GlobalAveragePool", ["c"], ["y"])]
    model = make_model(nodes, [("x", ("N", 3, 5, 5))], [("y", ("N", 2, 1, 1))], {"w": rand(2, 3, 1, 1)})
    path = save(model, tmp_path)
    m = vc4infer.load(path, batch=3)
    x = rand(3, 3, 5, 5)
    assert rel_err(m.run(x), ort_run(path, {"x": x})[0]) < 1e-6
    assert vc4infer.load(path).input_spec.shape == (1, 3, 5, 5)


# -- errors ---------------------------------------------------------------------------------

def test_unsupported_operator_names_op_node_and_list(tmp_path):
    model = make_model([helper.make_node("LpNormalization", ["x"], ["y"], name="norm7")],
                       [("x", (1, 4))], [("y", (1, 4))])
    with pytest.raises(UnsupportedModelError) as e:
        import_model(save(model, tmp_path))
    msg = str(e.value)
    assert "LpNormalization" in msg and "norm7" in msg and "Conv" in msg and "Gemm" in msg


def test_computed_weight_is_unsupported(tmp_path):
    model = make_model([helper.make_node("Conv", ["x", "x"], ["y"])], [("x", (1, 1, 1, 1))],
                       [("y", None)])
    with pytest.raises(UnsupportedModelError, match="weight"):
        import_model(save(model, tmp_path))


def _good_bytes(tmp_path):
    model = make_model([conv_node("x", "y", "w")], [("x", (1, 3, 5, 5))], [("y", None)],
                       {"w": rand(4, 3, 3, 3)})
    return model.SerializeToString()


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, cut):
    data = _good_bytes(tmp_path)
    p = tmp_path / "t.onnx"
    p.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(ModelFormatError):
        import_model(str(p))


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + bytes(100), bytes(range(256)) * 4,
                                     b"\x08\x07\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"])
def test_garbage_files(tmp_path, content):
    p = tmp_path / "g.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelFormatError):
        import_model(str(p))


def test_wrong_magic_without_extension(tmp_path):
    p = tmp_path / "model.bin"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelFormatError, match="unknown model format"):
        import_model(str(p))


def test_huge_input_shape_is_a_format_error(tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", (1, 3, 1 << 20, 1 << 20))],
                       [("y", None)])
    with pytest.raises(ModelFormatError, match="corrupt shape"):
        import_model(save(model, tmp_path))


def test_bad_shapes_are_format_errors(tmp_path):
    # weight has 4 input channels, the input 3
    model = make_model([conv_node("x", "y", "w")], [("x", (1, 3, 5, 5))], [("y", None)],
                       {"w": rand(2, 4, 3, 3)})
    with pytest.raises(ModelFormatError, match="groups"):
        import_model(save(model, tmp_path))
    # declared output shape disagrees with the computed one
    model = make_model([conv_node("x", "y", "w")], [("x", (1, 3, 5, 5))], [("y", (1, 2, 5, 5))],
                       {"w": rand(2, 3, 3, 3)})
    with pytest.raises(ModelFormatError, match="declared with shape"):
        import_model(save(model, tmp_path, "m2.onnx"))


def test_detect_format_by_magic(tmp_path):
    p = tmp_path / "noext"
    p.write_bytes(_good_bytes(tmp_path))
    assert detect_format(str(p)) == "onnx"
    q = tmp_path / "x.bin"
    q.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(20))
    assert detect_format(str(q)) == "tflite"
    with pytest.raises(FileNotFoundError):
        import_model(str(tmp_path / "missing.onnx"))


def test_missing_required_attribute(tmp_path):
    model = make_model([helper.make_node("AveragePool", ["x"], ["y"], name="pool3")],
                       [("x", (1, 2, 4, 4))], [("y", None)])
    with pytest.raises(ModelFormatError, match="pool3"):
        import_model(save(model, tmp_path))


def test_negative_variance(tmp_path):
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"])]
    init = {"g": rand(2), "b": rand(2), "m": rand(2), "v": np.array([1, -1], np.float32)}
    model = make_model(nodes, [("x", (1, 2))], [("y", (1, 2))], init)
    with pytest.raises(ModelFormatError, match="variance"):
        import_model(save(model, tmp_path))


def test_corrupted_bytes_never_escape_as_other_errors(tmp_path):
    """Random byte changes and cuts of a MobileNet file: either it still loads and runs, or a
    vc4infer error says why; no other exception, no hang."""
    build = load_build_onnx()
    from vc4infer.errors import Vc4InferError
    data = build.mobilenet_v1(0.25, 32, seed=1).SerializeToString()
    rng = np.random.default_rng(2024)
    p = tmp_path / "fz.onnx"
    stages = {"refused at load": 0, "refused at run": 0, "ran": 0}
    for trial in range(30):
        d = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            d[int(rng.integers(0, len(d)))] = int(rng.integers(0, 256))
        if trial % 3 == 0:
            d = d[:int(rng.integers(1, len(d)))]
        p.write_bytes(bytes(d))
        try:
            m = vc4infer.load(str(p))
        except Vc4InferError:
            stages["refused at load"] += 1
            continue
        try:
            with np.errstate(all="ignore"):
                m.run(np.zeros(m.input_spec.shape, np.float32))
            stages["ran"] += 1
        except Vc4InferError:
            stages["refused at run"] += 1
    # the mutants exercised both the readers' refusals and the whole path through to run
    assert stages["refused at load"] >= 5 and stages["ran"] >= 5, stages


def test_more_activations_and_minmax_sum(tmp_path):
    c = helper.make_node
    nodes = [c("LeakyRelu", ["x"], ["l"], alpha=0.2), c("HardSigmoid", ["l"], ["hs"], alpha=0.3),
             c("Tanh", ["x"], ["t"]), c("HardSwish", ["x"], ["hw"]),
             c("Max", ["x", "zero"], ["mx"]), c("Min", ["mx", "six"], ["r6"]),
             c("Sum", ["hs", "t", "hw", "r6"], ["y"])]
    init = {"zero": np.float32(0), "six": np.float32(6)}
    model = make_model(nodes, [("x", (2, 3, 4, 5))], [("y", (2, 3, 4, 5))], init, opset=14)
    m = check(tmp_path, model, rand(2, 3, 4, 5, lo=-9, hi=9), tol=1e-6)
    ops = [n.op for n in m.graph.nodes]
    assert {"leaky_relu", "hard_sigmoid", "tanh", "hard_swish", "relu", "clip"} <= set(ops)


@pytest.mark.parametrize("axis", [0, 2, -1])
def test_flatten_axes(tmp_path, axis):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Flatten", ["r"], ["y"], axis=axis)]
    model = make_model(nodes, [("x", (2, 3, 4, 5))], [("y", None)])
    check(tmp_path, model, rand(2, 3, 4, 5))


def test_tflite_and_graphdef_files_go_to_their_importers(tmp_path):
    """Dispatch by content: a file with the TFLite identifier reaches the TFLite importer and
    a GraphDef-like protobuf the TF importer; both reject these broken files with
    ModelFormatError."""
    t = tmp_path / "model.onnx"  # the extension must not win over the magic bytes
    t.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(8))
    with pytest.raises(ModelFormatError):
        import_model(str(t))
    assert detect_format(str(t)) == "tflite"
    pb = tmp_path / "graph"
    pb.write_bytes(b"\x0a\x05\x0a\x01a\x12\x00")
    assert detect_format(str(pb)) == "tf_graphdef"


def test_keras_via_tf2onnx_shape(tmp_path):
    """The layout of a Keras MobileNet converted by tf2onnx: NHWC input, Transpose to NCHW,
    ZeroPadding as Pad, depthwise Conv, ReLU6 as Clip, Transpose back, ReduceMean over H and W
    in NHWC, Reshape, MatMul + Add, Softmax."""
    c = helper.make_node
    nodes = [c("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             c("Pad", ["t", "pads"], ["p"]),
             conv_node("p", "dw", "w", group=8, strides=[2, 2]),
             c("Clip", ["dw", "lo", "hi"], ["r6"]),
             c("Transpose", ["r6"], ["back"], perm=[0, 2, 3, 1]),
             c("ReduceMean", ["back"], ["gap"], axes=[1, 2], keepdims=1),
             c("Reshape", ["gap", "shape"], ["flat"]),
             c("MatMul", ["flat", "fw"], ["mm"]), c("Add", ["mm", "fb"], ["logits"]),
             c("Softmax", ["logits"], ["y"], axis=-1)]
    init = {"pads": np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64), "w": rand(8, 1, 3, 3),
            "lo": np.float32(0), "hi": np.float32(6), "shape": np.array([-1, 8], np.int64),
            "fw": rand(8, 5), "fb": rand(5)}
    model = make_model(nodes, [("x", (1, 11, 12, 8))], [("y", (1, 5))], init)
    m = check(tmp_path, model, rand(1, 11, 12, 8, lo=-4, hi=8), tol=1e-6)
    assert m.input_spec.layout == "NHWC"
    assert [n.op for n in m.graph.nodes] == ["pad", "conv2d", "relu6", "global_avg_pool", "reshape",
                                             "fully_connected", "add", "softmax"]
