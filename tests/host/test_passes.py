"""hostside.passes: each rewrite on small graphs and on MobileNets, checked for numerical
equivalence with hostside.neon before and after (the unrewritten graph runs node by node in
NeonRunner(fuse=False); the rewritten one node by node in passes.run_graph)."""
import collections

import numpy as np
import pytest

from hostside import neon, passes
from vc4infer.graph.ir import Graph
from host_graphs import add_bn, conv_graph, feeds_for, onnx_mobilenet, rand, tflite_mobilenet

# Batch-norm folding rounds w*s once instead of rounding the conv result and then scaling it:
# with at most 9*1280 products per output the float32 accumulation differs by a few K*2^-24
# relative to sum |w x|, which stays below 1e-5 of the output range in these graphs.
FOLD_RTOL = 1e-5


def before_after(g, rewrite, seed=0):
    feeds = feeds_for(g, seed)
    ref = neon.NeonRunner(g, fuse=False).run(feeds)
    g2 = rewrite(g)
    g2.validate()
    env = passes.run_graph(g2, feeds)
    return g2, {t: (env[t], ref[t]) for t in ref}


def ops_of(g):
    return collections.Counter(n.op for n in g.nodes)


def assert_same(pairs):
    for t, (got, ref) in pairs.items():
        assert got.shape == ref.shape and got.dtype == ref.dtype, t
        np.testing.assert_array_equal(got, ref, err_msg=t)


def assert_close(pairs, rtol=FOLD_RTOL):
    for t, (got, ref) in pairs.items():
        assert got.shape == ref.shape, t
        span = float(np.abs(ref).max())
        assert span > 0.1
        assert float(np.abs(got - ref).max()) <= rtol * span, t


# -- batch norm --------------------------------------------------------------------------

@pytest.mark.parametrize("groups,c,o", [(1, 5, 8), (6, 6, 6)])
def test_fold_batch_norm_into_conv(groups, c, o):
    g, y = conv_graph(c=c, o=o, groups=groups, pads=(1, 1, 1, 1))
    g.add_output(add_bn(g, y))
    g2, pairs = before_after(g, passes.fold_batch_norm)
    assert ops_of(g2) == {"conv2d": 1}
    assert "bn:g" not in g2.constants and "w" not in g2.constants   # folded away, pruned
    assert passes.fused_from(g2, g2.nodes[0]) == ["conv", "bn"]
    assert_close(pairs)


def test_fold_batch_norm_into_fully_connected_without_bias():
    g = Graph()
    g.add_input("x", (2, 20), "float32")
    g.add_constant("w", rand(7, 20))
    (y,) = g.add_node("fully_connected", ["x", "w"], name="fc")
    g.add_output(add_bn(g, y))
    g2, pairs = before_after(g, passes.fold_batch_norm)
    assert ops_of(g2) == {"fully_connected": 1} and len(g2.nodes[0].inputs) == 3
    assert_close(pairs)


def test_batch_norm_stays_when_conv_output_has_two_readers_or_an_activation():
    g, y = conv_graph()
    z = add_bn(g, y)
    (s,) = g.add_node("add", [z, y])            # y read twice
    g.add_output(s)
    assert ops_of(passes.fold_batch_norm(g))["batch_norm"] == 1
    g, y = conv_graph(activation="relu")
    g.add_output(add_bn(g, y))
    assert ops_of(passes.fold_batch_norm(g))["batch_norm"] == 1
    g, y = conv_graph()
    g.add_output(y)                             # conv output is a graph output
    g.add_output(add_bn(g, y))
    assert ops_of(passes.fold_batch_norm(g))["batch_norm"] == 1


# -- activations -------------------------------------------------------------------------

# -- batch norm written as x * scale + offset -----------------------------------------------

def _scale_shift(g, y, scale_shape, shift_shape, order=("mul", "add")):
    rng = np.random.default_rng(3)
    for op, shape in zip(order, (scale_shape, shift_shape)):
        k = g.add_constant(f"{op}:k", rng.uniform(0.5, 1.5, shape).astype(np.float32))
        (y,) = g.add_node(op, [y, k] if op != "mul" else [k, y], name=op)
    return y


@pytest.mark.parametrize("groups,c,o", [(1, 5, 8), (8, 8, 8)])
@pytest.mark.parametrize("shapes", [((8,), (8,)), ((1, 1, 1, 8), (1, 1, 1, 8)), ((), (1,))])
def test_scale_and_offset_fold_into_the_conv(groups, c, o, shapes):
    g, y = conv_graph(c=c, o=o, groups=groups, pads=(1, 1, 1, 1))
    z = _scale_shift(g, y, *shapes)
    (r,) = g.add_node("relu6", [z], name="act")
    g.add_output(r)
    g2, pairs = before_after(g, passes.optimise)
    assert ops_of(g2) == {"conv2d": 1} and g2.nodes[0].attrs["activation"] == "relu6"
    assert passes.fused_from(g2, g2.nodes[0]) == ["conv", "mul", "add", "act"]
    assert_close(pairs)


