"""The op table of the IR: for every op its inputs, attributes with defaults, shape inference,
parameter count and multiply-add count. The meaning of each op is documented in `graph.ir`;
the float numerics live in `hostside.neon`.

Multiply-adds are counted the way the MobileNet papers count them: conv2d, fully_connected and
matmul only (elementwise ops, pooling, normalisation count 0)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from vc4infer.errors import GraphError

ACTIVATIONS = (None, "relu", "relu6")


def _prod(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _pair(node: str, key: str, v, n: int = 2) -> tuple:
    try:
        t = tuple(int(x) for x in (v if np.iterable(v) else [v] * n))
    except (TypeError, ValueError):
        raise GraphError(f"node {node!r}: attribute {key}={v!r} is not a tuple of integers") from None
    if len(t) != n:
        raise GraphError(f"node {node!r}: attribute {key}={v!r} needs {n} values")
    return t


@dataclass
class OpDef:
    """Static facts of one op."""
    name: str
    inputs: tuple                  # names of the inputs in order
    optional: int = 0              # how many trailing inputs may be omitted
    variadic: bool = False         # any number >= 1 of inputs (concat)
    attrs: dict = field(default_factory=dict)
    infer_fn: Optional[Callable] = None   # (node_name, in_shapes, attrs) -> [out_shape, ...]
    weight_inputs: tuple = ()      # indices of inputs that are parameters when constant
    macs_fn: Optional[Callable] = None    # (in_shapes, out_shapes, attrs) -> int
    float_out: bool = False        # output dtype float32 regardless of the input (dequantize)

    def fill_attrs(self, node: str, attrs: dict) -> dict:
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise GraphError(f"node {node!r} ({self.name}): unknown attribute(s) {sorted(unknown)}; "
                             f"{self.name} takes {sorted(self.attrs)}")
        full = dict(self.attrs)
        full.update(attrs)
        missing = [k for k, v in full.items() if v is _REQUIRED]
        if missing:
            raise GraphError(f"node {node!r} ({self.name}): missing attribute(s) {missing}")
        if "activation" in full and full["activation"] not in ACTIVATIONS:
            raise GraphError(f"node {node!r}: activation {full['activation']!r} is not one of "
                             f"{ACTIVATIONS}")
        return _normalise(node, self.name, full)

    def check_arity(self, node: str, n: int) -> None:
        if self.variadic:
            ok = n >= 1
        else:
            ok = len(self.inputs) - self.optional <= n <= len(self.inputs)
        if not ok:
            raise GraphError(f"node {node!r} ({self.name}) takes inputs {self.inputs}"
                             f"{' (last %d optional)' % self.optional if self.optional else ''}, "
                             f"got {n}")

    def infer(self, node: str, in_shapes: list, attrs: dict) -> list:
        return [tuple(int(d) for d in s) for s in self.infer_fn(node, [tuple(s) for s in in_shapes], attrs)]

    def out_dtypes(self, in_infos: list, attrs: dict, n_out: int) -> list:
        if self.float_out:
            return ["float32"] * n_out
        if self.name == "quantize":
            return [attrs["dtype"]] * n_out
        return [in_infos[0].dtype] * n_out

    def param_tensors(self, graph, node) -> list:
        return [node.inputs[i] for i in self.weight_inputs
                if i < len(node.inputs) and graph.is_constant(node.inputs[i])]

    def params(self, graph, node) -> int:
        return sum(int(graph.constants[t].size) for t in self.param_tensors(graph, node))

    def macs(self, graph, node) -> int:
        if self.macs_fn is None:
            return 0
        ins = [graph.tensors[t].shape for t in node.inputs]
        outs = [graph.tensors[t].shape for t in node.outputs]
        return int(self.macs_fn(ins, outs, node.attrs))


class _Required:
    def __repr__(self):
        return "<required>"


_REQUIRED = _Required()


def _normalise(node: str, op: str, a: dict) -> dict:
    """Bring attribute values into canonical Python types (tuples of ints, floats)."""
    for key in ("strides", "dilations", "kernel"):
        if key in a:
            a[key] = _pair(node, key, a[key])
            if min(a[key]) < 1:
                raise GraphError(f"node {node!r} ({op}): {key}={a[key]} must be >= 1")
    if "pads" in a and op != "pad":
        a["pads"] = _pair(node, "pads", a["pads"], 4)
        if min(a["pads"]) < 0:
            raise GraphError(f"node {node!r} ({op}): negative pads {a['pads']}")
    if op == "pad":
        try:
            a["pads"] = tuple((int(b), int(e)) for b, e in a["pads"])
        except (TypeError, ValueError):
            raise GraphError(f"node {node!r} (pad): pads must be ((before, after), ...), "
                             f"got {a['pads']!r}") from None
        a["value"] = float(a["value"])
    for key in ("axes", "perm", "shape"):
        if key in a and a[key] is not None:
            a[key] = tuple(int(x) for x in a[key])
    for key in ("groups", "axis"):
        if key in a:
            a[key] = int(a[key])
    for key in ("min", "max", "epsilon", "alpha", "beta"):
        if key in a:
            a[key] = float(a[key])
    return a


def _axis(node: str, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise GraphError(f"node {node!r}: axis {axis} out of range for rank {rank}")
    return axis % rank


# -- shape inference ----------------------------------------------------------------------

def _conv_out(size, k, stride, dil, pb, pe):
    return (size + pb + pe - dil * (k - 1) - 1) // stride + 1


def _infer_conv2d(node, s, a):
    x, w = s[0], s[1]
    if len(x) != 4 or len(w) != 4:
        raise GraphError(f"node {node!r} (conv2d): x must be (N,H,W,C) and w (O,KH,KW,I/groups); "
                         f"got x {x}, w {w}")
    n, h, wd, c = x
    o, kh, kw, ig = w
    g = a["groups"]
    if g < 1 or c % g or o % g or ig * g != c:
        raise GraphError(f"node {node!r} (conv2d): {c} input channels, groups={g} and weight "
                         f"{w} (OHWI) do not agree (need C == groups * w.shape[3] and "
                         f"O % groups == 0)")
    if len(s) > 2 and s[2] != (o,):
        raise GraphError(f"node {node!r} (conv2d): bias shape {s[2]}, expected ({o},)")
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = a["strides"], a["dilations"], a["pads"]
    ho, wo = _conv_out(h, kh, sh, dh, pt, pb), _conv_out(wd, kw, sw, dw, pl, pr)
    if ho < 1 or wo < 1:
        raise GraphError(f"node {node!r} (conv2d): kernel {kh}x{kw} (dilation {dh},{dw}) does not "
                         f"fit the padded input {h}x{wd}")
    return [(n, ho, wo, o)]


def _macs_conv2d(ins, outs, a):
    o, kh, kw, ig = ins[1]
    return _prod(outs[0]) * kh * kw * ig


def _infer_fc(node, s, a):
    x, w = s[0], s[1]
    if len(x) != 2 or len(w) != 2 or x[1] != w[1]:
        raise GraphError(f"node {node!r} (fully_connected): x (N,K) and w (O,K) needed, got "
                         f"x {x}, w {w}")
    if len(s) > 2 and s[2] != (w[0],):
        raise GraphError(f"node {node!r} (fully_connected): bias shape {s[2]}, expected ({w[0]},)")
    return [(x[0], w[0])]


def _macs_fc(ins, outs, a):
    return _prod(outs[0]) * ins[1][1]


def _infer_matmul(node, s, a):
    x, y = s
    if len(x) < 2 or len(y) < 2 or x[-1] != y[-2]:
        raise GraphError(f"node {node!r} (matmul): shapes {x} and {y} do not multiply")
    try:
        batch = np.broadcast_shapes(x[:-2], y[:-2])
    except ValueError:
        raise GraphError(f"node {node!r} (matmul): batch dims {x[:-2]} and {y[:-2]} do not "
                         f"broadcast") from None
    return [tuple(batch) + (x[-2], y[-1])]


def _macs_matmul(ins, outs, a):
    return _prod(outs[0]) * ins[0][-1]


def _infer_broadcast(node, s, a):
    try:
        return [tuple(np.broadcast_shapes(*s))]
    except ValueError:
        raise GraphError(f"node {node!r}: shapes {s[0]} and {s[1]} do not broadcast "
                         f"(constants must be in the internal NHWC layout)") from None


def _infer_same(node, s, a):
    return [s[0]]


def _infer_bn(node, s, a):
    c = s[0][-1]
    for role, shape in zip(("gamma", "beta", "mean", "var"), s[1:]):
        if shape != (c,):
            raise GraphError(f"node {node!r} (batch_norm): {role} has shape {shape}, expected "
                             f"({c},) (channels last)")
    return [s[0]]


def _infer_pad(node, s, a):
    x = s[0]
    if len(a["pads"]) != len(x):
        raise GraphError(f"node {node!r} (pad): {len(a['pads'])} pad pairs for rank {len(x)}")
    if a["mode"] != "constant":
        raise GraphError(f"node {node!r} (pad): mode {a['mode']!r}; only 'constant' exists")
    out = tuple(d + b + e for d, (b, e) in zip(x, a["pads"]))
    if min(out) < 0:
        raise GraphError(f"node {node!r} (pad): pads {a['pads']} crop {x} below zero")
    return [out]


def _infer_pool(node, s, a):
    x = s[0]
    if len(x) != 4:
        raise GraphError(f"node {node!r}: pooling needs (N,H,W,C), got {x}")
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = a["kernel"], a["strides"], a["pads"]
    if max(pt, pb) >= kh or max(pl, pr) >= kw:
        raise GraphError(f"node {node!r}: pads {a['pads']} must be smaller than kernel {a['kernel']}")
    ho, wo = _conv_out(x[1], kh, sh, 1, pt, pb), _conv_out(x[2], kw, sw, 1, pl, pr)
    if ho < 1 or wo < 1:
        raise GraphError(f"node {node!r}: kernel {kh}x{kw} does not fit input {x}")
    return [(x[0], ho, wo, x[3])]


def _infer_gap(node, s, a):
    x = s[0]
    if len(x) != 4:
        raise GraphError(f"node {node!r} (global_avg_pool): needs (N,H,W,C), got {x}")
    return [(x[0], 1, 1, x[3])]


def _infer_mean(node, s, a):
    x = s[0]
    axes = sorted({_axis(node, ax, len(x)) for ax in a["axes"]})
    if a["keepdims"]:
        return [tuple(1 if i in axes else d for i, d in enumerate(x))]
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


def _infer_reshape(node, s, a):
    shape = list(a["shape"])
    if shape.count(-1) == 1:
        known = _prod([d for d in shape if d != -1])
        if known == 0 or _prod(s[0]) % known:
            raise GraphError(f"node {node!r} (reshape): cannot reshape {s[0]} to {a['shape']}")
        shape[shape.index(-1)] = _prod(s[0]) // known
    if _prod(shape) != _prod(s[0]) or min(shape, default=0) < 0:
        raise GraphError(f"node {node!r} (reshape): cannot reshape {s[0]} "
                         f"({_prod(s[0])} elements) to {a['shape']}")
    a["shape"] = tuple(shape)  # canonical: fully static
    return [tuple(shape)]


def _infer_flatten(node, s, a):
    x = s[0]
    ax = a["axis"]
    if not 0 <= ax <= len(x):
        raise GraphError(f"node {node!r} (flatten): axis {ax} out of range for rank {len(x)}")
    return [tuple(x[:ax]) + (_prod(x[ax:]),)] if ax > 0 else [(1, _prod(x))]


def _infer_squeeze(node, s, a):
    x = s[0]
    axes = {_axis(node, ax, len(x)) for ax in a["axes"]}
    bad = [ax for ax in axes if x[ax] != 1]
    if bad:
        raise GraphError(f"node {node!r} (squeeze): axes {bad} of {x} are not 1")
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


def _infer_unsqueeze(node, s, a):
    x = list(s[0])
    rank = len(x) + len(a["axes"])
    axes = sorted(_axis(node, ax, rank) for ax in a["axes"])
    for ax in axes:
        x.insert(ax, 1)
    return [tuple(x)]


def _infer_transpose(node, s, a):
    x = s[0]
    if sorted(a["perm"]) != list(range(len(x))):
        raise GraphError(f"node {node!r} (transpose): perm {a['perm']} is not a permutation of "
                         f"rank {len(x)}")
    return [tuple(x[p] for p in a["perm"])]


def _infer_concat(node, s, a):
    rank = len(s[0])
    ax = _axis(node, a["axis"], rank)
    for other in s[1:]:
        if len(other) != rank or any(d != e for i, (d, e) in enumerate(zip(s[0], other)) if i != ax):
            raise GraphError(f"node {node!r} (concat): shapes {s} differ outside axis {ax}")
    out = list(s[0])
    out[ax] = sum(t[ax] for t in s)
    return [tuple(out)]


def _infer_softmax(node, s, a):
    _axis(node, a["axis"], len(s[0]))
    return [s[0]]


_CONV_ATTRS = {"strides": (1, 1), "dilations": (1, 1), "pads": (0, 0, 0, 0), "groups": 1,
               "activation": None}


def expand_depthwise_parts(a: dict, channels: int) -> tuple:
    """The attributes of the expansion conv2d and of the depthwise conv2d (over `channels`) that
    an expand_depthwise node with attributes `a` is made of: its meaning (hostside.passes.run_node
    runs it as these two)."""
    expand = dict(_CONV_ATTRS, activation=a["act_expand"])
    depthwise = dict(_CONV_ATTRS, strides=a["strides"], pads=a["pads"], groups=channels,
                     activation=a["activation"])
    return expand, depthwise


def _infer_expand_depthwise(node, s, a):
    if a["act_expand"] not in ACTIVATIONS:
        raise GraphError(f"node {node!r}: act_expand {a['act_expand']!r} is not one of "
                         f"{ACTIVATIONS}")
    if len(s[1]) != 4 or s[1][1:3] != (1, 1):
        raise GraphError(f"node {node!r} (expand_depthwise): expansion weights {s[1]} are not "
                         "(C, 1, 1, K)")
    expand, depthwise = expand_depthwise_parts(a, s[1][0])
    (mid,) = _infer_conv2d(node, s[:3], expand)
    return _infer_conv2d(node, [mid, *s[3:]], depthwise)


def _macs_expand_depthwise(ins, outs, a):
    n, h, w, _ = ins[0]
    c, _, _, k = ins[1]
    _, kh, kw, _ = ins[3]
    return n * h * w * c * k + _prod(outs[0]) * kh * kw


_POOL_ATTRS = {"kernel": _REQUIRED, "strides": (1, 1), "pads": (0, 0, 0, 0)}
_ELEMENTWISE = ("add", "sub", "mul", "div")

OPS: dict[str, OpDef] = {}


def _register(op: OpDef) -> None:
    OPS[op.name] = op


_register(OpDef("conv2d", ("x", "w", "b"), optional=1, attrs=dict(_CONV_ATTRS),
                infer_fn=_infer_conv2d, weight_inputs=(1, 2), macs_fn=_macs_conv2d))
_register(OpDef("expand_depthwise", ("x", "we", "be", "wd", "bd"),
                attrs={"act_expand": None, "strides": (1, 1), "pads": (0, 0, 0, 0),
                       "activation": None},
                infer_fn=_infer_expand_depthwise, weight_inputs=(1, 2, 3, 4),
                macs_fn=_macs_expand_depthwise))
_register(OpDef("fully_connected", ("x", "w", "b"), optional=1, attrs={"activation": None},
                infer_fn=_infer_fc, weight_inputs=(1, 2), macs_fn=_macs_fc))
_register(OpDef("matmul", ("a", "b"), infer_fn=_infer_matmul, weight_inputs=(0, 1),
                macs_fn=_macs_matmul))
for _name in _ELEMENTWISE:
    _register(OpDef(_name, ("a", "b"), attrs={"activation": None}, infer_fn=_infer_broadcast,
                    weight_inputs=(0, 1)))
_register(OpDef("relu", ("x",), infer_fn=_infer_same))
_register(OpDef("relu6", ("x",), infer_fn=_infer_same))
_register(OpDef("clip", ("x",), attrs={"min": -np.inf, "max": np.inf}, infer_fn=_infer_same))
_register(OpDef("sigmoid", ("x",), infer_fn=_infer_same))
_register(OpDef("tanh", ("x",), infer_fn=_infer_same))
_register(OpDef("leaky_relu", ("x",), attrs={"alpha": 0.01}, infer_fn=_infer_same))
_register(OpDef("hard_sigmoid", ("x",), attrs={"alpha": 0.2, "beta": 0.5}, infer_fn=_infer_same))
_register(OpDef("hard_swish", ("x",), infer_fn=_infer_same))
_register(OpDef("batch_norm", ("x", "gamma", "beta", "mean", "var"), attrs={"epsilon": 1e-5},
                infer_fn=_infer_bn, weight_inputs=(1, 2, 3, 4)))
_register(OpDef("pad", ("x",), attrs={"pads": _REQUIRED, "mode": "constant", "value": 0.0},
                infer_fn=_infer_pad))
_register(OpDef("avg_pool2d", ("x",), attrs={**_POOL_ATTRS, "count_include_pad": False},
                infer_fn=_infer_pool))
_register(OpDef("max_pool2d", ("x",), attrs=dict(_POOL_ATTRS), infer_fn=_infer_pool))
_register(OpDef("global_avg_pool", ("x",), infer_fn=_infer_gap))
_register(OpDef("mean", ("x",), attrs={"axes": _REQUIRED, "keepdims": True}, infer_fn=_infer_mean))
_register(OpDef("reshape", ("x",), attrs={"shape": _REQUIRED}, infer_fn=_infer_reshape))
_register(OpDef("flatten", ("x",), attrs={"axis": 1}, infer_fn=_infer_flatten))
_register(OpDef("squeeze", ("x",), attrs={"axes": _REQUIRED}, infer_fn=_infer_squeeze))
_register(OpDef("unsqueeze", ("x",), attrs={"axes": _REQUIRED}, infer_fn=_infer_unsqueeze))
_register(OpDef("transpose", ("x",), attrs={"perm": _REQUIRED}, infer_fn=_infer_transpose))
_register(OpDef("concat", ("x",), variadic=True, attrs={"axis": _REQUIRED}, infer_fn=_infer_concat))
_register(OpDef("softmax", ("x",), attrs={"axis": -1}, infer_fn=_infer_softmax))
_register(OpDef("quantize", ("x",), attrs={"dtype": "uint8"}, infer_fn=_infer_same))
_register(OpDef("dequantize", ("x",), infer_fn=_infer_same, float_out=True))


def get(op: str) -> OpDef:
    """The OpDef of `op`; GraphError naming the known ops otherwise."""
    try:
        return OPS[op]
    except KeyError:
        raise GraphError(f"unknown IR op {op!r}; the IR has {sorted(OPS)}") from None


def is_depthwise(graph, node) -> bool:
    """True for a conv2d whose groups equal its input channels (depthwise convolution)."""
    if node.op != "conv2d":
        return False
    c = graph.tensors[node.inputs[0]].shape[3]
    return node.attrs["groups"] == c and c > 1
