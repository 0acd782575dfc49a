"""hostside.neon, op by op, against onnxruntime (NCHW ONNX operators, transposed at the edges)
and plain numpy, including the edge cases the QPU kernels will meet."""
import numpy as np
import pytest

from hostside import neon
from vc4infer.graph.ir import Graph, QuantParams
from test_onnx_helpers import ort_single, rel_err

RNG = np.random.default_rng(1234)
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def rand(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def ort_conv(x_nhwc, w_ohwi, b, strides, dilations, pads, groups):
    inits = {"w": w_ohwi.transpose(0, 3, 1, 2)}
    if b is not None:
        inits["b"] = b
    pt, pl, pb, pr = pads
    y = ort_single("Conv", x_nhwc.transpose(TO_NCHW), inits, strides=list(strides),
                   dilations=list(dilations), pads=[pt, pl, pb, pr], group=groups)
    return y.transpose(TO_NHWC)


CONV_CASES = [
    # (N, H, W, C, O, KH, KW, strides, dilations, pads, groups)
    (1, 8, 8, 3, 16, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1),
    (1, 17, 13, 5, 7, 3, 3, (2, 2), (1, 1), (1, 1, 1, 1), 1),          # odd sizes, stride 2
    (2, 15, 9, 4, 6, 3, 3, (2, 1), (1, 1), (0, 1, 2, 0), 1),           # asymmetric padding
    (1, 19, 19, 3, 5, 3, 3, (1, 1), (2, 2), (2, 2, 2, 2), 1),          # dilation
    (1, 11, 10, 6, 9, 5, 3, (1, 2), (2, 1), (3, 0, 1, 2), 3),          # groups, mixed
    (1, 7, 7, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),            # 1 channel
    (1, 5, 5, 33, 1000, 1, 1, (1, 1), (1, 1), (0, 0, 0, 0), 1),        # 1000 channels
    (1, 9, 9, 20, 24, 1, 1, (2, 2), (1, 1), (0, 0, 0, 0), 1),          # strided 1x1
    (1, 14, 14, 32, 32, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 32),       # depthwise
    (1, 17, 23, 24, 24, 3, 3, (2, 2), (1, 1), (0, 0, 1, 1), 24),       # depthwise s2, TF SAME
    (2, 13, 11, 8, 16, 3, 3, (1, 2), (1, 1), (1, 2, 0, 1), 8),         # depthwise multiplier 2
    (1, 16, 16, 10, 10, 3, 3, (1, 1), (2, 3), (2, 3, 2, 3), 10),       # depthwise dilated
    (1, 12, 12, 7, 7, 5, 5, (3, 3), (1, 1), (2, 2, 2, 2), 7),          # depthwise 5x5 stride 3
    (1, 6, 6, 1000, 1000, 3, 3, (1, 1), (1, 1), (1, 1, 1, 1), 1000),   # 1000-channel depthwise
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"conv{i}" for i in range(len(CONV_CASES))])
@pytest.mark.parametrize("bias", [False, True])
def test_conv2d_matches_onnxruntime(case, bias):
    n, h, w, c, o, kh, kw, strides, dil, pads, groups = case
    x = rand(n, h, w, c)
    wt = rand(o, kh, kw, c // groups)
    b = rand(o) if bias else None
    y = neon.conv2d(x, wt, b, strides, dil, pads, groups)
    ref = ort_conv(x, wt, b, strides, dil, pads, groups)
    assert y.shape == ref.shape and y.dtype == np.float32
    assert rel_err(y, ref) < 1e-5


def test_conv2d_direct_sum_reference():
    """A loop-free numpy reference written straight from the definition (einsum over taps)."""
    x, w = rand(2, 9, 10, 4), rand(6, 3, 3, 4)
    xp = np.pad(x, ((0, 0), (1, 0), (2, 1), (0, 0)))
    ref = np.zeros((2, 4, 6, 6), np.float64)  # Ho = (9+1-3)//2+1, Wo = (10+3-3)//2+1
    for i in range(3):
        for j in range(3):
            win = xp[:, i:i + 7:2, j:j + 11:2, :].astype(np.float64)
            ref += np.einsum("nhwc,oc->nhwo", win, w[:, i, j, :].astype(np.float64))
    y = neon.conv2d(x, w, None, (2, 2), (1, 1), (1, 2, 0, 1), 1)
    assert np.abs(y - ref).max() < 1e-5


@pytest.mark.parametrize("activation,lo,hi", [("relu", 0, np.inf), ("relu6", 0, 6)])
@pytest.mark.parametrize("groups", [1, 8])
def test_conv2d_fused_activation(activation, lo, hi, groups):
    x, w = rand(1, 6, 6, 8, lo=-3, hi=3), rand(8, 3, 3, 8 // groups, lo=-3, hi=3)
    y = neon.conv2d(x, w, None, (1, 1), (1, 1), (1, 1, 1, 1), groups, activation)
    ref = np.clip(ort_conv(x, w, None, (1, 1), (1, 1), (1, 1, 1, 1), groups), lo, hi)
    assert y.max() > 0 and rel_err(y, ref) < 1e-5
    if activation == "relu6":
        assert y.max() == 6.0


def test_depthwise_block_boundaries():
    """Row blocks smaller than the image: results must not depend on the block size."""
    x, w, b = rand(1, 31, 29, 12), rand(12, 3, 3, 1), rand(12)
    ref = ort_conv(x, w, b, (2, 2), (1, 1), (1, 1, 1, 1), 12)
    old = neon.CHUNK_ELEMENTS
    try:
        for chunk in (1, 100, 1000):
            neon.CHUNK_ELEMENTS = chunk
            assert rel_err(neon.conv2d(x, w, b, (2, 2), (1, 1), (1, 1, 1, 1), 12), ref) < 1e-5
    finally:
        neon.CHUNK_ELEMENTS = old


def test_fully_connected_and_matmul():
    x, w, b = rand(3, 37), rand(1000, 37), rand(1000)
    ref = ort_single("Gemm", x, {"w": w, "b": b}, transB=1)
    assert rel_err(neon.fully_connected(x, w, b), ref) < 1e-5
    assert rel_err(neon.fully_connected(x, w, b, "relu"), np.maximum(ref, 0)) < 1e-5
    a, m = rand(2, 5, 7), rand(7, 3)
    assert rel_err(neon.matmul(a, m), ort_single("MatMul", a, {"m": m})) < 1e-5


@pytest.mark.parametrize("op,onnx_op", [("add", "Add"), ("sub", "Sub"), ("mul", "Mul"),
                                        ("div", "Div")])
def test_elementwise_broadcast(op, onnx_op):
    x = rand(2, 5, 3, 4)
    c = rand(4, lo=0.5, hi=2.0)
    got = neon.KERNELS[op]([x, c], {"activation": None})
    # ONNX sees NCHW and a (C, 1, 1) constant
    ref = ort_single(onnx_op, x.transpose(TO_NCHW), {"c": c.reshape(4, 1, 1)}).transpose(TO_NHWC)
    assert rel_err(got, ref) < 1e-6
    y = rand(2, 5, 3, 4)
    got2 = neon.KERNELS[op]([x, y], {"activation": "relu6"})
    assert rel_err(got2, np.clip(getattr(np, {"add": "add", "sub": "subtract", "mul": "multiply",
                                              "div": "divide"}[op])(x, y), 0, 6)) < 1e-6


def test_activations():
    x = rand(3, 4, 5, 6, lo=-8, hi=8)
    a = {"min": -1.5, "max": 2.5}
    assert np.array_equal(neon.KERNELS["relu"]([x], {}), ort_single("Relu", x))
    assert np.array_equal(neon.KERNELS["relu6"]([x], {}),
                          ort_single("Clip", x, {"lo": np.float32(0), "hi": np.float32(6)}))
    assert np.array_equal(neon.KERNELS["clip"]([x], a),
                          ort_single("Clip", x, {"lo": np.float32(-1.5), "hi": np.float32(2.5)}))
    assert rel_err(neon.KERNELS["sigmoid"]([x], {}), ort_single("Sigmoid", x)) < 1e-6
    assert rel_err(neon.KERNELS["tanh"]([x], {}), ort_single("Tanh", x)) < 1e-6
    assert rel_err(neon.KERNELS["leaky_relu"]([x], {"alpha": 0.1}),
                   ort_single("LeakyRelu", x, alpha=0.1)) < 1e-6
    assert rel_err(neon.KERNELS["hard_sigmoid"]([x], {"alpha": 0.25, "beta": 0.4}),
                   ort_single("HardSigmoid", x, alpha=0.25, beta=0.4)) < 1e-6
    assert rel_err(neon.KERNELS["hard_swish"]([x], {}), ort_single("HardSwish", x, opset=14)) < 1e-6


def test_batch_norm():
    x = rand(2, 5, 7, 9)
    g, b, m, v = rand(9), rand(9), rand(9), rand(9, lo=0.1, hi=2)
    ref = ort_single("BatchNormalization", x.transpose(TO_NCHW),
                     {"g": g, "b": b, "m": m, "v": v}, epsilon=1e-3).transpose(TO_NHWC)
    assert rel_err(neon.batch_norm(x, g, b, m, v, 1e-3), ref) < 1e-6


def test_fold_batch_norm_matches_separate_ops():
    x, w, b = rand(1, 9, 9, 4), rand(6, 3, 3, 4), rand(6)
    g, be, m, v = rand(6), rand(6), rand(6), rand(6, lo=0.2, hi=2)
    sep = neon.batch_norm(neon.conv2d(x, w, b, pads=(1, 1, 1, 1)), g, be, m, v, 1e-5)
    w2, b2 = neon.fold_batch_norm(w, b, g, be, m, v, 1e-5)
    assert rel_err(neon.conv2d(x, w2, b2, pads=(1, 1, 1, 1)), sep) < 1e-5


def test_pad():
    x = rand(1, 4, 5, 3)
    pads = ((0, 0), (1, 2), (0, 3), (0, 0))
    got = neon.KERNELS["pad"]([x], {"pads": pads, "mode": "constant", "value": 0.5})
    ref = ort_single("Pad", x.transpose(TO_NCHW),
                     {"p": np.array([0, 0, 1, 0, 0, 0, 2, 3], np.int64),
                      "v": np.float32(0.5)}).transpose(TO_NHWC)
    assert np.array_equal(got, ref)


POOL_CASES = [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 3), (2, 2), (1, 1, 1, 1)),
              ((3, 2), (1, 2), (0, 1, 2, 0)), ((7, 7), (1, 1), (0, 0, 0, 0))]