def test_scale_shift_into_fully_connected_and_sub():
    g = Graph()
    g.add_input("x", (2, 20), "float32")
    g.add_constant("w", rand(7, 20))
    (y,) = g.add_node("fully_connected", ["x", "w"], name="fc")
    z = _scale_shift(g, y, (7,), (1, 7), order=("mul", "sub"))
    g.add_output(z)
    g2, pairs = before_after(g, passes.fold_scale_shift)
    assert ops_of(g2) == {"fully_connected": 1}
    assert_close(pairs)


def test_scale_shift_that_is_not_per_channel_stays():
    g, y = conv_graph(o=8)
    k = g.add_constant("k", rand(1, 4, 1, 8))           # varies along H: not a per-channel scale
    (z,) = g.add_node("mul", [y, k], name="mul")
    g.add_output(z)
    assert ops_of(passes.fold_scale_shift(g))["mul"] == 1
    g, y = conv_graph(o=8)
    k = g.add_constant("k", rand(8))
    (z,) = g.add_node("sub", [k, y], name="sub")         # c - y negates the conv: not folded
    g.add_output(z)
    assert ops_of(passes.fold_scale_shift(g))["sub"] == 1
    g, y = conv_graph(o=8, activation="relu")            # the conv's activation comes first
    k = g.add_constant("k", rand(8))
    (z,) = g.add_node("mul", [y, k], name="mul")
    g.add_output(z)
    assert ops_of(passes.fold_scale_shift(g))["mul"] == 1


@pytest.mark.parametrize("act_op,attrs,expect", [
    ("relu", {}, "relu"), ("relu6", {}, "relu6"), ("clip", {"min": 0.0, "max": 6.0}, "relu6"),
    ("clip", {"min": 0.0}, "relu"),
])
def test_activation_fused_into_conv(act_op, attrs, expect):
    g, y = conv_graph()
    (z,) = g.add_node(act_op, [y], **attrs)
    g.add_output(z)
    g2, pairs = before_after(g, passes.fuse_activation)
    assert ops_of(g2) == {"conv2d": 1} and g2.nodes[0].attrs["activation"] == expect
    assert g2.nodes[0].outputs == [z]
    assert_same(pairs)


def test_clip_that_is_no_relu_stays():
    g, y = conv_graph()
    (z,) = g.add_node("clip", [y], min=-1.0, max=1.0)
    g.add_output(z)
    assert ops_of(passes.fuse_activation(g)) == {"conv2d": 1, "clip": 1}


def test_activation_chains_compose_and_fuse_into_add():
    g, y = conv_graph(activation="relu6")
    (r,) = g.add_node("relu", [y])              # relu after relu6: still relu6
    (a,) = g.add_node("add", [r, r])
    (z,) = g.add_node("relu", [a])
    (z2,) = g.add_node("relu6", [z])
    g.add_output(z2)
    g2, pairs = before_after(g, passes.fuse_activation)
    assert [(n.op, n.attrs["activation"]) for n in g2.nodes] == [("conv2d", "relu6"),
                                                                  ("add", "relu6")]
    assert_same(pairs)


# -- pad ---------------------------------------------------------------------------------

