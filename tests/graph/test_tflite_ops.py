"""Single-op TFLite models through vc4infer (importer + hostside.neon / neon_quant) against the
TFLite interpreter (ai_edge_litert), both its reference kernels and its default (optimized)
kernels. Quantized ops must agree within 1 unit, float ops within float32 rounding."""
import importlib.util
import os
import sys

import numpy as np
import pytest
from requires import require

require("ai_edge_litert")
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

import vc4infer  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("build_tflite",
                                               os.path.join(_ROOT, "models", "build_tflite.py"))
bt = sys.modules.setdefault("build_tflite", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(bt)

RESOLVERS = [OpResolverType.BUILTIN_REF, OpResolverType.AUTO]
LIMITS = {"uint8": (0, 255), "int8": (-128, 127)}


def _interpret(model: bytes, xs: list, resolver) -> np.ndarray:
    it = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), xs):
        it.set_tensor(d["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _ours(model: bytes, xs: list, tmp_path) -> np.ndarray:
    path = tmp_path / "op.tflite"
    path.write_bytes(model)
    m = vc4infer.load(str(path), backend="neon")
    y = m.run(xs[0] if len(xs) == 1 else xs)
    return y[0] if isinstance(y, list) else y


def _check(model: bytes, xs: list, tmp_path, tol: float) -> None:
    ours = _ours(model, xs, tmp_path)
    for r in RESOLVERS:
        ref = _interpret(model, xs, r)
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        err = np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()
        assert err <= tol, f"{r.name}: max error {err} > {tol}"


def _rand_q(rng, shape, dtype):
    lo, hi = LIMITS[dtype]
    return rng.integers(lo, hi + 1, shape).astype(dtype)


def _zp(dtype, zp_uint8):
    return zp_uint8 if dtype == "uint8" else zp_uint8 - 128


def _conv_weights(w: "bt.TfliteWriter", rng, shape, dtype, axis):
    """Quantized weights: uint8 per-tensor asymmetric, int8 per-channel symmetric."""
    if dtype == "uint8":
        data = rng.integers(0, 256, shape).astype(np.uint8)
        return w.add_tensor("w", shape, "uint8", data, scale=0.02, zero_point=120), np.array([0.02])
    scales = rng.uniform(0.005, 0.03, shape[axis]).astype(np.float32)
    data = rng.integers(-127, 128, shape).astype(np.int8)
    return (w.add_tensor("w", shape, "int8", data, scale=scales,
                         zero_point=np.zeros(shape[axis], np.int64), qdim=axis), scales)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("k,stride,padding,act,dil", [
    (3, 2, "SAME", "relu6", 1), (1, 1, "VALID", None, 1), (3, 1, "SAME", "relu", 2),
    (5, 3, "VALID", "relu_n1_to_1", 1), (2, 2, "SAME", None, 1)])
def test_conv2d_quantized(dtype, k, stride, padding, act, dil, tmp_path):
    rng = np.random.default_rng(k * 10 + stride)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 11, 10, 5), dtype, scale=0.05, zero_point=_zp(dtype, 130))
    wt, ws = _conv_weights(w, rng, (7, k, k, 5), dtype, 0)
    bias = w.add_tensor("b", (7,), "int32", rng.integers(-2000, 2000, 7),
                        scale=(0.05 * ws).astype(np.float32), zero_point=np.zeros(ws.size, np.int64))
    oh = (11 + stride - 1) // stride if padding == "SAME" else (11 - (k - 1) * dil - 1) // stride + 1
    ow = (10 + stride - 1) // stride if padding == "SAME" else (10 - (k - 1) * dil - 1) // stride + 1
    y = w.add_tensor("y", (1, oh, ow, 7), dtype, scale=0.04, zero_point=_zp(dtype, 100))
    w.add_op("CONV_2D", [x, wt, bias], [y], Padding=bt.PADDING[padding], StrideW=stride,
             StrideH=stride, FusedActivationFunction=bt.ACT[act], DilationWFactor=dil,
             DilationHFactor=dil)
    _check(w.to_bytes([x], [y]), [_rand_q(rng, (1, 11, 10, 5), dtype)], tmp_path, 1)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("mult,stride", [(1, 1), (2, 2), (3, 1)])
