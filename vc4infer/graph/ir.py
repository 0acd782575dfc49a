"""The graph IR every importer produces and every runtime consumes.

A `Graph` is a list of `Node`s in topological order over named tensors. Every tensor has a
`TensorInfo` (static shape, dtype, optional quantization). Weights and other constant operands
are ordinary tensors whose values live in `Graph.constants`; a node refers to them by name in its
`inputs` like any activation. Shapes are fully static (batch included).

Layout
------
Activations are NHWC inside the graph (rank-4 tensors are (N, H, W, C)); rank-2 activations are
(N, C). The file's own layout exists only at the boundary: `Graph.inputs` / `Graph.outputs` are
`TensorSpec`s that describe what the original runtime takes and returns (name, shape, dtype,
layout, quantization). `TensorSpec.to_internal(x)` / `TensorSpec.from_internal(y)` convert between
the two; for layout "NCHW" that is a transpose to/from NHWC, for every other layout the arrays are
identical. `TensorSpec.tensor` names the internal tensor.

Graph.meta (dict) keys
----------------------
- "source_format": "onnx" | "tflite" | "tf_graphdef" | "torchvision" | "ir" (built in code)
- "preprocess": "torchvision" | "tf_slim" | "tflite_uint8" | None  (image preprocessing family)
- "labels": "imagenet1000" | "imagenet1001" | None  (class list of the output)
- "name": a display name (file stem or zoo name); importers may add more keys.

Quantization
------------
`QuantParams(scale, zero_point, axis)`: real = scale * (q - zero_point). `scale` is a float32
1-D array, `zero_point` an int32 1-D array of the same length; `axis` is None for per-tensor
(length-1 arrays) or the axis along which per-channel values apply (for conv2d weights in OHWI
that is 0, for fully_connected weights (O, K) also 0). A node any of whose input or output tensors
carries quantization is executed by `hostside.neon_quant.run_node(graph, node, inputs)` (integer
semantics of TFLite); all other nodes run in float32 in `hostside.neon`.

Ops (attribute defaults in brackets; the table with shape inference and counts is `graph.ops`)
--------------------------------------------------------------------------------------------
Inputs are listed in order; "?" marks an optional input (omitted from `Node.inputs`). "act" is the
fused activation attribute `activation` in {None, "relu", "relu6"} [None], applied after the op.

conv2d(x, w, b?)            x (N,H,W,Cin) -> (N,Ho,Wo,Cout)
    w: (Cout, KH, KW, Cin/groups)  "OHWI";  b: (Cout,)
    strides (sh, sw) [(1,1)], dilations (dh, dw) [(1,1)], pads (top, left, bottom, right)
    [(0,0,0,0)] zero padding, groups [1], act. Depthwise convolution is conv2d with
    groups == Cin (w is (Cin*multiplier, KH, KW, 1)); `ops.is_depthwise(graph, node)` tells.
    Ho = (H + top + bottom - dh*(KH-1) - 1) // sh + 1 (likewise Wo).
expand_depthwise(x, we, be, wd, bd)
                            made by hostside.passes (importers never write it): MobileNet v2's
                            expansion then depthwise conv as one node: conv2d(conv2d(x, we, be,
                            act=act_expand), wd, bd, strides, pads, groups=C, act); we (C,1,1,K),
                            wd (C,KH,KW,1); act_expand [None], strides [(1,1)], pads [(0,0,0,0)].
fully_connected(x, w, b?)   x (N,K) -> (N,O);  w: (O, K);  b: (O,);  y = x @ w.T + b; act.
matmul(a, b)                numpy matmul semantics (rank >= 2, batch dims broadcast).
add(a, b), sub(a, b), mul(a, b), div(a, b)
                            elementwise with numpy broadcasting (constant operands are already
                            in the internal layout, e.g. a per-channel constant is (C,)); act.
relu(x)                     max(x, 0)
relu6(x)                    min(max(x, 0), 6)
clip(x)                     min(max(x, min), max); min [-inf], max [+inf]
sigmoid(x)                  1 / (1 + exp(-x))
tanh(x)                     tanh(x)
leaky_relu(x)               x if x >= 0 else alpha * x; alpha [0.01]
hard_sigmoid(x)             max(0, min(1, alpha * x + beta)); alpha [0.2], beta [0.5]
hard_swish(x)               x * max(0, min(1, x / 6 + 0.5))
batch_norm(x, gamma, beta, mean, var)
                            channel is the last axis; all four are (C,); epsilon [1e-5];
                            y = (x - mean) / sqrt(var + epsilon) * gamma + beta
pad(x)                      pads: ((before, after), ...) one pair per axis (internal layout);
                            mode "constant" only; value [0.0]
avg_pool2d(x)               NHWC; kernel (kh, kw), strides [(1,1)], pads (t, l, b, r) [(0,0,0,0)],
                            count_include_pad [False] (False: divide by the number of real
                            pixels in the window; True: by kh*kw)
max_pool2d(x)               NHWC; kernel, strides [(1,1)], pads [(0,0,0,0)] (padding never wins)
global_avg_pool(x)          (N,H,W,C) -> (N,1,1,C)
mean(x)                     axes (tuple, internal layout), keepdims [True]
reshape(x)                  shape: the full static output shape (row-major, like numpy)
flatten(x)                  axis [1]: (d0..d{a-1}, prod(rest))
squeeze(x)                  axes (tuple)
unsqueeze(x)                axes (tuple, positions in the output)
transpose(x)                perm (tuple)
concat(x0, x1, ...)         axis; any number of inputs
softmax(x)                  axis [-1]
quantize(x)                 float (or quantized, to requantize) -> the output tensor's
                            quantization; dtype ["uint8"] of the output (TFLite QUANTIZE)
dequantize(x)               quantized -> float32

Counts (`Graph.summary`, `layer_stats`): parameters are the elements of constant weight-like
inputs (conv/fc weights and biases, all four batch_norm vectors, constant operands of
elementwise ops); multiply-adds are counted for conv2d, fully_connected and matmul only, as the
MobileNet papers count them. A tensor may not exceed MAX_TENSOR_ELEMENTS elements.

Building a graph::

    g = Graph(meta={"source_format": "ir"})
    g.add_input("x", (1, 8, 8, 3), "float32")            # NHWC, spec layout "NHWC"
    g.add_constant("w", w_ohwi)                           # (16, 3, 3, 3)
    (y,) = g.add_node("conv2d", ["x", "w"], strides=(2, 2), pads=(1, 1, 1, 1))
    g.add_output(y)

`add_node` checks the op, its inputs and attributes, infers the output shapes (or checks them
against tensors declared beforehand with `add_tensor`, which is how quantized outputs get their
quantization) and returns the output names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import numpy as np

from vc4infer.errors import GraphError, ModelFormatError  # noqa: F401  (ModelFormatError re-exported)

DTYPES = ("float32", "uint8", "int8", "int16", "int32", "int64")
# No tensor of a model vc4infer runs comes near this; a larger one means a corrupt shape.
MAX_TENSOR_ELEMENTS = 1 << 30

# Layouts a TensorSpec may declare; only "NCHW" differs from the internal arrangement.
LAYOUTS = ("NCHW", "NHWC", "NC", None)
_NCHW_TO_NHWC = (0, 2, 3, 1)
_NHWC_TO_NCHW = (0, 3, 1, 2)


@dataclass
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point), per tensor (axis None) or per
    channel along `axis`."""
    scale: np.ndarray
    zero_point: np.ndarray
    axis: Optional[int] = None

    def __post_init__(self):
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float32))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point)).astype(np.int32)
        if self.zero_point.size == 1 and self.scale.size > 1:
            self.zero_point = np.full(self.scale.shape, self.zero_point[0], np.int32)
        if self.scale.shape != self.zero_point.shape:
            raise GraphError(f"quantization: {self.scale.size} scales but "
                             f"{self.zero_point.size} zero points")
        if self.axis is None and self.scale.size != 1:
            raise GraphError(f"quantization: {self.scale.size} scales need an axis")

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    def __repr__(self) -> str:
        if self.scale.size == 1:
            return f"Quant(scale={float(self.scale[0]):.6g}, zp={int(self.zero_point[0])})"
        return f"Quant({self.scale.size} scales, axis={self.axis})"