@pytest.mark.parametrize("groups,strides", [(1, (1, 1)), (5, (2, 2))])
def test_pad_fused_into_conv(groups, strides):
    g = Graph()
    g.add_input("x", (1, 9, 8, 5), "float32")
    (p,) = g.add_node("pad", ["x"], pads=((0, 0), (0, 1), (2, 1), (0, 0)))
    g.add_constant("w", rand(5 if groups == 5 else 4, 3, 3, 5 // groups))
    (y,) = g.add_node("conv2d", [p, "w"], name="conv", strides=strides, groups=groups,
                      pads=(1, 0, 0, 1))
    g.add_output(y)
    g2, pairs = before_after(g, passes.fuse_pad)
    assert ops_of(g2) == {"conv2d": 1}
    assert g2.nodes[0].attrs["pads"] == (1, 2, 1, 2)
    assert passes.fused_from(g2, g2.nodes[0]) == ["pad", "conv"]
    assert_same(pairs)


@pytest.mark.parametrize("pads,value", [(((0, 0), (1, 1), (1, 1), (0, 2)), 0.0),
                                        (((0, 0), (1, 1), (1, 1), (0, 0)), 1.0),
                                        (((0, 0), (-1, 0), (1, 1), (0, 0)), 0.0)])
def test_pad_that_conv_cannot_express_stays(pads, value):
    g = Graph()
    g.add_input("x", (1, 6, 6, 3), "float32")
    (p,) = g.add_node("pad", ["x"], pads=pads, value=value)
    c = g.tensors[p].shape[3]
    g.add_constant("w", rand(4, 1, 1, c))
    g.add_output(g.add_node("conv2d", [p, "w"])[0])
    assert ops_of(passes.fuse_pad(g)) == {"pad": 1, "conv2d": 1}


# -- residual ----------------------------------------------------------------------------

@pytest.mark.parametrize("bias,act,swap", [(True, None, False), (False, "relu6", True)])
def test_residual_add_fused_into_pointwise_conv(bias, act, swap):
    g = Graph()
    g.add_input("x", (1, 5, 7, 6), "float32")
    g.add_constant("w", rand(6, 1, 1, 6))
    g.add_constant("b", rand(6))
    (y,) = g.add_node("conv2d", ["x", "w", "b"] if bias else ["x", "w"], name="proj")
    (s,) = g.add_node("add", [y, "x"] if swap else ["x", y], name="res", activation=act)
    g.add_output(s)
    g2, pairs = before_after(g, passes.fuse_residual)
    (node,) = g2.nodes
    assert passes.is_residual_conv(node) and node.inputs[3] == "x" and node.outputs == [s]
    assert node.attrs["activation"] == act
    assert passes.fused_from(g2, node) == ["proj", "res"]
    assert_same(pairs)


def test_residual_not_fused_for_3x3_broadcast_or_constant_operands():
    g, y = conv_graph(c=8, o=8, pads=(1, 1, 1, 1))        # 3x3 conv
    g.add_output(g.add_node("add", [y, "x"])[0])
    assert ops_of(passes.fuse_residual(g)) == {"conv2d": 1, "add": 1}
    g, y = conv_graph(c=8, o=8, k=1)
    g.add_constant("k", rand(8))
    g.add_output(g.add_node("add", [y, "k"])[0])          # constant, broadcast operand
    assert ops_of(passes.fuse_residual(g)) == {"conv2d": 1, "add": 1}


# -- expansion + depthwise -----------------------------------------------------------------

def _expand_then_depthwise(k=6, c=12, bias=True, stride=1, act="relu6"):
    """x -> 1x1 conv (K -> C) + act -> 3x3 depthwise conv, as the importers write it."""
    g = Graph()
    g.add_input("x", (1, 7, 9, k), "float32")
    g.add_constant("we", rand(c, 1, 1, k))
    g.add_constant("be", rand(c))
    g.add_constant("wd", rand(c, 3, 3, 1))
    (e,) = g.add_node("conv2d", ["x", "we", "be"] if bias else ["x", "we"], name="expand")
    if act:
        (e,) = g.add_node(act, [e], name="act")
    (y,) = g.add_node("conv2d", [e, "wd"], name="dw", groups=c, strides=(stride, stride),
                      pads=(1, 1, 1, 1), activation="relu")
    return g, y


@pytest.mark.parametrize("bias,stride,act", [(True, 1, "relu6"), (False, 2, None)])
def test_expansion_and_depthwise_conv_become_one_node(bias, stride, act):
    g, y = _expand_then_depthwise(bias=bias, stride=stride, act=act)
    g.add_output(y)
    g2, pairs = before_after(g, lambda g: passes.fuse_expand_depthwise(passes.optimise(g)))
    (node,) = g2.nodes
    assert node.op == "expand_depthwise" and node.outputs == [y]
    assert node.attrs == {"act_expand": act, "strides": (stride, stride), "pads": (1, 1, 1, 1),
                          "activation": "relu"}
    assert passes.fused_from(g2, node) == ["expand", "act", "dw"] if act else ["expand", "dw"]
    assert_same(pairs)          # the same two float32 convolutions, bit for bit


def test_expansion_read_twice_or_refused_stays_apart():
    g, y = _expand_then_depthwise()
    g.add_output(y)
    g.add_output(g.nodes[1].outputs[0])                    # the expansion is read twice
    assert ops_of(passes.fuse_expand_depthwise(passes.optimise(g))) == {"conv2d": 2}
    g, y = _expand_then_depthwise()
    g.add_output(y)
    refused = passes.fuse_expand_depthwise(passes.optimise(g), accept=lambda g, node: False)
    assert ops_of(refused) == {"conv2d": 2}
    g, y = conv_graph(c=8, o=8, k=1, strides=(2, 2))       # a strided 1x1 conv is no expansion
    g.add_constant("wd", rand(8, 3, 3, 1))
    g.add_output(g.add_node("conv2d", [y, "wd"], groups=8, pads=(1, 1, 1, 1))[0])
    assert ops_of(passes.fuse_expand_depthwise(g)) == {"conv2d": 2}
    g, y = conv_graph(c=8, o=8, k=1)                      # a full 3x3 conv after it: no either
    g.add_constant("w3", rand(8, 3, 3, 8))
    g.add_output(g.add_node("conv2d", [y, "w3"], pads=(1, 1, 1, 1))[0])
    assert ops_of(passes.fuse_expand_depthwise(g)) == {"conv2d": 2}


# -- views and dead nodes ----------------------------------------------------------------

def test_views_become_one_reshape_and_identities_vanish():
    g = Graph()
    g.add_input("x", (1, 1, 1, 12), "float32")
    (a,) = g.add_node("squeeze", ["x"], axes=(1, 2))          # (1, 12)
    (b,) = g.add_node("unsqueeze", [a], axes=(1,))            # (1, 1, 12)
    (c,) = g.add_node("flatten", [b], axis=1)                 # (1, 12): a view chain
    (d,) = g.add_node("relu", [c])
    (e,) = g.add_node("reshape", [d], shape=(1, 12))          # identity
    (f,) = g.add_node("reshape", [e], shape=(3, 4))
    g.add_output(f)
    g2, pairs = before_after(g, passes.canonical_views)
    # squeeze, unsqueeze, flatten: one reshape of x; the identity reshape is gone
    assert [(n.op, n.inputs) for n in g2.nodes] == [("reshape", ["x"]), ("relu", [c]),
                                                    ("reshape", [d])]
    assert_same(pairs)
    assert sorted(n for v in g2.meta[passes.FUSED_KEY].values() for n in v) == \
        sorted(n.name for n in g.nodes)


def test_dead_nodes_dropped():
    g, y = conv_graph()
    g.add_node("relu", [y], name="unused")
    g.add_output(y)
    assert [n.op for n in passes.drop_dead_nodes(g).nodes] == ["conv2d"]


def test_passes_leave_the_input_graph_alone():
    g, y = conv_graph()
    g.add_output(add_bn(g, y))
    before = [(n.op, list(n.inputs), list(n.outputs), dict(n.attrs)) for n in g.nodes]
    passes.optimise(g)
    assert [(n.op, n.inputs, n.outputs, n.attrs) for n in g.nodes] == before
    assert "bn:g" in g.constants


# -- MobileNets ----------------------------------------------------------------------------

@pytest.mark.parametrize("source,version", [("onnx", "v1"), ("onnx", "v2"), ("tflite", "v1"),
                                            ("tflite", "v2")])
def test_mobilenet_fuses_to_conv_steps_and_keeps_its_numbers(source, version):
    g = onnx_mobilenet(version)[0] if source == "onnx" else tflite_mobilenet(version)[0]
    g2 = passes.optimise(g)
    counts = ops_of(g2)
    convs = ops_of(g)["conv2d"]
    assert counts["conv2d"] == convs                     # one step per conv ...
    for gone in ("batch_norm", "relu", "relu6", "clip", "pad", "add"):
        assert gone not in counts                        # ... everything else fused into them
    residual = sum(passes.is_residual_conv(n) for n in g2.nodes)
    assert residual == ops_of(g).get("add", 0)           # every residual add of MobileNet v2
    covered = [n for v in g2.meta[passes.FUSED_KEY].values() for n in v]
    assert sorted(covered) == sorted(n.name for n in g.nodes)   # every node executed once
    feeds = feeds_for(g, 1)
    ref = neon.NeonRunner(g, fuse=False).run(feeds)
    got = passes.run_graph(g2, feeds)
    pairs = {t: (got[t], ref[t]) for t in ref}
    if source == "onnx":
        assert_close(pairs)      # batch norm folded
    else:
        assert_same(pairs)       # pad, activation and residual fusion change no rounding


def test_quantized_mobilenet_is_left_to_integer_semantics():
    g = tflite_mobilenet("v1", dtype="uint8")[0]
    g2 = passes.optimise(g)
    assert ops_of(g2) == ops_of(g)


def test_neon_refuses_the_fused_residual_form_instead_of_dropping_it():
    import numpy as np
    import pytest as _pytest

    from hostside import neon
    from vc4infer.errors import GraphError
    from vc4infer.graph.ir import Node

    node = Node("conv2d", "c", ["x", "w", "b", "r"], ["y"], {})
    with _pytest.raises(GraphError, match="passes.run_node"):
        neon.run_node(None, node, [np.zeros((1, 2, 2, 1), np.float32)] * 4)