def test_depthwise_quantized(dtype, mult, stride, tmp_path):
    rng = np.random.default_rng(mult)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 9, 8, 4), dtype, scale=0.1, zero_point=_zp(dtype, 128))
    wt, ws = _conv_weights(w, rng, (1, 3, 3, 4 * mult), dtype, 3)
    bias = w.add_tensor("b", (4 * mult,), "int32", rng.integers(-500, 500, 4 * mult),
                        scale=(0.1 * ws).astype(np.float32),
                        zero_point=np.zeros(ws.size, np.int64))
    oh, ow = (9 + stride - 1) // stride, (8 + stride - 1) // stride
    y = w.add_tensor("y", (1, oh, ow, 4 * mult), dtype, scale=0.05, zero_point=_zp(dtype, 0))
    w.add_op("DEPTHWISE_CONV_2D", [x, wt, bias], [y], Padding=0, StrideW=stride, StrideH=stride,
             DepthMultiplier=mult, FusedActivationFunction=bt.ACT["relu6"])
    _check(w.to_bytes([x], [y]), [_rand_q(rng, (1, 9, 8, 4), dtype)], tmp_path, 1)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_fully_connected_quantized(dtype, tmp_path):
    rng = np.random.default_rng(3)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (2, 40), dtype, scale=0.03, zero_point=_zp(dtype, 140))
    wt, ws = _conv_weights(w, rng, (17, 40), dtype, 0)
    bias = w.add_tensor("b", (17,), "int32", rng.integers(-3000, 3000, 17),
                        scale=(0.03 * ws).astype(np.float32), zero_point=np.zeros(ws.size, np.int64))
    y = w.add_tensor("y", (2, 17), dtype, scale=0.05, zero_point=_zp(dtype, 128))
    w.add_op("FULLY_CONNECTED", [x, wt, bias], [y], FusedActivationFunction=bt.ACT["relu"])
    _check(w.to_bytes([x], [y]), [_rand_q(rng, (2, 40), dtype)], tmp_path, 1)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("op,act", [("ADD", None), ("ADD", "relu6"), ("MUL", None)])
def test_binary_quantized(dtype, op, act, tmp_path):
    rng = np.random.default_rng(4)
    w = bt.TfliteWriter()
    a = w.add_tensor("a", (1, 5, 6, 8), dtype, scale=0.07, zero_point=_zp(dtype, 120))
    b = w.add_tensor("b", (1, 5, 6, 8), dtype, scale=0.03, zero_point=_zp(dtype, 90))
    y = w.add_tensor("y", (1, 5, 6, 8), dtype, scale=0.08 if op == "ADD" else 0.2,
                     zero_point=_zp(dtype, 110))
    w.add_op(op, [a, b], [y], FusedActivationFunction=bt.ACT[act])
    xs = [_rand_q(rng, (1, 5, 6, 8), dtype), _rand_q(rng, (1, 5, 6, 8), dtype)]
    _check(w.to_bytes([a, b], [y]), xs, tmp_path, 1)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("op,k,stride,padding", [
    ("AVERAGE_POOL_2D", 3, 2, "SAME"), ("AVERAGE_POOL_2D", 7, 7, "VALID"),
    ("MAX_POOL_2D", 3, 2, "SAME"), ("MAX_POOL_2D", 2, 2, "VALID")])