@dataclass
class TensorInfo:
    """Static description of one tensor inside the graph (internal layout)."""
    name: str
    shape: tuple
    dtype: str = "float32"
    quant: Optional[QuantParams] = None

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        self.dtype = np.dtype(self.dtype).name
        if self.dtype not in DTYPES:
            raise GraphError(f"tensor {self.name!r}: dtype {self.dtype} is not one of {DTYPES}")
        if any(d < 0 for d in self.shape):
            raise GraphError(f"tensor {self.name!r}: negative dimension in shape {self.shape}")
        if self.size > MAX_TENSOR_ELEMENTS:
            raise GraphError(f"tensor {self.name!r}: shape {self.shape} has {self.size:,} elements, "
                             f"more than the {MAX_TENSOR_ELEMENTS:,} vc4infer accepts (corrupt "
                             f"shape?)")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass
class TensorSpec:
    """One model input or output as the original runtime sees it.

    `shape`, `dtype`, `layout` and `quant` are the file's own; `tensor` is the name of the
    internal tensor (NHWC for images). Only layout "NCHW" is rearranged at the boundary."""
    name: str
    shape: tuple
    dtype: str
    layout: Optional[str]
    tensor: str
    quant: Optional[QuantParams] = None

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        self.dtype = np.dtype(self.dtype).name
        if self.layout not in LAYOUTS:
            raise GraphError(f"spec {self.name!r}: layout {self.layout!r} is not one of {LAYOUTS}")
        if self.layout in ("NCHW", "NHWC") and len(self.shape) != 4:
            raise GraphError(f"spec {self.name!r}: layout {self.layout} needs rank 4, "
                             f"shape is {self.shape}")

    @property
    def internal_shape(self) -> tuple:
        if self.layout == "NCHW":
            return tuple(self.shape[i] for i in _NCHW_TO_NHWC)
        return self.shape

    def to_internal(self, x: np.ndarray) -> np.ndarray:
        """File layout -> internal layout (no checks; see `check`)."""
        if self.layout != "NCHW":
            return x
        if x.shape[1] <= 8:
            # a few channels (an image): numpy would copy the whole transpose with an inner loop
            # over the channels of one pixel; a copy per channel runs over rows (4x faster)
            out = np.empty(tuple(x.shape[i] for i in _NCHW_TO_NHWC), x.dtype)
            for c in range(x.shape[1]):
                out[..., c] = x[:, c]
            return out
        return np.ascontiguousarray(x.transpose(_NCHW_TO_NHWC))

    def from_internal(self, y: np.ndarray) -> np.ndarray:
        """Internal layout -> file layout."""
        return np.ascontiguousarray(y.transpose(_NHWC_TO_NCHW)) if self.layout == "NCHW" else y

    def describe(self) -> str:
        q = f", {self.quant!r}" if self.quant is not None else ""
        return f"{self.name}: {self.dtype}{list(self.shape)} {self.layout or ''}{q}".rstrip()


