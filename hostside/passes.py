"""Graph -> graph rewrites that prepare an IR graph for the QPU scheduler.

Each pass is a pure function `pass(graph) -> Graph`: the input graph is not modified, the result
computes the same outputs (up to the float32 rounding that batch-norm folding changes) and keeps
every graph output tensor name. Only float32 nodes are rewritten (quantized nodes keep TFLite's
integer semantics on the CPU). `optimise` runs them all in order.

- `canonical_views`: flatten / squeeze / unsqueeze become `reshape` (one view op for the planner),
  chains of reshapes collapse, reshapes to the same shape disappear.
- `fold_batch_norm`: conv2d / fully_connected + batch_norm -> one conv with folded weights.
- `fold_scale_shift`: conv2d / fully_connected + mul / add / sub by a per-channel constant (the
  batch norm as x * scale + offset) -> one conv with folded weights and bias.
- `fuse_activation`: conv2d / fully_connected / add / sub / mul / div + relu / relu6 / clip(0, 6)
  / clip(0, inf) -> the op's `activation` attribute.
- `fuse_pad`: zero `pad` of H and W in front of a conv2d -> the conv's own `pads`.
- `fuse_residual`: 1x1 conv2d (no activation) whose output only feeds an `add` -> one conv2d node
  with a fourth input, the residual: y = act(conv(x, w) + b + r) (MobileNet v2's projection + add).
- `drop_dead_nodes`: nodes whose outputs nobody reads.
- `fuse_expand_depthwise` (not in `optimise`: the QPU model applies it when a kernel runs the
  fused node): a 1x1 conv2d whose output only feeds a depthwise conv2d -> one `expand_depthwise`
  node (MobileNet v2's expansion + depthwise conv), whose expanded tensor is never stored.

`graph.meta["fused_nodes"]` maps the name of every node of the result to the names of the nodes
of the original graph it executes (for summaries and per-layer reports).

The fused-residual conv is the one node form the IR op table does not describe;
`run_node` runs any node of a rewritten graph on the CPU with hostside.neon's numerics (a fused
node as the ops it replaced, with their float32 roundings).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from hostside import neon
from vc4infer.graph import ops
from vc4infer.graph.ir import Graph, Node

FUSED_KEY = "fused_nodes"
VIEW_OPS = ("reshape", "flatten", "squeeze", "unsqueeze")
_ACT_OPS = ("conv2d", "fully_connected", "add", "sub", "mul", "div")


# -- helpers -------------------------------------------------------------------------------

def clone(graph: Graph, nodes: Optional[list] = None) -> Graph:
    """A new Graph with the same tensors, constants (arrays shared, never modified), specs and
    meta, and `nodes` (default: copies of the graph's nodes)."""
    g = Graph(meta=dict(graph.meta))
    g.tensors = dict(graph.tensors)
    g.constants = dict(graph.constants)
    g.inputs = list(graph.inputs)
    g.outputs = list(graph.outputs)
    if nodes is None:
        nodes = [Node(n.op, n.name, list(n.inputs), list(n.outputs), dict(n.attrs))
                 for n in graph.nodes]
    g.nodes = nodes
    g.meta[FUSED_KEY] = dict(graph.meta.get(FUSED_KEY) or {n.name: [n.name] for n in graph.nodes})
    return g


def fused_from(graph: Graph, node: Node) -> list:
    """Names of the original graph's nodes that `node` of a rewritten graph executes."""
    return list((graph.meta.get(FUSED_KEY) or {}).get(node.name, [node.name]))


def _absorb(g: Graph, fused: Node, *gone: Node) -> None:
    """Record that `fused` executes what the `gone` nodes did."""
    table = g.meta[FUSED_KEY]
    names = []
    for n in gone:
        names += table.pop(n.name, [n.name])
    table[fused.name] = names


def _consumers(g: Graph) -> dict:
    users: dict[str, list] = {}
    for n in g.nodes:
        for t in dict.fromkeys(n.inputs):
            users.setdefault(t, []).append(n)
    return users


def _sole_consumer(g: Graph, tensor: str, users: dict) -> Optional[Node]:
    """The one node reading `tensor` (once), when the tensor is not a graph output."""
    readers = users.get(tensor, [])
    if len(readers) != 1 or any(s.tensor == tensor for s in g.outputs):
        return None
    node = readers[0]
    return node if node.inputs.count(tensor) == 1 else None


def _float(g: Graph, node: Node) -> bool:
    return not g.node_quantized(node) and all(g.tensors[t].dtype == "float32"
                                              for t in (*node.inputs, *node.outputs))


def _prune(g: Graph) -> Graph:
    """Drop tensors and constants that no node and no spec refers to."""
    used = {t for n in g.nodes for t in (*n.inputs, *n.outputs)}
    used |= {s.tensor for s in (*g.inputs, *g.outputs)}
    g.tensors = {k: v for k, v in g.tensors.items() if k in used}
    g.constants = {k: v for k, v in g.constants.items() if k in used}
    return g


def _rewrite_chains(graph: Graph, match: Callable) -> Graph:
    """Generic producer -> sole-consumer fusion. `match(g, producer, consumer)` returns the
    fused node (writing the consumer's output) or None. The fused node takes the consumer's
    place in the order (the consumer's other inputs may be produced after the producer) and is
    itself offered to `match` again (relu after relu6, ...)."""
    g = clone(graph)
    users = _consumers(g)
    i = 0
    while i < len(g.nodes):
        node = g.nodes[i]
        nxt = _sole_consumer(g, node.outputs[0], users) if len(node.outputs) == 1 else None
        fused = match(g, node, nxt) if nxt is not None else None
        if fused is None:
            i += 1
            continue
        _absorb(g, fused, node, nxt)
        g.nodes[g.nodes.index(nxt)] = fused
        del g.nodes[i]
        users = _consumers(g)
    return _prune(g)


# -- passes --------------------------------------------------------------------------------

def canonical_views(graph: Graph) -> Graph:
    """flatten / squeeze / unsqueeze -> reshape; reshape of a reshape reads the first input;
    reshapes whose output shape equals the input shape are removed (unless their output is a
    graph output)."""
    g = clone(graph)
    source: dict[str, str] = {}   # tensor of a removed view -> the tensor standing in for it
    made_by: dict[str, Node] = {}  # tensor -> the kept node producing it
    outputs = {s.tensor for s in g.outputs}
    collapsed: dict[str, str] = {}   # view read through -> the view reading through it
    kept = []
    for node in g.nodes:
        node.inputs = [source.get(t, t) for t in node.inputs]
        if node.op not in VIEW_OPS or not _float(g, node):
            kept.append(node)
            made_by.update((t, node) for t in node.outputs)
            continue
        x, y = node.inputs[0], node.outputs[0]
        shape = g.tensors[y].shape
        prev = made_by.get(x)
        if prev is not None and prev.op == "reshape":
            x = prev.inputs[0]   # a view of a view is a view of the first
            collapsed[prev.name] = node.name
        if g.tensors[x].shape == shape and y not in outputs:
            source[y] = x
            if x in made_by:
                _absorb(g, made_by[x], made_by[x], node)
            else:
                g.meta[FUSED_KEY].pop(node.name, None)
            continue
        view = Node("reshape", node.name, [x], [y], {"shape": shape})
        kept.append(view)
        made_by[y] = view
    g.nodes = kept
    before = dict(g.meta[FUSED_KEY])
    g = drop_dead_nodes(_prune(g))
    # a view that a later view reads through and nobody else reads is now part of that view
    alive = {n.name for n in g.nodes}
    for name, into in collapsed.items():
        if name not in alive:
            while into not in alive and into in collapsed:
                into = collapsed[into]
            if into in alive:
                g.meta[FUSED_KEY][into] = before[name] + g.meta[FUSED_KEY][into]
    return g


def fold_batch_norm(graph: Graph) -> Graph:
    """conv2d / fully_connected with constant weights and no activation, followed by its only
    consumer batch_norm with constant parameters -> the conv with folded weights and bias
    (hostside.neon.fold_batch_norm)."""
    def match(g: Graph, node: Node, nxt: Node) -> Optional[Node]:
        if node.op not in ("conv2d", "fully_connected") or nxt.op != "batch_norm" or \
                node.attrs["activation"] is not None or len(node.inputs) > 3 or \
                not _float(g, node) or not _float(g, nxt) or \
                not all(g.is_constant(t) for t in (*node.inputs[1:], *nxt.inputs[1:])):
            return None
        if nxt.inputs[0] != node.outputs[0]:
            return None
        w = g.constants[node.inputs[1]]
        b = g.constants[node.inputs[2]] if len(node.inputs) > 2 else None
        w2, b2 = neon.fold_batch_norm(w, b, *(g.constants[t] for t in nxt.inputs[1:]),
                                      nxt.attrs["epsilon"])
        wn = g.add_constant(g.unique_name(f"{node.name}:w_bn"), w2)
        bn = g.add_constant(g.unique_name(f"{node.name}:b_bn"), b2)
        return Node(node.op, node.name, [node.inputs[0], wn, bn], list(nxt.outputs),
                    dict(node.attrs))
    return _rewrite_chains(graph, match)


def _channel_vector(g: Graph, tensor: str, channels: int) -> Optional[np.ndarray]:
    """A constant that broadcasts along the last axis only (per channel, or one scalar), as a
    vector of `channels`; None for any other tensor."""
    if not g.is_constant(tensor):
        return None
    c = g.constants[tensor]
    if c.dtype != np.float32 or any(d != 1 for d in c.shape[:-1]) or \
            (c.ndim and c.shape[-1] not in (1, channels)):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,))