def test_pool_quantized(dtype, op, k, stride, padding, tmp_path):
    rng = np.random.default_rng(5)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 7, 7, 6), dtype, scale=0.1, zero_point=_zp(dtype, 128))
    o = (7 + stride - 1) // stride if padding == "SAME" else (7 - k) // stride + 1
    y = w.add_tensor("y", (1, o, o, 6), dtype, scale=0.1, zero_point=_zp(dtype, 128))
    w.add_op(op, [x], [y], Padding=bt.PADDING[padding], StrideW=stride, StrideH=stride,
             FilterWidth=k, FilterHeight=k, FusedActivationFunction=0)
    _check(w.to_bytes([x], [y]), [_rand_q(rng, (1, 7, 7, 6), dtype)], tmp_path, 1)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("keep", [True, False])
def test_mean_quantized(dtype, keep, tmp_path):
    rng = np.random.default_rng(6)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 5, 3, 30), dtype, scale=0.02, zero_point=_zp(dtype, 100))
    ax = w.add_tensor("axes", (2,), "int32", np.array([1, 2], np.int32))
    y = w.add_tensor("y", (1, 1, 1, 30) if keep else (1, 30), dtype, scale=0.011,
                     zero_point=_zp(dtype, 120))
    w.add_op("MEAN", [x, ax], [y], KeepDims=keep)
    _check(w.to_bytes([x], [y]), [_rand_q(rng, (1, 5, 3, 30), dtype)], tmp_path, 1)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("in_scale", [0.05, 0.2])
def test_softmax_quantized(dtype, in_scale, tmp_path):
    rng = np.random.default_rng(7)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (3, 50), dtype, scale=in_scale, zero_point=_zp(dtype, 128))
    y = w.add_tensor("y", (3, 50), dtype, scale=1 / 256, zero_point=_zp(dtype, 0))
    w.add_op("SOFTMAX", [x], [y], Beta=1.0)
    _check(w.to_bytes([x], [y]), [_rand_q(rng, (3, 50), dtype)], tmp_path, 1)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_concat_pad_reshape_relu_quantized(dtype, tmp_path):
    rng = np.random.default_rng(8)
    w = bt.TfliteWriter()
    a = w.add_tensor("a", (1, 4, 4, 3), dtype, scale=0.05, zero_point=_zp(dtype, 128))
    # TFLite rescales uint8 concat inputs; int8 inputs must share the output's quantization
    b_scale, b_zp = (0.09, 30) if dtype == "uint8" else (0.05, 128)
    b = w.add_tensor("b", (1, 4, 4, 5), dtype, scale=b_scale, zero_point=_zp(dtype, b_zp))
    c_scale, c_zp = (0.06, 100) if dtype == "uint8" else (0.05, 128)
    c = w.add_tensor("c", (1, 4, 4, 8), dtype, scale=c_scale, zero_point=_zp(dtype, c_zp))
    w.add_op("CONCATENATION", [a, b], [c], Axis=3, FusedActivationFunction=0)
    pads = w.add_tensor("pads", (4, 2), "int32", np.array([[0, 0], [1, 2], [0, 1], [0, 0]]))
    p = w.add_tensor("p", (1, 7, 5, 8), dtype, scale=c_scale, zero_point=_zp(dtype, c_zp))
    w.add_op("PAD", [c, pads], [p])
    r = w.add_tensor("r", (1, 280), dtype, scale=c_scale, zero_point=_zp(dtype, c_zp))
    w.add_op("RESHAPE", [p], [r], NewShape=[1, 280])
    y = w.add_tensor("y", (1, 280), dtype, scale=0.03, zero_point=_zp(dtype, 0))
    w.add_op("RELU6", [r], [y])
    xs = [_rand_q(rng, (1, 4, 4, 3), dtype), _rand_q(rng, (1, 4, 4, 5), dtype)]
    _check(w.to_bytes([a, b], [y]), xs, tmp_path, 1)


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_quantize_logistic_dequantize(dtype, tmp_path):
    rng = np.random.default_rng(9)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 6, 6, 4), "float32")
    q = w.add_tensor("q", (1, 6, 6, 4), dtype, scale=0.04, zero_point=_zp(dtype, 128))
    w.add_op("QUANTIZE", [x], [q])
    s = w.add_tensor("s", (1, 6, 6, 4), dtype, scale=1 / 256, zero_point=_zp(dtype, 0))
    w.add_op("LOGISTIC", [q], [s])
    y = w.add_tensor("y", (1, 6, 6, 4), "float32")
    w.add_op("DEQUANTIZE", [s], [y])
    xs = [rng.uniform(-5, 5, (1, 6, 6, 4)).astype(np.float32)]
    _check(w.to_bytes([x], [y]), xs, tmp_path, 1 / 256 + 1e-6)