@pytest.mark.parametrize("kernel,strides,pads", POOL_CASES)
@pytest.mark.parametrize("include", [False, True])
def test_avg_pool(kernel, strides, pads, include):
    x = rand(2, 7, 9, 5)
    got = neon.avg_pool2d(x, kernel, strides, pads, include)
    pt, pl, pb, pr = pads
    ref = ort_single("AveragePool", x.transpose(TO_NCHW), kernel_shape=list(kernel),
                     strides=list(strides), pads=[pt, pl, pb, pr],
                     count_include_pad=int(include)).transpose(TO_NHWC)
    assert rel_err(got, ref) < 1e-6


@pytest.mark.parametrize("kernel,strides,pads", POOL_CASES)
def test_max_pool(kernel, strides, pads):
    x = rand(2, 7, 9, 5, lo=-5, hi=-1)  # all negative: padding must never win
    got = neon.max_pool2d(x, kernel, strides, pads)
    pt, pl, pb, pr = pads
    ref = ort_single("MaxPool", x.transpose(TO_NCHW), kernel_shape=list(kernel),
                     strides=list(strides), pads=[pt, pl, pb, pr]).transpose(TO_NHWC)
    assert np.array_equal(got, ref)


def test_global_pool_mean_softmax():
    x = rand(2, 7, 5, 1000)
    ref = ort_single("GlobalAveragePool", x.transpose(TO_NCHW)).transpose(TO_NHWC)
    assert rel_err(neon.global_avg_pool(x), ref) < 1e-6
    got = neon.KERNELS["mean"]([x], {"axes": (1,), "keepdims": False})
    assert rel_err(got, x.astype(np.float64).mean(axis=1)) < 1e-6
    logits = rand(3, 1001, lo=-20, hi=20)
    assert rel_err(neon.softmax(logits), ort_single("Softmax", logits, axis=-1)) < 1e-6
    s = neon.softmax(rand(2, 3, 4), axis=1)
    assert np.allclose(s.sum(axis=1), 1, atol=1e-6)


