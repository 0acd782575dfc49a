"""The IR: construction, shape inference, checks, specs at the boundary, counts and summary."""
import numpy as np
import pytest

from vc4infer.errors import GraphError
from vc4infer.graph import ops
from vc4infer.graph.ir import Graph, QuantParams, TensorSpec
from test_onnx_helpers import load_build_onnx


def _conv_graph(h=10, w=12, c=3, o=8, k=3, **attrs):
    g = Graph()
    g.add_input("x", (1, h, w, c))
    g.add_constant("w", np.zeros((o, k, k, c // attrs.get("groups", 1)), np.float32))
    (y,) = g.add_node("conv2d", ["x", "w"], **attrs)
    return g, y


@pytest.mark.parametrize("attrs,shape", [
    ({}, (1, 8, 10, 8)),
    ({"pads": (1, 1, 1, 1)}, (1, 10, 12, 8)),
    ({"pads": (1, 1, 1, 1), "strides": (2, 2)}, (1, 5, 6, 8)),
    ({"pads": (0, 0, 1, 1), "strides": (2, 2)}, (1, 5, 6, 8)),      # TF "SAME", stride 2
    ({"dilations": (2, 3)}, (1, 6, 6, 8)),
    ({"pads": (2, 0, 1, 3), "strides": (3, 1)}, (1, 4, 13, 8)),
])
def test_conv_shape_inference(attrs, shape):
    g, y = _conv_graph(**attrs)
    assert g.tensor(y).shape == shape
    # (H + pt + pb - d*(k-1) - 1) // s + 1 worked out by hand for the first row: (10-2-1)//1+1 = 8


def test_depthwise_is_grouped_conv():
    g, y = _conv_graph(c=6, o=12, groups=6)
    assert ops.is_depthwise(g, g.nodes[0])
    g2, _ = _conv_graph(c=6, o=6, groups=3)
    assert not ops.is_depthwise(g2, g2.nodes[0])


@pytest.mark.parametrize("bad", [
    dict(groups=2),                        # 3 channels do not split in 2 groups
    dict(strides=(0, 1)),
    dict(pads=(-1, 0, 0, 0)),
    dict(k=13),                            # kernel larger than the input
    dict(bogus=1),
])
def test_conv_errors(bad):
    k = bad.pop("k", 3)
    with pytest.raises(GraphError):
        _conv_graph(k=k, **bad)


def test_errors_name_the_problem():
    g = Graph()
    g.add_input("x", (1, 4))
    with pytest.raises(GraphError, match="unknown IR op 'frobnicate'"):
        g.add_node("frobnicate", ["x"])
    with pytest.raises(GraphError, match="does not exist"):
        g.add_node("relu", ["nope"])
    with pytest.raises(GraphError, match="missing attribute"):
        g.add_node("reshape", ["x"])
    with pytest.raises(GraphError, match="cannot reshape"):
        g.add_node("reshape", ["x"], shape=(3, -1))
    with pytest.raises(GraphError, match="takes inputs"):
        g.add_node("add", ["x"])
    g.add_constant("w", np.zeros((5, 3), np.float32))
    with pytest.raises(GraphError, match="fully_connected"):
        g.add_node("fully_connected", ["x", "w"])
    with pytest.raises(GraphError, match="do not broadcast"):
        g.add_constant("c", np.zeros(3, np.float32))
        g.add_node("add", ["x", "c"])


def test_shape_inference_of_other_ops():
    g = Graph()
    g.add_input("x", (2, 9, 7, 5))
    s = lambda op, *ins, **a: g.tensor(g.add_node(op, list(ins), **a)[0]).shape  # noqa: E731
    assert s("avg_pool2d", "x", kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1)) == (2, 5, 4, 5)
    assert s("max_pool2d", "x", kernel=(2, 2), strides=(2, 2)) == (2, 4, 3, 5)
    assert s("global_avg_pool", "x") == (2, 1, 1, 5)
    assert s("mean", "x", axes=(1, 2), keepdims=False) == (2, 5)
    assert s("mean", "x", axes=(-1,)) == (2, 9, 7, 1)
    assert s("pad", "x", pads=((0, 0), (1, 2), (3, 0), (0, 0))) == (2, 12, 10, 5)
    assert s("reshape", "x", shape=(2, -1)) == (2, 315)
    assert s("flatten", "x", axis=2) == (2, 9, 35)
    assert s("transpose", "x", perm=(0, 3, 1, 2)) == (2, 5, 9, 7)
    assert s("concat", "x", "x", axis=3) == (2, 9, 7, 10)
    assert s("softmax", "x") == (2, 9, 7, 5)
    assert s("unsqueeze", "x", axes=(0,)) == (1, 2, 9, 7, 5)
    (gp,) = g.add_node("global_avg_pool", ["x"])
    assert s("squeeze", gp, axes=(1, 2)) == (2, 5)
    g.add_constant("m", np.zeros((5, 3), np.float32))
    assert s("matmul", "x", "m") == (2, 9, 7, 3)
    with pytest.raises(GraphError, match="differ outside axis"):
        g.add_node("concat", ["x", gp], axis=3)


def test_declared_output_shape_is_checked():
    g = Graph()
    g.add_input("x", (1, 4, 4, 2))
    g.add_tensor("y", (1, 4, 4, 3), "uint8", QuantParams(0.5, 3))
    with pytest.raises(GraphError, match="declared with shape"):
        g.add_node("relu", ["x"], outputs=["y"])


def test_quant_params():
    q = QuantParams([0.1, 0.2, 0.3], 0, axis=0)
    assert q.per_channel and q.zero_point.tolist() == [0, 0, 0]
    with pytest.raises(GraphError):
        QuantParams([0.1, 0.2], [1, 2, 3], axis=0)
    with pytest.raises(GraphError, match="need an axis"):
        QuantParams([0.1, 0.2], 0)


def test_tensor_spec_boundary():
    spec = TensorSpec("in", (1, 3, 5, 7), "float32", "NCHW", "t")
    assert spec.internal_shape == (1, 5, 7, 3)
    x = np.arange(105, dtype=np.float32).reshape(1, 3, 5, 7)
    inner = spec.to_internal(x)
    assert inner[0, 2, 4, 1] == x[0, 1, 2, 4]
    assert np.array_equal(spec.from_internal(inner), x)
    nhwc = TensorSpec("in", (1, 5, 7, 3), "uint8", "NHWC", "t")
    assert nhwc.to_internal(inner) is inner
    with pytest.raises(GraphError):
        TensorSpec("in", (1, 3), "float32", "NCHW", "t")


def test_validate_catches_order_and_counts():
    g, y = _conv_graph()
    (r,) = g.add_node("relu", [y])
    g.add_output(r)
    g.validate()
    g.nodes.reverse()
    with pytest.raises(GraphError, match="before it is produced"):
        g.validate()


def test_counts_and_summary():
    g, y = _conv_graph(h=10, w=12, c=3, o=8, k=3, pads=(1, 1, 1, 1))
    g.add_constant("fw", np.zeros((10, 8), np.float32))
    g.add_constant("fb", np.zeros(10, np.float32))
    (p,) = g.add_node("global_avg_pool", [y])
    (f,) = g.add_node("reshape", [p], shape=(1, 8))
    (z,) = g.add_node("fully_connected", [f, "fw", "fb"])
    g.add_output(z)
    # conv: 10*12 outputs * 8 channels * 3*3*3 taps; fc: 10 * 8
    assert g.total_macs() == 10 * 12 * 8 * 27 + 80
    assert g.total_params() == 8 * 27 + 80 + 10
    text = g.summary(where={n.name: "neon" for n in g.nodes})
    assert "25,920" in text and "neon" in text and "x: float32[1, 10, 12, 3] NHWC" in text


# Published figures: MobileNet v1 1.0/224: 569 M multiply-adds, 4.2 M parameters (Howard et al.
# 2017, table 8); MobileNet v2 1.0/224: 300 M multiply-adds, 3.4 M parameters (Sandler et al.
# 2018, table 4). Our parameter count also includes batch norm's running mean and variance.
@pytest.mark.parametrize("version,macs,params", [("v1", 569e6, 4.2e6), ("v2", 300e6, 3.4e6)])
def test_mobilenet_counts_match_the_papers(tmp_path, version, macs, params):
    build = load_build_onnx()
    from vc4infer.graph.importers import import_model
    model = getattr(build, f"mobilenet_{version}")(1.0, 224)
    path = build.write(model, str(tmp_path / "m.onnx"))
    g = import_model(path)
    assert abs(g.total_macs() - macs) / macs < 0.005
    assert abs(g.total_params() - params) / params < 0.05