def fold_scale_shift(graph: Graph) -> Graph:
    """conv2d / fully_connected with constant weights and no activation, followed by its only
    consumer mul / add / sub with a per-channel (or scalar) constant -> the conv with folded
    weights and bias (hostside.neon.fold_scale_shift). This is the batch norm that TF-slim
    graphs and converters write as x * scale + offset; a mul then an add fold one after the
    other. The consumer's activation becomes the conv's."""
    def match(g: Graph, node: Node, nxt: Node) -> Optional[Node]:
        if node.op not in ("conv2d", "fully_connected") or nxt.op not in ("mul", "add", "sub") or \
                node.attrs["activation"] is not None or len(node.inputs) > 3 or \
                not _float(g, node) or not _float(g, nxt) or \
                not all(g.is_constant(t) for t in node.inputs[1:]):
            return None
        y = node.outputs[0]
        if g.tensors[nxt.outputs[0]].shape != g.tensors[y].shape or nxt.inputs.count(y) != 1:
            return None
        if nxt.op == "sub" and nxt.inputs[0] != y:
            return None                          # c - y negates y: not folded
        other = nxt.inputs[1] if nxt.inputs[0] == y else nxt.inputs[0]
        v = _channel_vector(g, other, g.tensors[y].shape[-1])
        if v is None:
            return None
        w = g.constants[node.inputs[1]]
        b = g.constants[node.inputs[2]] if len(node.inputs) > 2 else None
        scale, shift = {"mul": (v, None), "add": (None, v),
                        "sub": (None, -v.astype(np.float64))}[nxt.op]
        w2, b2 = neon.fold_scale_shift(w, b, scale, shift)
        wn = g.add_constant(g.unique_name(f"{node.name}:w_{nxt.op}"), w2)
        bn = g.add_constant(g.unique_name(f"{node.name}:b_{nxt.op}"), b2)
        return Node(node.op, node.name, [node.inputs[0], wn, bn], list(nxt.outputs),
                    dict(node.attrs, activation=nxt.attrs.get("activation")))
    return _rewrite_chains(graph, match)