def test_shape_ops():
    x = rand(2, 3, 1, 4)
    k = neon.KERNELS
    assert k["reshape"]([x], {"shape": (6, 4)}).shape == (6, 4)
    assert np.array_equal(k["flatten"]([x], {"axis": 1}), x.reshape(2, 12))
    assert k["squeeze"]([x], {"axes": (2,)}).shape == (2, 3, 4)
    assert k["unsqueeze"]([x], {"axes": (0, 5)}).shape == (1, 2, 3, 1, 4, 1)
    assert np.array_equal(k["transpose"]([x], {"perm": (3, 0, 2, 1)}), x.transpose(3, 0, 2, 1))
    y = rand(2, 3, 1, 5)
    assert np.array_equal(k["concat"]([x, y], {"axis": 3}), np.concatenate([x, y], axis=3))


def _tiny_graph():
    g = Graph()
    g.add_input("x", (1, 6, 6, 3))
    g.add_constant("w", rand(4, 3, 3, 3))
    g.add_constant("b", rand(4))
    for name in ("g", "be", "m"):
        g.add_constant(name, rand(4))
    g.add_constant("v", rand(4, lo=0.5, hi=1.5))
    (c,) = g.add_node("conv2d", ["x", "w", "b"], pads=(1, 1, 1, 1))
    (bn,) = g.add_node("batch_norm", [c, "g", "be", "m", "v"])
    (r,) = g.add_node("relu6", [bn])
    (p,) = g.add_node("global_avg_pool", [r])
    g.add_output(p)
    return g