@pytest.mark.parametrize("padding,stride,act", [("SAME", 2, "relu_n1_to_1"), ("VALID", 1, "relu6"),
                                                ("SAME", 3, None)])
def test_float_conv_depthwise_pool(padding, stride, act, tmp_path):
    rng = np.random.default_rng(10)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 10, 9, 3), "float32")
    wt = w.add_tensor("w", (6, 3, 3, 3), "float32", rng.normal(0, 0.5, (6, 3, 3, 3)))
    bias = w.add_tensor("b", (6,), "float32", rng.normal(0, 0.1, 6))
    oh = (10 + stride - 1) // stride if padding == "SAME" else (10 - 3) // stride + 1
    ow = (9 + stride - 1) // stride if padding == "SAME" else (9 - 3) // stride + 1
    c = w.add_tensor("c", (1, oh, ow, 6), "float32")
    w.add_op("CONV_2D", [x, wt, bias], [c], Padding=bt.PADDING[padding], StrideW=stride,
             StrideH=stride, FusedActivationFunction=bt.ACT[act])
    dw = w.add_tensor("dw", (1, 3, 3, 12), "float32", rng.normal(0, 0.5, (1, 3, 3, 12)))
    db = w.add_tensor("db", (12,), "float32", rng.normal(0, 0.1, 12))
    d = w.add_tensor("d", (1, oh, ow, 12), "float32")
    # (the interpreter's XNNPACK delegate crashes on a depthwise conv without bias)
    w.add_op("DEPTHWISE_CONV_2D", [c, dw, db], [d], Padding=0, StrideW=1, StrideH=1,
             DepthMultiplier=2, FusedActivationFunction=0)
    po = w.add_tensor("po", (1, (oh + 1) // 2, (ow + 1) // 2, 12), "float32")
    w.add_op("AVERAGE_POOL_2D", [d], [po], Padding=0, StrideW=2, StrideH=2, FilterWidth=3,
             FilterHeight=3, FusedActivationFunction=bt.ACT["relu"])
    xs = [rng.normal(0, 1, (1, 10, 9, 3)).astype(np.float32)]
    model = w.to_bytes([x], [po])
    ref = _interpret(model, xs, OpResolverType.BUILTIN_REF)
    _check(model, xs, tmp_path, 1e-5 * max(1.0, float(np.abs(ref).max())))


def test_float_elementwise_reduce_shape_ops(tmp_path):
    """MUL by a per-channel constant, ADD with RELU, MAX_POOL, MEAN, SQUEEZE, CONCATENATION,
    PAD, SOFTMAX with beta 0.5, LOGISTIC, RELU_N1_TO_1."""
    rng = np.random.default_rng(11)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 6, 5, 4), "float32")
    c = w.add_tensor("c", (4,), "float32", rng.normal(0, 1, 4))
    m = w.add_tensor("m", (1, 6, 5, 4), "float32")
    w.add_op("MUL", [x, c], [m], FusedActivationFunction=0)
    a = w.add_tensor("a", (1, 6, 5, 4), "float32")
    w.add_op("ADD", [m, x], [a], FusedActivationFunction=bt.ACT["relu"])
    pads = w.add_tensor("pads", (4, 2), "int32", np.array([[0, 0], [1, 0], [0, 1], [0, 0]]))
    p = w.add_tensor("p", (1, 7, 6, 4), "float32")
    w.add_op("PAD", [a, pads], [p])
    mp = w.add_tensor("mp", (1, 4, 3, 4), "float32")
    w.add_op("MAX_POOL_2D", [p], [mp], Padding=0, StrideW=2, StrideH=2, FilterWidth=2,
             FilterHeight=2, FusedActivationFunction=0)
    ax = w.add_tensor("ax", (2,), "int32", np.array([1, 2], np.int32))
    mean = w.add_tensor("mean", (1, 1, 1, 4), "float32")
    w.add_op("MEAN", [mp, ax], [mean], KeepDims=True)
    sq = w.add_tensor("sq", (1, 4), "float32")
    w.add_op("SQUEEZE", [mean], [sq], SqueezeDims=[1, 2])
    lg = w.add_tensor("lg", (1, 4), "float32")
    w.add_op("LOGISTIC", [sq], [lg])
    r1 = w.add_tensor("r1", (1, 4), "float32")
    w.add_op("RELU_N1_TO_1", [sq], [r1])
    cat = w.add_tensor("cat", (1, 8), "float32")
    w.add_op("CONCATENATION", [lg, r1], [cat], Axis=-1, FusedActivationFunction=0)
    y = w.add_tensor("y", (1, 8), "float32")
    w.add_op("SOFTMAX", [cat], [y], Beta=0.5)
    xs = [rng.normal(0, 2, (1, 6, 5, 4)).astype(np.float32)]
    _check(w.to_bytes([x], [y]), xs, tmp_path, 1e-6)


