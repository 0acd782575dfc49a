"""Import a TensorFlow 1 frozen GraphDef (`.pb`) into the IR, without TensorFlow.

TensorFlow's activations are NHWC like the IR's, so only weights change layout (Conv2D filters
HWIO -> OHWI, depthwise filters HWCM -> (C*M)HW1). Subgraphs whose inputs are all constants
(batch norm expanded into Rsqrt/Mul/Sub/Add on the moving statistics, Identity reads of frozen
variables, shape arithmetic) are folded with numpy; only ops on activations become IR nodes.
The graph is cut at the requested output tensor: nodes after it are never looked at.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Union

import numpy as np

from ..errors import GraphError, ModelFormatError, UnsupportedModelError
from .ir import Graph
from .tf_graphdef import TF_DTYPES, TfNode, parse_graphdef

Value = Union[np.ndarray, str]  # a folded constant or the name of an IR tensor

# Ops that only pass their first input on.
_PASSTHROUGH = ("Identity", "StopGradient", "PlaceholderWithDefault", "Snapshot")
_ELEMENTWISE = {"Add": "add", "AddV2": "add", "BiasAdd": "add", "Sub": "sub", "Mul": "mul",
                "RealDiv": "div"}
_NUMPY_BINARY = {"Add": np.add, "AddV2": np.add, "BiasAdd": np.add, "Sub": np.subtract,
                 "Mul": np.multiply, "RealDiv": np.divide, "Maximum": np.maximum,
                 "Minimum": np.minimum}
_NUMPY_UNARY = {"Rsqrt": lambda x: 1.0 / np.sqrt(x), "Sqrt": np.sqrt, "Neg": np.negative,
                "Reciprocal": np.reciprocal, "Square": np.square,
                "Relu": lambda x: np.maximum(x, 0), "Relu6": lambda x: np.clip(x, 0, 6)}


def _int_list(value: Any, where: str) -> list:
    if value is None:
        return []
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise ModelFormatError(f"{where}: expected a list of integers, got {value!r:.60}") from None


def _split_ref(ref: str) -> tuple:
    """'name:1' -> ('name', 1); 'name' -> ('name', 0)."""
    name, sep, index = ref.rpartition(":")
    if sep and index.isdigit():
        return name, int(index)
    return ref, 0


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple:
    """TensorFlow's SAME padding along one axis: (before, after), extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Importer:
    def __init__(self, nodes: list, output: str, input_name: Optional[str],
                 input_shape: Optional[tuple], meta: dict):
        self.by_name: dict[str, TfNode] = {}
        for n in nodes:
            if n.name in self.by_name:
                raise ModelFormatError(f"GraphDef defines node {n.name!r} twice")
            self.by_name[n.name] = n
        self.output_ref = output
        self.input_name = input_name
        self.input_shape = input_shape
        self.graph = Graph(meta=meta)
        self.values: dict[tuple, Value] = {}
        self.const_names: dict[int, tuple] = {}  # id(array) -> (array, IR name); keeps it alive
        self.uses: dict[str, int] = {}
        self.conv_of: dict[str, Any] = {}  # IR conv output -> its Node (for bias fusion)

    # -- traversal ---------------------------------------------------------------------------
    def _node(self, name: str, user: str) -> TfNode:
        try:
            return self.by_name[name]
        except KeyError:
            raise ModelFormatError(f"node {user!r} reads {name!r}, which the GraphDef does not "
                                   f"define") from None

    def _data_inputs(self, node: TfNode) -> list:
        if node.name == self.input_name:
            return []
        return [i for i in node.inputs if not i.startswith("^")]

    def order(self, out_node: str) -> list:
        """Nodes the output depends on, inputs first (iterative DFS: graphs can be deep)."""
        done: set = set()
        on_path: set = set()
        order: list = []
        stack = [(out_node, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                on_path.discard(name)
                if name not in done:
                    done.add(name)
                    order.append(self.by_name[name])
                continue
            if name in done:
                continue
            if name in on_path:
                raise ModelFormatError(f"the GraphDef has a cycle through node {name!r}")
            node = self._node(name, out_node)
            on_path.add(name)
            stack.append((name, True))
            for ref in reversed(self._data_inputs(node)):
                dep = _split_ref(ref)[0]
                self._node(dep, name)
                self.uses[dep] = self.uses.get(dep, 0) + 1
                if dep not in done:
                    stack.append((dep, False))
        return order

    # -- values ------------------------------------------------------------------------------
    def arg(self, node: TfNode, i: int) -> Value:
        refs = self._data_inputs(node)
        if i >= len(refs):
            raise ModelFormatError(f"node {node.name!r} ({node.op}) has {len(refs)} inputs, "
                                   f"needs at least {i + 1}")
        key = _split_ref(refs[i])
        if key not in self.values:
            raise UnsupportedModelError(f"node {node.name!r} ({node.op}) reads output {key[1]} "
                                        f"of {key[0]!r}; only the first output of that node is "
                                        f"supported")
        return self.values[key]

    def const_arg(self, node: TfNode, i: int, role: str) -> np.ndarray:
        value = self.arg(node, i)
        if isinstance(value, str):
            raise UnsupportedModelError(f"node {node.name!r} ({node.op}): its {role} must be a "
                                        f"constant, but it is computed at run time")
        return value

    def tensor(self, value: Value, hint: str) -> str:
        """The IR tensor of a value, adding a constant to the graph on first use."""
        if isinstance(value, str):
            return value
        key = id(value)
        if key not in self.const_names:
            name = self.graph.add_constant(self.graph.unique_name(hint), np.ascontiguousarray(value))
            self.const_names[key] = (value, name)
        return self.const_names[key][1]

    def shape(self, value: Value) -> tuple:
        return value.shape if isinstance(value, np.ndarray) else self.graph.tensor(value).shape

    def emit(self, op: str, node: TfNode, inputs: list, **attrs) -> str:
        (out,) = self.graph.add_node(op, inputs, outputs=[self.graph.unique_name(node.name)],
                                     name=self.graph.unique_name(f"{node.name}#{op}"), **attrs)
        return out

    # -- run ---------------------------------------------------------------------------------
    def run(self) -> Graph:
        out_node, out_index = _split_ref(self.output_ref)
        if out_node not in self.by_name:
            raise ModelFormatError(f"output {self.output_ref!r} is not a node of the GraphDef")
        if self.input_name is not None and self.input_name not in self.by_name:
            raise ModelFormatError(f"input {self.input_name!r} is not a node of the GraphDef")
        for node in self.order(out_node):
            try:
                outputs = self.convert(node)
            except (GraphError, ValueError, IndexError) as err:
                if isinstance(err, (ModelFormatError, UnsupportedModelError)):
                    raise
                raise ModelFormatError(f"node {node.name!r} ({node.op}): {err}") from err
            for k, value in enumerate(outputs):
                self.values[(node.name, k)] = value
        result = self.values.get((out_node, out_index))
        if result is None:
            raise ModelFormatError(f"node {out_node!r} has no output {out_index}")
        if isinstance(result, np.ndarray):
            raise UnsupportedModelError(f"output {self.output_ref!r} is a constant: it does not "
                                        f"depend on any input")
        if not self.graph.inputs:
            raise UnsupportedModelError(f"output {self.output_ref!r} depends on no Placeholder")
        self.graph.add_output(result, name=self.output_ref)
        self.graph.validate()
        return self.graph

    def convert(self, node: TfNode) -> list:
        if node.name == self.input_name or node.op == "Placeholder":
            return [self.placeholder(node)]
        handler = _HANDLERS.get(node.op)
        if handler is None:
            raise UnsupportedModelError(
                f"TensorFlow op {node.op!r} (node {node.name!r}) is not supported. Supported "
                f"ops: {', '.join(sorted(SUPPORTED_OPS))}.")
        return handler(self, node)

    def placeholder(self, node: TfNode) -> str:
        shape = self.input_shape or node.attr("shape")
        if shape is None:
            raise UnsupportedModelError(f"input {node.name!r} has no static shape; pass "
                                        f"input_shape=(1, H, W, C)")
        shape = [int(d) for d in shape]
        if shape and shape[0] == -1:
            shape[0] = 1
        if any(d < 0 for d in shape):
            raise UnsupportedModelError(f"input {node.name!r} has shape {shape} with unknown "
                                        f"dimensions; pass input_shape=(1, H, W, C)")
        dtype = TF_DTYPES.get(node.attr("dtype", 1), f"TensorFlow type #{node.attr('dtype')}")
        if dtype not in ("float32", "uint8", "int8", "int32"):
            raise UnsupportedModelError(f"input {node.name!r} has dtype {dtype}; inputs may be "
                                        f"float32, uint8, int8 or int32")
        spec = self.graph.add_input(self.graph.unique_name(node.name), shape, dtype,
                                    layout="NHWC" if len(shape) == 4 else None, name=node.name)
        return spec.tensor


# -- handlers ------------------------------------------------------------------------------

def _const(imp: _Importer, node: TfNode) -> list:
    value = node.attr("value")
    if not isinstance(value, np.ndarray):
        raise ModelFormatError(f"Const node {node.name!r} has no tensor value")
    return [value]


def _passthrough(imp: _Importer, node: TfNode) -> list:
    return [imp.arg(node, 0)]


def _data_format(node: TfNode) -> None:
    fmt = node.attr("data_format", b"NHWC")
    if fmt not in (b"NHWC", None):
        raise UnsupportedModelError(f"node {node.name!r} ({node.op}) uses data_format "
                                    f"{fmt.decode(errors='replace')}; only NHWC is supported "
                                    f"(TensorFlow's CPU graphs are NHWC)")


def _window(node: TfNode, in_shape: tuple, kernel: tuple, dilations: tuple = (1, 1)) -> tuple:
    """Strides and (top, left, bottom, right) pads of a Conv2D/DepthwiseConv2d/pool node."""
    strides = _int_list(node.attr("strides", [1, 1, 1, 1]), node.name)
    if len(strides) != 4 or strides[0] != 1 or strides[3] != 1:
        raise UnsupportedModelError(f"node {node.name!r}: strides {strides}; only strides along "
                                    f"H and W are supported")
    if min(strides[1], strides[2], *dilations) < 1:
        raise ModelFormatError(f"node {node.name!r}: strides {strides[1:3]} and dilations "
                               f"{list(dilations)} must be at least 1")
    padding = node.attr("padding", b"VALID")
    if padding == b"VALID":
        pads = (0, 0, 0, 0)
    elif padding == b"SAME":
        top, bottom = same_pads(in_shape[1], kernel[0], strides[1], dilations[0])
        left, right = same_pads(in_shape[2], kernel[1], strides[2], dilations[1])
        pads = (top, left, bottom, right)
    elif padding == b"EXPLICIT":
        ex = _int_list(node.attr("explicit_paddings"), node.name)
        if len(ex) != 8:
            raise ModelFormatError(f"node {node.name!r}: explicit_paddings {ex} needs 8 values")
        pads = (ex[2], ex[4], ex[3], ex[5])
    else:
        raise UnsupportedModelError(f"node {node.name!r}: padding {padding!r} is not SAME, "
                                    f"VALID or EXPLICIT")
    return (strides[1], strides[2]), pads


def _dilations(node: TfNode) -> tuple:
    d = _int_list(node.attr("dilations", [1, 1, 1, 1]), node.name)
    if len(d) != 4 or d[0] != 1 or d[3] != 1:
        raise UnsupportedModelError(f"node {node.name!r}: dilations {d} not supported")
    return d[1], d[2]


def _conv(imp: _Importer, node: TfNode) -> list:
    _data_format(node)
    x = imp.arg(node, 0)
    w = imp.const_arg(node, 1, "filter")
    if isinstance(x, np.ndarray):
        raise UnsupportedModelError(f"node {node.name!r}: convolution of a constant")
    if w.ndim != 4:
        raise ModelFormatError(f"node {node.name!r}: filter has shape {w.shape}, expected 4-D")
    in_shape = imp.shape(x)
    kh, kw, cin, cout = w.shape
    dil = _dilations(node)
    strides, pads = _window(node, in_shape, (kh, kw), dil)
    if node.op == "Conv2D":
        if in_shape[3] % cin:
            raise ModelFormatError(f"node {node.name!r}: {in_shape[3]} input channels, filter "
                                   f"has {cin}")
        w_ir = np.transpose(w, (3, 0, 1, 2))
        groups = in_shape[3] // cin
    else:  # DepthwiseConv2dNative: output channel c*M + m comes from input channel c
        if cin != in_shape[3]:
            raise ModelFormatError(f"node {node.name!r}: {in_shape[3]} input channels, depthwise "
                                   f"filter has {cin}")
        w_ir = np.transpose(w.reshape(kh, kw, cin * cout), (2, 0, 1))[..., None]
        groups = cin
    w_name = imp.tensor(np.ascontiguousarray(w_ir, dtype=np.float32), f"{node.name}/weights")
    out = imp.emit("conv2d", node, [x, w_name], strides=strides, dilations=dil, pads=pads,
                   groups=groups)
    imp.conv_of[out] = imp.graph.nodes[-1]
    return [out]


def _pool(imp: _Importer, node: TfNode) -> list:
    _data_format(node)
    x = imp.arg(node, 0)
    ksize = _int_list(node.attr("ksize"), node.name)
    if len(ksize) != 4 or ksize[0] != 1 or ksize[3] != 1:
        raise UnsupportedModelError(f"node {node.name!r}: ksize {ksize}; only H and W windows")
    strides, pads = _window(node, imp.shape(x), (ksize[1], ksize[2]))
    op = "avg_pool2d" if node.op == "AvgPool" else "max_pool2d"
    # TF's SAME average pooling divides by the pixels inside the input (count_include_pad False).
    return [imp.emit(op, node, [x], kernel=(ksize[1], ksize[2]), strides=strides, pads=pads)]


def _binary(imp: _Importer, node: TfNode) -> list:
    a, b = imp.arg(node, 0), imp.arg(node, 1)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return [_NUMPY_BINARY[node.op](a, b).astype(np.result_type(a, b))]
    if node.op in ("Maximum", "Minimum"):
        return [_clip_from_minmax(imp, node, a, b)]
    if node.op == "BiasAdd":
        _data_format(node)
        conv = imp.conv_of.get(a) if isinstance(a, str) else None
        bias = b if isinstance(b, np.ndarray) else None
        producer_name = _split_ref(imp._data_inputs(node)[0])[0]
        if (conv is not None and len(conv.inputs) == 2 and bias is not None
                and bias.shape == (imp.shape(a)[-1],) and imp.uses.get(producer_name) == 1):
            conv.inputs.append(imp.tensor(bias.astype(np.float32), f"{node.name}/bias"))
            return [a]
    names = [imp.tensor(v, f"{node.name}/operand") for v in (a, b)]
    return [imp.emit(_ELEMENTWISE[node.op], node, names)]


def _clip_from_minmax(imp: _Importer, node: TfNode, a: Value, b: Value) -> str:
    x, c = (a, b) if isinstance(b, np.ndarray) else (b, a)
    if isinstance(c, str) or c.size != 1:
        raise UnsupportedModelError(f"node {node.name!r} ({node.op}) of two run-time tensors or "
                                    f"a non-scalar bound; only x vs. scalar constant is supported")
    bound = float(c.reshape(()))
    attrs = {"min": bound} if node.op == "Maximum" else {"max": bound}
    return imp.emit("clip", node, [x], **attrs)


def _unary(imp: _Importer, node: TfNode) -> list:
    x = imp.arg(node, 0)
    if isinstance(x, np.ndarray):
        return [_NUMPY_UNARY[node.op](x).astype(x.dtype)]
    if node.op in ("Relu", "Relu6", "Sigmoid"):
        return [imp.emit(node.op.lower(), node, [x])]
    raise UnsupportedModelError(f"node {node.name!r}: {node.op} is supported only on constants "
                                f"(folded at import); here it acts on a run-time tensor")


def _fused_bn(imp: _Importer, node: TfNode) -> list:
    _data_format(node)
    if node.attr("is_training", False):
        raise UnsupportedModelError(f"node {node.name!r}: FusedBatchNorm in training mode; "
                                    f"freeze the graph for inference")
    x = imp.arg(node, 0)
    params = [imp.const_arg(node, i, role).astype(np.float32)
              for i, role in enumerate(("scale", "offset", "mean", "variance"), start=1)]
    names = [imp.tensor(p, f"{node.name}/{role}")
             for p, role in zip(params, ("gamma", "beta", "mean", "var"))]
    eps = node.attr("epsilon", 1e-4)
    return [imp.emit("batch_norm", node, [x, *names], epsilon=eps)]


def _reshape(imp: _Importer, node: TfNode) -> list:
    x = imp.arg(node, 0)
    shape = [int(v) for v in imp.const_arg(node, 1, "shape").reshape(-1)]
    if isinstance(x, np.ndarray):
        return [x.reshape(shape)]
    return [imp.emit("reshape", node, [x], shape=tuple(shape))]


def _squeeze(imp: _Importer, node: TfNode) -> list:
    x = imp.arg(node, 0)
    shape = imp.shape(x)
    axes = _int_list(node.attr("squeeze_dims"), node.name)
    if not axes:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = [a % len(shape) for a in axes]
    if isinstance(x, np.ndarray):
        return [np.squeeze(x, axis=tuple(axes))]
    return [imp.emit("squeeze", node, [x], axes=tuple(axes))]


def _expand_dims(imp: _Importer, node: TfNode) -> list:
    x = imp.arg(node, 0)
    axis = int(imp.const_arg(node, 1, "axis").reshape(()))
    rank = len(imp.shape(x)) + 1
    axis %= rank
    if isinstance(x, np.ndarray):
        return [np.expand_dims(x, axis)]
    return [imp.emit("unsqueeze", node, [x], axes=(axis,))]


def _softmax(imp: _Importer, node: TfNode) -> list:
    x = imp.arg(node, 0)
    if isinstance(x, np.ndarray):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return [(e / e.sum(axis=-1, keepdims=True)).astype(x.dtype)]
    return [imp.emit("softmax", node, [x], axis=-1)]


def _matmul(imp: _Importer, node: TfNode) -> list:
    a, b = imp.arg(node, 0), imp.arg(node, 1)
    ta, tb = node.attr("transpose_a", False), node.attr("transpose_b", False)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return [(a.T if ta else a) @ (b.T if tb else b)]
    if ta or (tb and isinstance(b, str)):
        raise UnsupportedModelError(f"node {node.name!r}: MatMul with transposed run-time "
                                    f"operands is not supported")
    if isinstance(b, np.ndarray) and len(imp.shape(a)) == 2:
        w = b if tb else b.T  # IR fully_connected weights are (out, in)
        w_name = imp.tensor(np.ascontiguousarray(w, dtype=np.float32), f"{node.name}/weights")
        return [imp.emit("fully_connected", node, [a, w_name])]
    return [imp.emit("matmul", node, [imp.tensor(a, f"{node.name}/a"),
                                      imp.tensor(b, f"{node.name}/b")])]


def _pad(imp: _Importer, node: TfNode) -> list:
    x = imp.arg(node, 0)
    pads = imp.const_arg(node, 1, "paddings").astype(np.int64)
    value = 0.0
    if node.op == "PadV2":
        value = float(imp.const_arg(node, 2, "constant value").reshape(()))
    if pads.shape != (len(imp.shape(x)), 2):
        raise ModelFormatError(f"node {node.name!r}: paddings of shape {pads.shape} for a rank "
                               f"{len(imp.shape(x))} tensor")
    if isinstance(x, np.ndarray):
        return [np.pad(x, pads, constant_values=value)]
    return [imp.emit("pad", node, [x], pads=tuple(map(tuple, pads)), value=value)]


def _mean(imp: _Importer, node: TfNode) -> list:
    x = imp.arg(node, 0)
    axes = tuple(int(a) for a in imp.const_arg(node, 1, "reduction indices").reshape(-1))
    keep = bool(node.attr("keep_dims", node.attr("keepdims", False)))
    if isinstance(x, np.ndarray):
        return [np.mean(x, axis=axes, keepdims=keep)]
    return [imp.emit("mean", node, [x], axes=axes, keepdims=keep)]


def _concat(imp: _Importer, node: TfNode) -> list:
    n = len(imp._data_inputs(node)) - 1
    if n < 1:
        raise ModelFormatError(f"node {node.name!r} (ConcatV2) has no inputs to join")
    axis = int(imp.const_arg(node, n, "axis").reshape(()))
    parts = [imp.arg(node, i) for i in range(n)]
    if all(isinstance(p, np.ndarray) for p in parts):
        return [np.concatenate(parts, axis=axis)]
    names = [imp.tensor(p, f"{node.name}/part") for p in parts]
    return [imp.emit("concat", node, names, axis=axis)]


def _transpose(imp: _Importer, node: TfNode) -> list:
    x = imp.arg(node, 0)
    perm = tuple(int(p) for p in imp.const_arg(node, 1, "perm").reshape(-1))
    if isinstance(x, np.ndarray):
        return [np.transpose(x, perm)]
    return [imp.emit("transpose", node, [x], perm=perm)]


def _shape_op(imp: _Importer, node: TfNode) -> list:
    dtype = TF_DTYPES.get(node.attr("out_type", 3), "int32")
    return [np.array(imp.shape(imp.arg(node, 0)), dtype=dtype)]


def _pack(imp: _Importer, node: TfNode) -> list:
    parts = [imp.const_arg(node, i, "operand") for i in range(len(imp._data_inputs(node)))]
    return [np.stack(parts, axis=int(node.attr("axis", 0)))]


def _cast(imp: _Importer, node: TfNode) -> list:
    x = imp.const_arg(node, 0, "operand")
    return [x.astype(TF_DTYPES.get(node.attr("DstT", 1), "float32"))]


def _fill(imp: _Importer, node: TfNode) -> list:
    dims = [int(d) for d in imp.const_arg(node, 0, "dims").reshape(-1)]
    value = imp.const_arg(node, 1, "value")
    if int(np.prod(dims, dtype=np.int64)) > (1 << 28):
        raise ModelFormatError(f"node {node.name!r}: Fill of {dims} is too large")
    return [np.full(dims, value.reshape(()), dtype=value.dtype)]


def _strided_slice(imp: _Importer, node: TfNode) -> list:
    x = imp.const_arg(node, 0, "input")
    begin, end, strides = (imp.const_arg(node, i, r).reshape(-1).tolist()
                           for i, r in ((1, "begin"), (2, "end"), (3, "strides")))
    if node.attr("ellipsis_mask", 0) or node.attr("new_axis_mask", 0):
        raise UnsupportedModelError(f"node {node.name!r}: StridedSlice with ellipsis or new-axis "
                                    f"masks is not supported")
    bm, em, sm = (node.attr(k, 0) for k in ("begin_mask", "end_mask", "shrink_axis_mask"))
    index = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        if sm >> i & 1:
            index.append(b)
        else:
            index.append(slice(None if bm >> i & 1 else b, None if em >> i & 1 else e, s))
    return [np.asarray(x[tuple(index)])]


_HANDLERS: dict[str, Callable] = {
    "Const": _const,
    **{op: _passthrough for op in _PASSTHROUGH},
    "Conv2D": _conv, "DepthwiseConv2dNative": _conv,
    "AvgPool": _pool, "MaxPool": _pool,
    **{op: _binary for op in _NUMPY_BINARY},
    **{op: _unary for op in _NUMPY_UNARY}, "Sigmoid": _unary,
    "FusedBatchNorm": _fused_bn, "FusedBatchNormV2": _fused_bn, "FusedBatchNormV3": _fused_bn,
    "Reshape": _reshape, "Squeeze": _squeeze, "ExpandDims": _expand_dims,
    "Softmax": _softmax, "MatMul": _matmul,
    "Pad": _pad, "PadV2": _pad, "Mean": _mean, "ConcatV2": _concat, "Transpose": _transpose,
    "Shape": _shape_op, "Pack": _pack, "Cast": _cast, "Fill": _fill,
    "StridedSlice": _strided_slice,
}
SUPPORTED_OPS = frozenset(_HANDLERS) | {"Placeholder"}


def _default_output(nodes: list) -> str:
    consumed = {_split_ref(i.lstrip("^"))[0] for n in nodes for i in n.inputs}
    sinks = [n.name for n in nodes if n.name not in consumed and n.op not in ("Const", "NoOp")]
    if len(sinks) != 1:
        raise ModelFormatError(f"the GraphDef has {len(sinks)} final nodes "
                               f"({', '.join(sinks[:8])}); choose one with output=NAME")
    return sinks[0]


def import_tf_graphdef(path: Union[str, os.PathLike], output: Optional[str] = None,
                       input: Optional[str] = None, input_shape: Optional[tuple] = None,
                       preprocess: Optional[str] = "auto", labels: Optional[str] = "auto",
                       name: Optional[str] = None) -> Graph:
    """Read a TF1 frozen GraphDef and return the IR graph that computes `output`.

    output: tensor name ("node" or "node:k"); default: the graph's only final node.
    input: a node to feed instead of the Placeholder(s) (everything before it is dropped).
    input_shape: the input's shape when the file leaves dimensions unknown (batch defaults to 1).
    preprocess / labels / name: stored in Graph.meta (see `graph.ir`); "auto" guesses
    preprocess from the input ("tf_slim" for a float32 NHWC RGB input, "tflite_uint8" for a uint8
    one, else None) and labels from the output size ("imagenet1000" / "imagenet1001", else None).
    Raises ModelFormatError for a file that is not a GraphDef, UnsupportedModelError for an op
    outside SUPPORTED_OPS (naming the op and the node)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ModelFormatError(f"cannot read {path}: {err}") from err
    nodes = parse_graphdef(data)
    output = output or _default_output(nodes)
    meta = {"source_format": "tf_graphdef", "preprocess": preprocess, "labels": labels,
            "name": name or os.path.splitext(os.path.basename(path))[0], "output": output}
    shape = tuple(int(d) for d in input_shape) if input_shape is not None else None
    graph = _Importer(nodes, output, input, shape, meta).run()
    if preprocess == "auto":
        graph.meta["preprocess"] = _guess_preprocess(graph)
    if labels == "auto":
        classes = graph.outputs[0].shape[-1] if graph.outputs[0].shape else 0
        graph.meta["labels"] = {1000: "imagenet1000", 1001: "imagenet1001"}.get(classes)
    return graph


def _guess_preprocess(graph: Graph) -> Optional[str]:
    spec = graph.inputs[0]
    if len(graph.inputs) != 1 or spec.layout != "NHWC" or spec.shape[3] != 3:
        return None
    return {"float32": "tf_slim", "uint8": "tflite_uint8"}.get(spec.dtype)