def test_runner_fused_equals_node_by_node():
    g = _tiny_graph()
    x = rand(1, 6, 6, 3, lo=-3, hi=3)
    fused = neon.NeonRunner(g).run({"x": x})
    plain = neon.NeonRunner(g, fuse=False).run({"x": x})
    out = g.outputs[0].tensor
    assert rel_err(fused[out], plain[out]) < 1e-6
    # node-by-node by hand from the kernels
    c = neon.conv2d(x, g.constants["w"], g.constants["b"], pads=(1, 1, 1, 1))
    bn = neon.batch_norm(c, *(g.constants[k] for k in ("g", "be", "m", "v")))
    assert rel_err(plain[out], np.clip(bn, 0, 6).mean(axis=(1, 2), keepdims=True)) < 1e-6
    runner = neon.NeonRunner(g)
    assert set(runner.where().values()) == {"conv2d", "global_avg_pool"}


def test_runner_keep_returns_every_tensor():
    g = _tiny_graph()
    env = neon.run(g, {"x": rand(1, 6, 6, 3)}, keep=True)
    assert set(env) >= {t for n in g.nodes for t in n.outputs} | {"x"}
    assert env[g.nodes[0].outputs[0]].shape == (1, 6, 6, 4)


def test_quantized_node_goes_to_neon_quant(monkeypatch):
    from hostside import neon_quant
    g = Graph()
    q = QuantParams(0.1, 128)
    g.add_input("x", (1, 4), "uint8", quant=q)
    (y,) = g.add_node("dequantize", ["x"])
    g.add_output(y)
    calls = []

    def fake(graph, node, inputs):
        calls.append(node.op)
        return [np.zeros((1, 4), np.float32)]
    monkeypatch.setattr(neon_quant, "run_node", fake)
    neon.run(g, {"x": np.zeros((1, 4), np.uint8)})
    assert calls == ["dequantize"]


def test_runner_reuses_buffers_without_corrupting_results():
    """The runner recycles dead tensors' memory: earlier results, the caller's input and later
    results must all stay intact."""
    g = Graph()
    g.add_input("x", (1, 9, 9, 4))
    g.add_constant("w", rand(8, 3, 3, 4))
    g.add_constant("dw", rand(8, 3, 3, 1))
    (a,) = g.add_node("conv2d", ["x", "w"], pads=(1, 1, 1, 1), activation="relu")
    (b,) = g.add_node("conv2d", [a, "dw"], pads=(1, 1, 1, 1), groups=8, strides=(2, 2))
    (c,) = g.add_node("conv2d", [b, "dw"], pads=(1, 1, 1, 1), groups=8)
    (r,) = g.add_node("reshape", [c], shape=(1, -1))
    g.add_output(r)
    runner = neon.NeonRunner(g)
    x1, x2 = rand(1, 9, 9, 4), rand(1, 9, 9, 4)
    x1_copy = x1.copy()
    y1 = runner.run({"x": x1})[r]
    y1_copy = y1.copy()
    y2 = runner.run({"x": x2})[r]
    y1_again = runner.run({"x": x1})[r]
    assert np.array_equal(x1, x1_copy) and np.array_equal(y1, y1_copy)
    assert np.array_equal(y1_again, y1) and not np.array_equal(y2, y1)
    ref = neon.NeonRunner(g, fuse=False).run({"x": x2}, keep=True)[r]
    assert rel_err(y2, ref) < 1e-6


def test_runner_never_recycles_constants_or_inputs(monkeypatch):
    """A kernel may hand back its input array itself (here an identity transpose made to do
    so); such a tensor must not go to the buffer pool when it dies, or the next run would
    overwrite a constant or the caller's input."""
    monkeypatch.setitem(neon.KERNELS, "transpose", lambda i, a: i[0])
    g = Graph()
    g.add_input("x", (2, 3))
    c = rand(2, 3)
    g.add_constant("c", c)
    (t,) = g.add_node("transpose", ["c"], perm=(0, 1))
    (tx,) = g.add_node("transpose", ["x"], perm=(0, 1))
    (y,) = g.add_node("add", [t, tx])
    (z,) = g.add_node("mul", [y, y])
    g.add_output(z)
    runner = neon.NeonRunner(g)
    x = rand(2, 3)
    x_copy = x.copy()
    for _ in range(3):
        out = runner.run({"x": x})[z]
    assert np.array_equal(g.constants["c"], c) and np.array_equal(x, x_copy)
    assert rel_err(out, (c + x) ** 2) < 1e-6