def test_float_fully_connected_from_4d_and_float16_weights(tmp_path):
    """FULLY_CONNECTED on a (1,1,1,C) input with keep_num_dims, float16 weights behind
    DEQUANTIZE (folded at import), RELU6."""
    rng = np.random.default_rng(12)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 1, 1, 24), "float32")
    w16 = w.add_tensor("w16", (10, 24), "float16", rng.normal(0, 0.3, (10, 24)))
    wf = w.add_tensor("wf", (10, 24), "float32")
    w.add_op("DEQUANTIZE", [w16], [wf])
    b = w.add_tensor("b", (10,), "float32", rng.normal(0, 0.1, 10))
    y = w.add_tensor("y", (1, 1, 1, 10), "float32")
    w.add_op("FULLY_CONNECTED", [x, wf, b], [y], FusedActivationFunction=bt.ACT["relu6"],
             KeepNumDims=True)
    xs = [rng.normal(0, 1, (1, 1, 1, 24)).astype(np.float32)]
    model = w.to_bytes([x], [y])
    _check(model, xs, tmp_path, 1e-5)
    g = vc4infer.load(str(tmp_path / "op.tflite"), backend="neon").graph
    assert "dequantize" not in [n.op for n in g.nodes]


def test_dynamic_range_weights_run_in_float(tmp_path):
    """int8 weights under a float conv (dynamic-range quantization) are dequantized at import and
    the layer runs in float32. TFLite's hybrid kernel quantizes the activations to 8 bits on the
    fly, so the two agree to 8-bit input precision: 1% of the output range."""
    rng = np.random.default_rng(13)
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 8, 8, 16), "float32")
    s = rng.uniform(0.002, 0.01, 32).astype(np.float32)
    wt = w.add_tensor("w", (32, 3, 3, 16), "int8", rng.integers(-127, 128, (32, 3, 3, 16)),
                      scale=s, zero_point=np.zeros(32, np.int64), qdim=0)
    b = w.add_tensor("b", (32,), "float32", rng.normal(0, 0.1, 32))
    y = w.add_tensor("y", (1, 8, 8, 32), "float32")
    w.add_op("CONV_2D", [x, wt, b], [y], Padding=0, StrideW=1, StrideH=1,
             FusedActivationFunction=0)
    xs = [rng.normal(0, 1, (1, 8, 8, 16)).astype(np.float32)]
    model = w.to_bytes([x], [y])
    ref = _interpret(model, xs, OpResolverType.BUILTIN_REF)
    _check(model, xs, tmp_path, 0.01 * float(np.ptp(ref)))