def activation_of(node: Node) -> Optional[str]:
    """The fused-activation name equal to a relu / relu6 / clip node, or None."""
    if node.op in ("relu", "relu6"):
        return node.op
    if node.op == "clip" and node.attrs["min"] == 0.0:
        return {6.0: "relu6", float("inf"): "relu"}.get(node.attrs["max"])
    return None


def _compose(first: Optional[str], then: str) -> str:
    # relu then relu6, relu6 then relu, ...: the result is relu6 when either clamps at 6
    return "relu6" if "relu6" in (first, then) else "relu"


def fuse_activation(graph: Graph) -> Graph:
    """An op with an `activation` attribute followed by its only consumer relu / relu6 /
    clip(0, 6) / clip(0, inf) -> the op with the composed activation."""
    def match(g: Graph, node: Node, nxt: Node) -> Optional[Node]:
        act = activation_of(nxt)
        if node.op not in _ACT_OPS or act is None or not _float(g, node) or not _float(g, nxt):
            return None
        return Node(node.op, node.name, list(node.inputs), list(nxt.outputs),
                    dict(node.attrs, activation=_compose(node.attrs["activation"], act)))
    return _rewrite_chains(graph, match)


def fuse_pad(graph: Graph) -> Graph:
    """A constant-zero pad of H and W only (N and C unpadded, nothing cropped) whose only
    consumer is a conv2d -> the conv with larger `pads`."""
    def match(g: Graph, node: Node, nxt: Node) -> Optional[Node]:
        if node.op != "pad" or nxt.op != "conv2d" or not _float(g, node) or not _float(g, nxt):
            return None
        pads = node.attrs["pads"]
        if node.attrs["mode"] != "constant" or node.attrs["value"] != 0.0 or len(pads) != 4 or \
                pads[0] != (0, 0) or pads[3] != (0, 0) or min(min(p) for p in pads) < 0 or \
                nxt.inputs[0] != node.outputs[0]:
            return None
        (pt, pb), (pl, pr) = pads[1], pads[2]
        t, l, b, r = nxt.attrs["pads"]
        return Node("conv2d", nxt.name, [node.inputs[0], *nxt.inputs[1:]], list(nxt.outputs),
                    dict(nxt.attrs, pads=(t + pt, l + pl, b + pb, r + pr)))
    return _rewrite_chains(graph, match)