@dataclass
class Node:
    """One op application. `inputs`/`outputs` are tensor names; `attrs` holds every attribute of
    the op (defaults filled in by `Graph.add_node`)."""
    op: str
    name: str
    inputs: list
    outputs: list
    attrs: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Node({self.op} {self.name!r}: {self.inputs} -> {self.outputs})"


class Graph:
    """Tensors, constants, nodes in topological order, boundary specs and metadata."""

    def __init__(self, meta: Optional[dict] = None):
        self.tensors: dict[str, TensorInfo] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.meta: dict[str, Any] = {"source_format": "ir", "preprocess": None, "labels": None}
        self.meta.update(meta or {})
        self._names: set[str] = set()
        self._node_names: set[str] = set()

    # -- construction ----------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        """A tensor name not used yet, derived from `base`."""
        name, i = base, 1
        while name in self._names or name in self.tensors:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    def _unique_node_name(self, base: str) -> str:
        name, i = base, 1
        while name in self._node_names:
            name = f"{base}_{i}"
            i += 1
        return name

    def add_tensor(self, name: str, shape: Iterable[int], dtype: str = "float32",
                   quant: Optional[QuantParams] = None) -> str:
        """Declare a tensor (used before `add_node` to give an output its quantization)."""
        if name in self.tensors:
            raise GraphError(f"tensor {name!r} is declared twice")
        self.tensors[name] = TensorInfo(name, tuple(shape), dtype, quant)
        self._names.add(name)
        return name

    def add_constant(self, name: str, value: np.ndarray,
                     quant: Optional[QuantParams] = None) -> str:
        """Add a constant tensor (weights, biases, elementwise operands); returns its name."""
        value = np.asarray(value)
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        self.add_tensor(name, value.shape, value.dtype.name, quant)
        self.constants[name] = np.ascontiguousarray(value)
        return name

    def add_input(self, tensor: str, shape: Iterable[int], dtype: str = "float32",
                  layout: Optional[str] = None, name: Optional[str] = None,
                  quant: Optional[QuantParams] = None) -> TensorSpec:
        """Add a graph input. `shape` is the file's shape in `layout`; the internal tensor named
        `tensor` is created with the internal (NHWC) shape."""
        shape = tuple(shape)
        if layout is None and len(shape) == 4:
            layout = "NHWC"
        spec = TensorSpec(name or tensor, shape, dtype, layout, tensor, quant)
        self.add_tensor(tensor, spec.internal_shape, dtype, quant)
        self.inputs.append(spec)
        return spec

    def add_output(self, tensor: str, layout: Optional[str] = None,
                   name: Optional[str] = None) -> TensorSpec:
        """Mark an existing tensor as a graph output; `layout` "NCHW" makes the boundary
        transpose the NHWC tensor back to NCHW."""
        info = self.tensor(tensor)
        if layout is None and len(info.shape) == 4:
            layout = "NHWC"
        shape = info.shape
        if layout == "NCHW":
            if len(shape) != 4:
                raise GraphError(f"output {tensor!r}: layout NCHW needs rank 4, shape {shape}")
            shape = tuple(shape[i] for i in _NHWC_TO_NCHW)
        spec = TensorSpec(name or tensor, shape, info.dtype, layout, tensor, info.quant)
        self.outputs.append(spec)
        return spec

    def add_node(self, op: str, inputs: list, outputs: Optional[list] = None,
                 name: Optional[str] = None, **attrs) -> list:
        """Append a node; fills attribute defaults, infers output shapes (creating output
        tensors that were not declared) and returns the output names."""
        from vc4infer.graph import ops as _ops
        opdef = _ops.get(op)
        name = self._unique_node_name(name or op)
        self._node_names.add(name)
        for t in inputs:
            if t not in self.tensors:
                raise GraphError(f"node {name!r} ({op}): input tensor {t!r} does not exist")
        full_attrs = opdef.fill_attrs(name, attrs)
        in_infos = [self.tensors[t] for t in inputs]
        opdef.check_arity(name, len(inputs))
        out_shapes = opdef.infer(name, [i.shape for i in in_infos], full_attrs)
        out_dtypes = opdef.out_dtypes(in_infos, full_attrs, len(out_shapes))
        if outputs is None:
            outputs = [self.unique_name(f"{name}:{k}" if len(out_shapes) > 1 else name)
                       for k in range(len(out_shapes))]
        if len(outputs) != len(out_shapes):
            raise GraphError(f"node {name!r} ({op}) has {len(out_shapes)} outputs, "
                             f"{len(outputs)} names were given")
        for t, shape, dtype in zip(outputs, out_shapes, out_dtypes):
            if t in self.tensors:
                declared = self.tensors[t]
                if declared.shape != tuple(shape):
                    raise GraphError(f"node {name!r} ({op}): output {t!r} declared with shape "
                                     f"{declared.shape}, inferred {tuple(shape)}")
                if any(n is not None and t in n.outputs for n in self.nodes):
                    raise GraphError(f"tensor {t!r} is produced twice")
            else:
                self.add_tensor(t, shape, dtype)
        self.nodes.append(Node(op, name, list(inputs), list(outputs), full_attrs))
        return list(outputs)

    # -- queries ---------------------------------------------------------------------------
    def tensor(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise GraphError(f"tensor {name!r} does not exist in the graph") from None

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def producer(self, tensor: str) -> Optional[Node]:
        for n in self.nodes:
            if tensor in n.outputs:
                return n
        return None

    def consumers(self, tensor: str) -> list:
        return [n for n in self.nodes if tensor in n.inputs]

    def node_quantized(self, node: Node) -> bool:
        """True when any input or output of `node` carries quantization (integer semantics)."""
        return any(self.tensors[t].quant is not None for t in (*node.inputs, *node.outputs))

    def validate(self) -> None:
        """Check topological order, that every tensor is defined once and that the inferred
        shapes still agree; raises GraphError."""
        from vc4infer.graph import ops as _ops
        defined = set(self.constants) | {s.tensor for s in self.inputs}
        for node in self.nodes:
            for t in node.inputs:
                if t not in defined:
                    raise GraphError(f"node {node.name!r} ({node.op}) reads {t!r} before it is "
                                     f"produced")
            shapes = _ops.get(node.op).infer(node.name, [self.tensors[t].shape for t in node.inputs],
                                             node.attrs)
            for t, s in zip(node.outputs, shapes):
                if t in defined:
                    raise GraphError(f"tensor {t!r} is produced twice")
                if self.tensors[t].shape != tuple(s):
                    raise GraphError(f"node {node.name!r}: output {t!r} has shape "
                                     f"{self.tensors[t].shape}, inferred {tuple(s)}")
                defined.add(t)
        for spec in self.outputs:
            if spec.tensor not in defined:
                raise GraphError(f"graph output {spec.name!r} ({spec.tensor!r}) is never produced")

    # -- reporting -------------------------------------------------------------------------
    def layer_stats(self) -> list:
        """Per node: dict(name, op, out_shape, params, macs, act_bytes)."""
        from vc4infer.graph import ops as _ops
        rows = []
        for node in self.nodes:
            opdef = _ops.get(node.op)
            rows.append({
                "name": node.name, "op": node.op,
                "out_shape": self.tensors[node.outputs[0]].shape,
                "params": opdef.params(self, node),
                "macs": opdef.macs(self, node),
                "act_bytes": sum(self.tensors[t].nbytes for t in node.outputs),
            })
        return rows

    def total_macs(self) -> int:
        return sum(r["macs"] for r in self.layer_stats())

    def total_params(self) -> int:
        """Parameters counted once per constant tensor used as a weight-like operand."""
        from vc4infer.graph import ops as _ops
        names = set()
        for node in self.nodes:
            names.update(_ops.get(node.op).param_tensors(self, node))
        return sum(int(self.constants[n].size) for n in names)

    def summary(self, where: Optional[dict] = None) -> str:
        """A table of layers: name, op, output shape, parameters, multiply-adds, activation bytes
        and (if `where` maps node names to places) where each layer runs."""
        rows = self.layer_stats()
        head = f"{'layer':<32} {'op':<16} {'output':<20} {'params':>10} {'MACs':>13} {'act bytes':>10}"
        if where is not None:
            head += "  where"
        lines = [head, "-" * len(head)]
        for r in rows:
            line = (f"{r['name'][:32]:<32} {r['op']:<16} {str(list(r['out_shape'])):<20} "
                    f"{r['params']:>10,} {r['macs']:>13,} {r['act_bytes']:>10,}")
            if where is not None:
                line += f"  {where.get(r['name'], '?')}"
            lines.append(line)
        lines.append("-" * len(head))
        lines.append(f"{len(rows)} layers, {self.total_params():,} parameters, "
                     f"{sum(r['macs'] for r in rows):,} multiply-adds")
        lines.append("inputs:  " + "; ".join(s.describe() for s in self.inputs))
        lines.append("outputs: " + "; ".join(s.describe() for s in self.outputs))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"Graph({len(self.nodes)} nodes, {len(self.constants)} constants, "
                f"meta={self.meta})")