def is_residual_conv(node: Node) -> bool:
    """True for the fused form conv2d(x, w, b, residual) that `fuse_residual` makes."""
    return node.op == "conv2d" and len(node.inputs) == 4


def fuse_residual(graph: Graph) -> Graph:
    """add(a, conv1x1(x)) where the 1x1 conv (groups 1, stride 1, no activation, constant
    weights) feeds only the add and the other operand is an activation of the same shape ->
    conv2d(x, w, b, a) with the add's activation; a zero bias is added when the conv had none
    (exact: x + 0 == x)."""
    def match(g: Graph, node: Node, nxt: Node) -> Optional[Node]:
        if node.op != "conv2d" or nxt.op != "add" or is_residual_conv(node) or \
                not _float(g, node) or not _float(g, nxt) or node.attrs["activation"] is not None:
            return None
        w_shape = g.tensors[node.inputs[1]].shape
        if w_shape[1:3] != (1, 1) or node.attrs["groups"] != 1 or node.attrs["strides"] != (1, 1) \
                or not all(g.is_constant(t) for t in node.inputs[1:]):
            return None
        y = node.outputs[0]
        other = nxt.inputs[1] if nxt.inputs[0] == y else nxt.inputs[0]
        if other == y or g.is_constant(other) or g.tensors[other].shape != g.tensors[y].shape:
            return None
        inputs = [*node.inputs[:2], _zero_bias(g, node)]
        return Node("conv2d", node.name, inputs + [other], list(nxt.outputs),
                    dict(node.attrs, activation=nxt.attrs["activation"]))
    return _rewrite_chains(graph, match)


def drop_dead_nodes(graph: Graph) -> Graph:
    """Remove nodes none of whose outputs is read by a later node or is a graph output."""
    g = clone(graph)
    live = {s.tensor for s in g.outputs}
    kept = []
    for node in reversed(g.nodes):
        if any(t in live for t in node.outputs):
            kept.append(node)
            live.update(node.inputs)
        else:
            g.meta[FUSED_KEY].pop(node.name, None)
    g.nodes = kept[::-1]
    return _prune(g)


def _zero_bias(g: Graph, node: Node) -> str:
    """The conv node's bias input, or a new zero constant when it has none (exact: x + 0 == x)."""
    if len(node.inputs) > 2:
        return node.inputs[2]
    channels = g.tensors[node.inputs[1]].shape[0]
    return g.add_constant(g.unique_name(f"{node.name}:b0"), np.zeros(channels, np.float32))


def fuse_expand_depthwise(graph: Graph,
                          accept: Callable[[Graph, Node], bool] = lambda g, node: True) -> Graph:
    """conv2d 1x1 (groups 1, stride 1, unpadded, constant weights, no residual) whose only
    consumer is a depthwise conv2d (multiplier 1, no dilation, constant weights, no residual) ->
    expand_depthwise(x, we, be, wd, bd) with the first conv's activation as `act_expand`, when
    `accept(graph, fused_node)` (a kernel that runs it; zero biases are added where missing)."""
    def match(g: Graph, node: Node, nxt: Node) -> Optional[Node]:
        if node.op != "conv2d" or nxt.op != "conv2d" or not _float(g, node) or \
                not _float(g, nxt) or is_residual_conv(node) or is_residual_conv(nxt):
            return None
        a, b = node.attrs, nxt.attrs
        if g.tensors[node.inputs[1]].shape[1:3] != (1, 1) or a["groups"] != 1 or \
                a["strides"] != (1, 1) or any(a["pads"]) or a["dilations"] != (1, 1):
            return None
        c = g.tensors[node.outputs[0]].shape[3]
        if nxt.inputs[0] != node.outputs[0] or b["groups"] != c or b["dilations"] != (1, 1) or \
                g.tensors[nxt.inputs[1]].shape[0] != c or \
                not all(g.is_constant(t) for t in (*node.inputs[1:], *nxt.inputs[1:])):
            return None
        fused = Node("expand_depthwise", f"{node.name}+{nxt.name}",
                     [node.inputs[0], node.inputs[1], _zero_bias(g, node), nxt.inputs[1],
                      _zero_bias(g, nxt)], list(nxt.outputs),
                     {"act_expand": a["activation"], "strides": b["strides"], "pads": b["pads"],
                      "activation": b["activation"]})
        return fused if accept(g, fused) else None
    return _rewrite_chains(graph, match)


PASSES = (canonical_views, drop_dead_nodes, fold_batch_norm, fold_scale_shift, fuse_activation,
          fuse_pad, fuse_residual)


def optimise(graph: Graph) -> Graph:
    """All passes in order; the result is validated (topological order, shapes)."""
    g = graph
    for p in PASSES:
        g = p(g)
    g.validate()
    return g


# -- CPU execution of rewritten graphs ------------------------------------------------------

def run_node(graph: Graph, node: Node, inputs: list) -> list:
    """hostside.neon.run_node, plus the fused-residual conv: neon's conv2d without activation,
    then neon's add with the activation (the two float32 roundings of the unfused graph)."""
    if node.op == "expand_depthwise":
        expand, depthwise = ops.expand_depthwise_parts(node.attrs, inputs[1].shape[0])
        first = Node("conv2d", node.name, node.inputs[:3], list(node.outputs), expand)
        (y,) = neon.run_node(graph, first, inputs[:3])
        second = Node("conv2d", node.name, [node.outputs[0], *node.inputs[3:]],
                      list(node.outputs), depthwise)
        return neon.run_node(graph, second, [y, *inputs[3:]])
    if not is_residual_conv(node):
        return neon.run_node(graph, node, inputs)
    x_name, w_name, b_name, r_name = node.inputs
    out = node.outputs[0]
    conv = Node("conv2d", node.name, [x_name, w_name, b_name], [out],
                dict(node.attrs, activation=None))
    (y,) = neon.run_node(graph, conv, inputs[:3])
    add = Node("add", node.name, [out, r_name], [out], {"activation": node.attrs["activation"]})
    return neon.run_node(graph, add, [y, inputs[3]])


def run_graph(graph: Graph, feeds: dict) -> dict:
    """Every tensor of a (rewritten) graph computed node by node on the CPU with `run_node`:
    feeds (internal layout, by tensor name) plus every node output."""
    env = dict(feeds)
    for node in graph.nodes:
        args = [env[t] if t in env else graph.constants[t] for t in node.inputs]
        for t, y in zip(node.outputs, run_node(graph, node, args)):
            env[t] = y
    return env
