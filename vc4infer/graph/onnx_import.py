"""ONNX -> IR. Reads the file with the `onnx` package (imported only here, lazily) and turns the
CNN operators that torch.onnx, tf2onnx and keras2onnx emit into IR nodes (NHWC inside).

Layout tracking: every ONNX activation maps to an IR tensor plus a permutation `perm` with
internal = file.transpose(perm). Conv, pooling and batch norm want (0, 2, 3, 1) (NCHW file,
NHWC inside); ONNX Transpose nodes only change the bookkeeping, and a transpose node is emitted
only where an op needs another arrangement (for example Flatten of a tensor whose file order
differs from the internal one). Shape arithmetic (Shape/Gather/Unsqueeze/Concat/Cast/... on
constants, as torch writes for `x.view(x.size(0), -1)`) is folded at import.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import numpy as np

from vc4infer.errors import GraphError, ModelFormatError, UnsupportedModelError, Vc4InferError
from vc4infer.graph.ir import Graph

NHWC = (0, 2, 3, 1)
MIN_OPSET = 7
# ONNX TensorProto.DataType -> numpy dtype name (the ones CNN files use)
_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
                9: "bool", 10: "float16", 11: "float64"}


@dataclass
class _Act:
    """An activation: IR tensor `tensor` holds file.transpose(perm)."""
    tensor: str
    perm: tuple


def _ident(rank: int) -> tuple:
    return tuple(range(rank))


def _inv(perm: tuple) -> tuple:
    return tuple(int(i) for i in np.argsort(perm))


class _Importer:
    def __init__(self, model, batch: int, input_shapes: dict, meta: dict):
        self.model = model
        self.batch = batch
        self.input_shapes = input_shapes
        self.g = Graph(meta=meta)
        self.vals: dict[str, Union[_Act, np.ndarray]] = {}
        self.opset = self._opset()
        self.node = None  # the ONNX node being translated (for messages)

    # -- helpers ---------------------------------------------------------------------------
    def _opset(self) -> int:
        versions = [o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")]
        if not versions:
            raise ModelFormatError("ONNX file declares no opset for the default domain")
        v = max(versions)
        if v < MIN_OPSET:
            raise UnsupportedModelError(f"ONNX opset {v} is older than the oldest supported "
                                        f"({MIN_OPSET}); re-export with a newer opset")
        return v

    def err(self, msg: str, cls=ModelFormatError):
        n = self.node
        where = f"node {n.name!r} ({n.op_type})" if n is not None else "ONNX graph"
        return cls(f"{where}: {msg}")

    def attrs(self, node) -> dict:
        from onnx import helper
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def val(self, name: str):
        if name not in self.vals:
            raise self.err(f"input {name!r} is neither a graph input, an initializer nor the "
                           f"output of an earlier node (is the graph topologically sorted?)")
        return self.vals[name]

    def const(self, name: str, what: str) -> np.ndarray:
        v = self.val(name)
        if isinstance(v, _Act):
            raise self.err(f"{what} ({name!r}) must be a constant; computed {what}s are not "
                           f"supported", UnsupportedModelError)
        return v

    def opt_const(self, node, i: int, what: str) -> Optional[np.ndarray]:
        if len(node.input) > i and node.input[i]:
            return self.const(node.input[i], what)
        return None

    def file_shape(self, a: _Act) -> tuple:
        s = self.g.tensors[a.tensor].shape
        out = [0] * len(s)
        for i, p in enumerate(a.perm):
            out[p] = s[i]
        return tuple(out)

    def add(self, op: str, inputs: list, **attrs) -> str:
        try:
            return self.g.add_node(op, inputs, name=self.node.name or None, **attrs)[0]
        except GraphError as e:
            raise self.err(str(e)) from None

    def constant(self, value: np.ndarray, base: str = "const") -> str:
        value = np.asarray(value)
        if value.dtype.kind == "f" or value.dtype == np.float64:
            value = value.astype(np.float32)
        return self.g.add_constant(self.g.unique_name(f"{self.node.name or base}:{base}"), value)

    def arrange(self, a: _Act, perm: tuple) -> str:
        """The tensor of `a` rearranged so that it holds file.transpose(perm)."""
        if tuple(a.perm) == tuple(perm):
            return a.tensor
        q = tuple(a.perm.index(p) for p in perm)
        return self.add("transpose", [a.tensor], perm=q)

    def nhwc(self, name: str) -> str:
        a = self.val(name)
        if not isinstance(a, _Act):
            raise self.err(f"input {name!r} is a constant; only computed tensors are supported "
                           f"here", UnsupportedModelError)
        if len(a.perm) != 4:
            raise self.err(f"needs a 4-D NCHW input, {name!r} has shape {self.file_shape(a)}",
                           UnsupportedModelError)
        return self.arrange(a, NHWC)

    def row_major(self, a: _Act) -> str:
        """A tensor whose row-major element order is the file's (a reshape may follow)."""
        shape = self.file_shape(a)
        big = [p for p in a.perm if shape[p] != 1]
        if big == sorted(big):
            return a.tensor
        return self.arrange(a, _ident(len(a.perm)))

    def act(self, name: str) -> _Act:
        a = self.val(name)
        if not isinstance(a, _Act):
            raise self.err(f"input {name!r} is a constant where a computed tensor is expected",
                           UnsupportedModelError)
        return a

    def set_out(self, node, tensor: str, perm: tuple, index: int = 0) -> None:
        self.vals[node.output[index]] = _Act(tensor, tuple(perm))

    # -- inputs, initializers, outputs -----------------------------------------------------
    def load_initializers(self) -> None:
        from onnx import numpy_helper
        for t in self.model.graph.initializer:
            if t.data_location == 1:
                raise UnsupportedModelError(f"initializer {t.name!r} keeps its data in an "
                                            f"external file; save the model with all tensors "
                                            f"inside (onnx.save(..., save_as_external_data=False))")
            try:
                self.vals[t.name] = numpy_helper.to_array(t)
            except Exception as e:  # numpy_helper raises ValueError/TypeError on bad payloads
                raise ModelFormatError(f"initializer {t.name!r} is corrupt: {e}") from None

    def add_inputs(self) -> None:
        consumers: dict[str, list] = {}
        for n in self.model.graph.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        for vi in self.model.graph.input:
            if vi.name in self.vals:  # old exporters list initializers as inputs too
                continue
            tt = vi.type.tensor_type
            dtype = _ONNX_DTYPES.get(tt.elem_type)
            if dtype != "float32":
                raise UnsupportedModelError(f"graph input {vi.name!r} has element type "
                                            f"{dtype or tt.elem_type}; only float32 inputs are "
                                            f"supported")
            shape = self._input_shape(vi)
            layout = None
            perm = _ident(len(shape))
            if len(shape) == 4:
                users = consumers.get(vi.name, [])
                nhwc_file = users and all(
                    u.op_type == "Transpose" and list(self.attrs(u).get("perm", [])) == [0, 3, 1, 2]
                    for u in users)
                layout, perm = ("NHWC", perm) if nhwc_file else ("NCHW", NHWC)
            try:
                self.g.add_input(self.g.unique_name(vi.name), shape, "float32", layout=layout,
                                 name=vi.name)
            except GraphError as e:
                raise ModelFormatError(f"graph input {vi.name!r}: {e}") from None
            self.vals[vi.name] = _Act(self.g.inputs[-1].tensor, perm)

    def _input_shape(self, vi) -> tuple:
        if vi.name in self.input_shapes:
            return tuple(int(d) for d in self.input_shapes[vi.name])
        if not vi.type.tensor_type.HasField("shape"):
            raise ModelFormatError(f"graph input {vi.name!r} has no shape; pass "
                                   f"input_shapes={{{vi.name!r}: (...)}}")
        shape = []
        for k, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                shape.append(d.dim_value)
            elif k == 0:
                shape.append(self.batch)
            else:
                raise UnsupportedModelError(
                    f"graph input {vi.name!r}: dimension {k} is dynamic ({d.dim_param or '?'}); "
                    f"pass input_shapes={{{vi.name!r}: (...)}} to fix it")
        return tuple(shape)

    def add_outputs(self) -> None:
        for vi in self.model.graph.output:
            v = self.val(vi.name)
            if not isinstance(v, _Act):
                raise UnsupportedModelError(f"graph output {vi.name!r} is a constant")
            rank = len(v.perm)
            if rank == 4 and v.perm == NHWC:
                tensor, layout = v.tensor, "NCHW"
            else:
                tensor = self.arrange(v, _ident(rank)) if v.perm != _ident(rank) else v.tensor
                layout = "NHWC" if rank == 4 else None
            declared = [d.dim_value if d.HasField("dim_value") else None
                        for d in vi.type.tensor_type.shape.dim]
            spec = self.g.add_output(tensor, layout=layout, name=vi.name)
            if declared and (len(declared) != len(spec.shape) or any(
                    d not in (None, 0, s) for k, (d, s) in enumerate(zip(declared, spec.shape))
                    if not (k == 0 and self.batch != 1))):
                raise ModelFormatError(f"graph output {vi.name!r} is declared with shape "
                                       f"{declared} but the graph computes {list(spec.shape)}")

    # -- the translation loop --------------------------------------------------------------
    def run(self) -> Graph:
        self.load_initializers()
        self.add_inputs()
        for n in self.model.graph.node:
            self.node = n
            if n.domain not in ("", "ai.onnx"):
                raise self.err(f"operator domain {n.domain!r} is not supported (only the "
                               f"default ONNX domain)", UnsupportedModelError)
            inputs = [i for i in n.input if i]
            if n.op_type in _FOLDABLE and inputs and all(
                    not isinstance(self.val(i), _Act) for i in inputs):
                self._fold(n)
                continue
            handler = HANDLERS.get(n.op_type)
            if handler is None:
                raise UnsupportedModelError(
                    f"ONNX operator {n.op_type} (node {n.name!r}) is not supported; supported "
                    f"operators: {', '.join(sorted(HANDLERS))}")
            try:
                handler(self, n, self.attrs(n))
            except Vc4InferError:
                raise
            except (KeyError, IndexError, TypeError, ValueError) as e:
                # a required attribute or input is missing or has the wrong type
                raise self.err(f"malformed node ({type(e).__name__}: {e})") from None
        self.node = None
        self.add_outputs()
        try:
            self.g.validate()
        except GraphError as e:
            raise ModelFormatError(f"imported graph is inconsistent: {e}") from None
        return self.g

    def _fold(self, n) -> None:
        """Evaluate a node whose inputs are all constants (shape arithmetic)."""
        a = self.attrs(n)
        ins = [self.vals[i] if i else None for i in n.input]
        try:
            out = _FOLDABLE[n.op_type](self, ins, a)
        except (ValueError, IndexError, TypeError) as e:
            raise self.err(f"cannot evaluate on constants: {e}") from None
        self.vals[n.output[0]] = np.asarray(out)


# -- constant folding (ONNX semantics on numpy arrays) ------------------------------------

def _axes_arg(imp: _Importer, ins: list, a: dict, min_opset_input: int) -> Optional[list]:
    if imp.opset >= min_opset_input:
        return None if len(ins) < 2 or ins[1] is None else [int(x) for x in ins[1]]
    return a.get("axes")


def _fold_unsqueeze(imp, ins, a):
    x = ins[0]
    axes = _axes_arg(imp, ins, a, 13)
    rank = x.ndim + len(axes)
    for ax in sorted(ax % rank for ax in axes):
        x = np.expand_dims(x, ax)
    return x


def _fold_squeeze(imp, ins, a):
    axes = _axes_arg(imp, ins, a, 13)
    return np.squeeze(ins[0], axis=None if axes is None else tuple(axes))


def _fold_slice(imp, ins, a):
    x = ins[0]
    if imp.opset >= 10:
        starts, ends = ins[1], ins[2]
        axes = ins[3] if len(ins) > 3 and ins[3] is not None else range(len(starts))
        steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    else:
        starts, ends = a["starts"], a["ends"]
        axes, steps = a.get("axes", range(len(starts))), [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        sl[int(ax)] = slice(int(s), int(e), int(st))
    return x[tuple(sl)]


def _fold_reshape(imp, ins, a):
    shape = [int(d) for d in ins[1]]
    shape = [ins[0].shape[k] if d == 0 else d for k, d in enumerate(shape)]
    return ins[0].reshape(shape)


def _div_toward_zero(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX integer Div: the quotient truncated toward zero (numpy's // floors)."""
    q = a // b
    return q + ((q < 0) & (q * b != a))


def _fold_cast(imp, ins, a):
    return ins[0].astype(_ONNX_DTYPES[a["to"]])


def _fold_constant_of_shape(imp, ins, a):
    from onnx import numpy_helper
    value = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
    return np.full([int(d) for d in ins[0]], value.reshape(-1)[0], dtype=value.dtype)


_FOLDABLE: dict[str, Callable] = {
    "Add": lambda imp, i, a: i[0] + i[1],
    "Sub": lambda imp, i, a: i[0] - i[1],
    "Mul": lambda imp, i, a: i[0] * i[1],
    "Div": lambda imp, i, a: _div_toward_zero(i[0], i[1]) if i[0].dtype.kind in "iu" else i[0] / i[1],
    "Neg": lambda imp, i, a: -i[0],
    "Sqrt": lambda imp, i, a: np.sqrt(i[0]),
    "Reciprocal": lambda imp, i, a: 1 / i[0],
    "Pow": lambda imp, i, a: np.power(i[0], i[1]),
    "Gather": lambda imp, i, a: np.take(i[0], i[1], axis=a.get("axis", 0)),
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "Concat": lambda imp, i, a: np.concatenate([np.atleast_1d(x) for x in i], axis=a["axis"]),
    "Cast": _fold_cast,
    "Slice": _fold_slice,
    "Reshape": _fold_reshape,
    "Transpose": lambda imp, i, a: np.transpose(i[0], a.get("perm")),
    "Shape": lambda imp, i, a: np.array(i[0].shape, np.int64)[a.get("start", 0):a.get("end")],
    "ConstantOfShape": _fold_constant_of_shape,
    "Identity": lambda imp, i, a: i[0],
    "Relu": lambda imp, i, a: np.maximum(i[0], 0),
    "Floor": lambda imp, i, a: np.floor(i[0]),
    "Ceil": lambda imp, i, a: np.ceil(i[0]),
    "Range": lambda imp, i, a: np.arange(i[0], i[1], i[2]),
    "Max": lambda imp, i, a: np.maximum.reduce(list(i)),
    "Min": lambda imp, i, a: np.minimum.reduce(list(i)),
}


# -- operator handlers ---------------------------------------------------------------------

def _same_pads(size: int, k: int, s: int, d: int, upper: bool) -> tuple:
    out = math.ceil(size / s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    small = total // 2
    return (small, total - small) if upper else (total - small, small)


def _window_pads(imp: _Importer, a: dict, hw: tuple, kernel: tuple, strides: tuple,
                 dilations: tuple) -> tuple:
    """(top, left, bottom, right) from ONNX pads / auto_pad."""
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        (t, b), (l, r) = (_same_pads(hw[i], kernel[i], strides[i], dilations[i],
                                     auto == "SAME_UPPER") for i in range(2))
        return (t, l, b, r)
    if auto not in ("NOTSET", "VALID"):
        raise imp.err(f"auto_pad {auto!r} is not an ONNX value")
    pads = list(a.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else [0, 0, 0, 0]
    if len(pads) != 4:
        raise imp.err(f"pads {pads} must have 4 values for a 2-D window", UnsupportedModelError)
    return (pads[0], pads[1], pads[2], pads[3])


def _conv(imp: _Importer, n, a: dict) -> None:
    x = imp.nhwc(n.input[0])
    w = imp.const(n.input[1], "weight")
    if w.ndim != 4:
        raise imp.err(f"only 2-D convolution is supported (weight shape {w.shape})",
                      UnsupportedModelError)
    b = imp.opt_const(n, 2, "bias")
    kernel = tuple(a.get("kernel_shape", w.shape[2:]))
    if kernel != tuple(w.shape[2:]):
        raise imp.err(f"kernel_shape {kernel} disagrees with the weight shape {w.shape}")
    strides = tuple(a.get("strides", (1, 1)))
    dilations = tuple(a.get("dilations", (1, 1)))
    hw = imp.g.tensors[x].shape[1:3]
    pads = _window_pads(imp, a, hw, kernel, strides, dilations)
    inputs = [x, imp.constant(np.transpose(w, (0, 2, 3, 1)), "w")]
    if b is not None:
        inputs.append(imp.constant(b, "b"))
    y = imp.add("conv2d", inputs, strides=strides, dilations=dilations, pads=pads,
                groups=a.get("group", 1))
    imp.set_out(n, y, NHWC)


def _batch_norm(imp: _Importer, n, a: dict) -> None:
    xa = imp.act(n.input[0])
    if a.get("spatial", 1) != 1 or a.get("training_mode", 0):
        raise imp.err("only inference-mode, spatial batch normalization is supported",
                      UnsupportedModelError)
    rank = len(xa.perm)
    if rank == 4:
        x, perm = imp.nhwc(n.input[0]), NHWC
    elif rank == 2:
        x, perm = imp.arrange(xa, (0, 1)), (0, 1)
    else:
        raise imp.err(f"batch normalization of a rank-{rank} tensor is not supported",
                      UnsupportedModelError)
    values = [imp.const(n.input[i], role).reshape(-1).astype(np.float32)
              for i, role in ((1, "gamma"), (2, "beta"), (3, "mean"), (4, "var"))]
    if values[3].size and not values[3].min() >= 0:
        raise imp.err("batch norm variance has negative or NaN entries")
    params = [imp.constant(v, role) for v, role in zip(values, ("gamma", "beta", "mean", "var"))]
    y = imp.add("batch_norm", [x] + params, epsilon=a.get("epsilon", 1e-5))
    imp.set_out(n, y, perm)


def _unary(op: str) -> Callable:
    def handler(imp: _Importer, n, a: dict) -> None:
        x = imp.act(n.input[0])
        imp.set_out(n, imp.add(op, [x.tensor]), x.perm)
    return handler


def _unary_attrs(op: str, **defaults) -> Callable:
    def handler(imp: _Importer, n, a: dict) -> None:
        x = imp.act(n.input[0])
        attrs = {k: a.get(k, v) for k, v in defaults.items()}
        imp.set_out(n, imp.add(op, [x.tensor], **attrs), x.perm)
    return handler


def _minmax(bound: str) -> Callable:
    """Max(x, c) is a clip from below, Min(x, c) from above (tf2onnx writes ReLU6 this way)."""
    def handler(imp: _Importer, n, a: dict) -> None:
        vals = [imp.val(i) for i in n.input]
        acts = [v for v in vals if isinstance(v, _Act)]
        consts = [v for v in vals if not isinstance(v, _Act)]
        if len(acts) != 1 or any(c.size != 1 for c in consts):
            raise imp.err(f"{n.op_type} is supported for one computed tensor and scalar "
                          f"constants only", UnsupportedModelError)
        x = acts[0]
        reduce = max if bound == "min" else min
        value = float(reduce(float(c.reshape(-1)[0]) for c in consts)) if consts else None
        if value is None:
            imp.set_out(n, x.tensor, x.perm)
            return
        if bound == "min" and value == 0:
            y = imp.add("relu", [x.tensor])
        else:
            y = imp.add("clip", [x.tensor], **{bound: value})
        imp.set_out(n, y, x.perm)
    return handler


def _sum(imp: _Importer, n, a: dict) -> None:
    names = [i for i in n.input if i]
    if len(names) == 1:
        imp.vals[n.output[0]] = imp.val(names[0])
        return
    add = _binary("add")
    acc = names[0]
    for k, other in enumerate(names[1:]):
        out = n.output[0] if k == len(names) - 2 else f"{n.output[0]}__sum{k}"
        add(imp, helper_node(n, [acc, other], out), {})
        acc = out


def helper_node(n, inputs: list, output: str):
    """A stand-in for an ONNX node with other inputs and output (for expanding n-ary ops)."""
    from onnx import helper
    return helper.make_node(n.op_type, inputs, [output], name=n.name)


def _clip(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    if imp.opset < 11:
        lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
    else:
        lo_c, hi_c = imp.opt_const(n, 1, "min"), imp.opt_const(n, 2, "max")
        lo = -np.inf if lo_c is None else float(lo_c)
        hi = np.inf if hi_c is None else float(hi_c)
    if lo == 0 and hi == 6:
        y = imp.add("relu6", [x.tensor])
    elif lo == 0 and hi == np.inf:
        y = imp.add("relu", [x.tensor])
    else:
        y = imp.add("clip", [x.tensor], min=lo, max=hi)
    imp.set_out(n, y, x.perm)


def _binary(op: str) -> Callable:
    def handler(imp: _Importer, n, a: dict) -> None:
        va, vb = imp.val(n.input[0]), imp.val(n.input[1])
        if isinstance(va, _Act) and isinstance(vb, _Act):
            if len(va.perm) == len(vb.perm):
                perm = va.perm
                ta, tb = va.tensor, imp.arrange(vb, perm)
            else:
                perm = _ident(max(len(va.perm), len(vb.perm)))
                ta, tb = imp.arrange(va, _ident(len(va.perm))), imp.arrange(vb, _ident(len(vb.perm)))
        else:
            act = va if isinstance(va, _Act) else vb
            c = vb if act is va else va
            rank = len(act.perm)
            if c.ndim > rank:
                raise imp.err(f"constant operand of shape {c.shape} has a higher rank than the "
                              f"tensor it is combined with", UnsupportedModelError)
            c = np.transpose(c.reshape((1,) * (rank - c.ndim) + c.shape), act.perm)
            # drop leading 1s so per-channel constants stay (C,) as the IR documents
            while c.ndim > 1 and c.shape[0] == 1:
                c = c[0]
            ct = imp.constant(c.astype(np.float32), "c")
            perm = act.perm
            ta, tb = (act.tensor, ct) if act is va else (ct, act.tensor)
        imp.set_out(n, imp.add(op, [ta, tb]), perm)
    return handler


def _gap(imp: _Importer, n, a: dict) -> None:
    imp.set_out(n, imp.add("global_avg_pool", [imp.nhwc(n.input[0])]), NHWC)


def _pool(op: str) -> Callable:
    def handler(imp: _Importer, n, a: dict) -> None:
        if len(n.output) > 1 and n.output[1]:
            raise imp.err("the Indices output of MaxPool is not supported", UnsupportedModelError)
        x = imp.nhwc(n.input[0])
        kernel = tuple(a["kernel_shape"])
        if len(kernel) != 2:
            raise imp.err(f"only 2-D pooling is supported (kernel {kernel})", UnsupportedModelError)
        strides = tuple(a.get("strides", (1, 1)))
        if tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise imp.err("pooling with dilations is not supported", UnsupportedModelError)
        shape = imp.g.tensors[x].shape
        pads = list(_window_pads(imp, a, shape[1:3], kernel, strides, (1, 1)))
        include = bool(a.get("count_include_pad", 0))
        if a.get("ceil_mode", 0):
            if op == "avg_pool2d" and include:
                raise imp.err("ceil_mode=1 together with count_include_pad=1 is not supported",
                              UnsupportedModelError)
            for k, (lo, hi) in enumerate(((0, 2), (1, 3))):
                size = shape[1 + k] + pads[lo] + pads[hi]
                out = -(-(size - kernel[k]) // strides[k]) + 1
                if (out - 1) * strides[k] >= shape[1 + k] + pads[lo]:
                    out -= 1  # the last window must start inside the input or its left padding
                pads[hi] += max(0, (out - 1) * strides[k] + kernel[k] - size)
        attrs = dict(kernel=kernel, strides=strides, pads=tuple(pads))
        if op == "avg_pool2d":
            attrs["count_include_pad"] = include
        imp.set_out(n, imp.add(op, [x], **attrs), NHWC)
    return handler


def _pad(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise imp.err(f"pad mode {mode!r} is not supported (only 'constant')", UnsupportedModelError)
    rank = len(x.perm)
    if imp.opset < 11:
        pads, value = list(a.get("pads", a.get("paddings", []))), a.get("value", 0.0)
        axes = list(range(rank))
    else:
        pads = [int(p) for p in imp.const(n.input[1], "pads")]
        v = imp.opt_const(n, 2, "constant_value")
        value = 0.0 if v is None else float(v)
        ax = imp.opt_const(n, 3, "axes")
        axes = list(range(rank)) if ax is None else [int(i) % rank for i in ax]
    if len(pads) != 2 * len(axes):
        raise imp.err(f"{len(pads)} pad values for {len(axes)} axes")
    if min(pads) < 0:
        raise imp.err("negative pads (cropping) are not supported", UnsupportedModelError)
    file_pairs = [(0, 0)] * rank
    for k, ax in enumerate(axes):
        file_pairs[ax] = (pads[k], pads[k + len(axes)])
    pairs = tuple(file_pairs[p] for p in x.perm)
    imp.set_out(n, imp.add("pad", [x.tensor], pads=pairs, value=value), x.perm)


def _gemm(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    if a.get("transA", 0) or len(x.perm) != 2:
        raise imp.err("Gemm with transA=1 or a non-2-D input is not supported",
                      UnsupportedModelError)
    bv = imp.val(n.input[1])
    if isinstance(bv, _Act):
        raise imp.err("Gemm with a computed B operand is not supported", UnsupportedModelError)
    w = bv if a.get("transB", 0) else bv.T
    w = w.astype(np.float32) * np.float32(a.get("alpha", 1.0))
    inputs = [imp.arrange(x, (0, 1)), imp.constant(w, "w")]
    c = imp.opt_const(n, 2, "C")
    if c is not None:
        c = c.astype(np.float32) * np.float32(a.get("beta", 1.0))
        if c.size not in (1, w.shape[0]):
            raise imp.err(f"Gemm bias of shape {c.shape} is not per output", UnsupportedModelError)
        inputs.append(imp.constant(np.broadcast_to(c.reshape(-1), (w.shape[0],)).copy(), "b"))
    imp.set_out(n, imp.add("fully_connected", inputs), (0, 1))


def _matmul(imp: _Importer, n, a: dict) -> None:
    va, vb = imp.val(n.input[0]), imp.val(n.input[1])
    if isinstance(va, _Act) and not isinstance(vb, _Act) and len(va.perm) == 2 and vb.ndim == 2:
        y = imp.add("fully_connected", [imp.arrange(va, (0, 1)), imp.constant(vb.T, "w")])
        imp.set_out(n, y, (0, 1))
        return
    ta = imp.arrange(va, _ident(len(va.perm))) if isinstance(va, _Act) else imp.constant(va, "a")
    tb = imp.arrange(vb, _ident(len(vb.perm))) if isinstance(vb, _Act) else imp.constant(vb, "b")
    y = imp.add("matmul", [ta, tb])
    imp.set_out(n, y, _ident(len(imp.g.tensors[y].shape)))


def _reshape_to(imp: _Importer, n, x: _Act, shape: tuple) -> None:
    src = imp.row_major(x)
    y = imp.add("reshape", [src], shape=tuple(int(d) for d in shape))
    imp.set_out(n, y, _ident(len(imp.g.tensors[y].shape)))


def _flatten(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    fs = imp.file_shape(x)
    axis = a.get("axis", 1)
    axis = axis + len(fs) if axis < 0 else axis
    if not 0 <= axis <= len(fs):
        raise imp.err(f"Flatten axis {a.get('axis')} out of range for rank {len(fs)}")
    _reshape_to(imp, n, x, (int(np.prod(fs[:axis])), int(np.prod(fs[axis:]))))


def _reshape(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    fs = imp.file_shape(x)
    if imp.opset >= 5:
        target = [int(d) for d in imp.const(n.input[1], "shape")]
    else:
        target = list(a["shape"])
    if a.get("allowzero", 0) and 0 in target:
        raise imp.err("Reshape with allowzero=1 and a 0 in the shape is not supported",
                      UnsupportedModelError)
    target = [fs[k] if d == 0 else d for k, d in enumerate(target)]
    _reshape_to(imp, n, x, tuple(target))


def _squeeze(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    fs = imp.file_shape(x)
    axes = _axes_arg(imp, [None] + [imp.opt_const(n, 1, "axes")], a, 13)
    axes = {ax % len(fs) for ax in axes} if axes is not None else {k for k, d in enumerate(fs) if d == 1}
    if any(fs[ax] != 1 for ax in axes):
        raise imp.err(f"cannot squeeze axes {sorted(axes)} of shape {fs}")
    _reshape_to(imp, n, x, tuple(d for k, d in enumerate(fs) if k not in axes))


def _unsqueeze(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    fs = list(imp.file_shape(x))
    axes = _axes_arg(imp, [None] + [imp.opt_const(n, 1, "axes")], a, 13)
    rank = len(fs) + len(axes)
    for ax in sorted(ax % rank for ax in axes):
        fs.insert(ax, 1)
    _reshape_to(imp, n, x, tuple(fs))


def _transpose(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    rank = len(x.perm)
    t = tuple(a.get("perm", reversed(range(rank))))
    if sorted(t) != list(range(rank)):
        raise imp.err(f"perm {t} is not a permutation of rank {rank}")
    # out_file = in_file.transpose(t); keep the data and choose out perm p with t[p] == x.perm
    imp.set_out(n, x.tensor, tuple(t.index(p) for p in x.perm))


def _concat(imp: _Importer, n, a: dict) -> None:
    vals = [imp.val(i) for i in n.input if i]
    first = next((v for v in vals if isinstance(v, _Act)), None)
    perm = first.perm
    axis = a["axis"] % len(perm)
    tensors = [imp.arrange(v, perm) if isinstance(v, _Act)
               else imp.constant(np.transpose(v, perm), "c") for v in vals]
    imp.set_out(n, imp.add("concat", tensors, axis=perm.index(axis)), perm)


def _softmax(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    rank = len(x.perm)
    axis = a.get("axis", 1 if imp.opset < 13 else -1) % rank
    if imp.opset >= 13 or axis == rank - 1:
        imp.set_out(n, imp.add("softmax", [x.tensor], axis=x.perm.index(axis)), x.perm)
        return
    # before opset 13 Softmax works on the input coerced to 2-D at `axis`
    fs = imp.file_shape(x)
    flat = imp.add("reshape", [imp.row_major(x)],
                   shape=(int(np.prod(fs[:axis])), int(np.prod(fs[axis:]))))
    y = imp.add("softmax", [flat], axis=-1)
    imp.set_out(n, imp.add("reshape", [y], shape=fs), _ident(rank))


def _reduce_mean(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    rank = len(x.perm)
    axes = _axes_arg(imp, [None] + [imp.opt_const(n, 1, "axes")], a, 18)
    if axes is None or len(axes) == 0:
        if a.get("noop_with_empty_axes", 0):
            imp.set_out(n, x.tensor, x.perm)
            return
        axes = list(range(rank))
    axes = {ax % rank for ax in axes}
    keep = bool(a.get("keepdims", 1))
    internal = tuple(sorted(x.perm.index(ax) for ax in axes))
    if rank == 4 and internal == (1, 2):  # mean over H and W of an NHWC tensor
        y = imp.add("global_avg_pool", [x.tensor])
        if not keep:
            y = imp.add("reshape", [y], shape=(imp.g.tensors[y].shape[0], imp.g.tensors[y].shape[3]))
    else:
        y = imp.add("mean", [x.tensor], axes=internal, keepdims=keep)
    if keep:
        perm = x.perm
    else:
        remaining = [p for p in x.perm if p not in axes]
        order = sorted(remaining)
        perm = tuple(order.index(p) for p in remaining)
    imp.set_out(n, y, perm)


def _alias(imp: _Importer, n, a: dict) -> None:
    if len(n.output) > 1 and n.output[1]:
        used = any(n.output[1] in m.input for m in imp.model.graph.node)
        if used:
            raise imp.err("the mask output of Dropout is not supported", UnsupportedModelError)
    imp.vals[n.output[0]] = imp.val(n.input[0])


def _constant(imp: _Importer, n, a: dict) -> None:
    from onnx import numpy_helper
    if "value" in a:
        v = numpy_helper.to_array(a["value"])
    elif "value_float" in a:
        v = np.array(a["value_float"], np.float32)
    elif "value_floats" in a:
        v = np.array(a["value_floats"], np.float32)
    elif "value_int" in a:
        v = np.array(a["value_int"], np.int64)
    elif "value_ints" in a:
        v = np.array(a["value_ints"], np.int64)
    else:
        raise imp.err(f"Constant with attributes {sorted(a)} is not supported",
                      UnsupportedModelError)
    imp.vals[n.output[0]] = v


def _shape(imp: _Importer, n, a: dict) -> None:
    x = imp.act(n.input[0])
    imp.vals[n.output[0]] = np.array(imp.file_shape(x), np.int64)[a.get("start", 0):a.get("end")]


def _cast(imp: _Importer, n, a: dict) -> None:
    if _ONNX_DTYPES.get(a["to"]) != "float32":
        raise imp.err(f"Cast of a computed tensor to {_ONNX_DTYPES.get(a['to'], a['to'])} is not "
                      f"supported (float32 only)", UnsupportedModelError)
    imp.vals[n.output[0]] = imp.act(n.input[0])


HANDLERS: dict[str, Callable] = {
    "Conv": _conv, "BatchNormalization": _batch_norm,
    "Relu": _unary("relu"), "Sigmoid": _unary("sigmoid"), "Tanh": _unary("tanh"),
    "HardSwish": _unary("hard_swish"), "LeakyRelu": _unary_attrs("leaky_relu", alpha=0.01),
    "HardSigmoid": _unary_attrs("hard_sigmoid", alpha=0.2, beta=0.5), "Clip": _clip,
    "Max": _minmax("min"), "Min": _minmax("max"), "Sum": _sum,
    "Add": _binary("add"), "Sub": _binary("sub"), "Mul": _binary("mul"), "Div": _binary("div"),
    "GlobalAveragePool": _gap, "AveragePool": _pool("avg_pool2d"), "MaxPool": _pool("max_pool2d"),
    "Pad": _pad, "Gemm": _gemm, "MatMul": _matmul, "Flatten": _flatten, "Reshape": _reshape,
    "Squeeze": _squeeze, "Unsqueeze": _unsqueeze, "Transpose": _transpose, "Concat": _concat,
    "Softmax": _softmax, "ReduceMean": _reduce_mean, "Identity": _alias, "Dropout": _alias,
    "Constant": _constant, "Shape": _shape, "Cast": _cast,
}


def _load_proto(path: Union[str, os.PathLike]):
    try:
        import onnx
    except ImportError:
        raise UnsupportedModelError("reading ONNX files needs the `onnx` package: "
                                    "pip install onnx") from None
    from google.protobuf.message import DecodeError
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ModelFormatError(f"{path}: the file is empty")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise ModelFormatError(f"{path}: not a readable ONNX model (truncated or corrupt "
                               f"protobuf: {e})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFormatError(f"{path}: the ONNX model has no graph nodes (is this an ONNX file?)")
    return model


def import_onnx(path: Union[str, os.PathLike], batch: int = 1,
                input_shapes: Optional[dict] = None, preprocess: Any = "auto",
                labels: Any = "auto") -> Graph:
    """Read an ONNX file into a Graph.

    batch: the size used for a dynamic first input dimension. input_shapes: {input name: shape}
    for inputs with other dynamic dimensions. preprocess / labels: the Graph.meta values; "auto"
    guesses ("torchvision" for a 3-channel NCHW image input, "tf_slim" for an NHWC one;
    "imagenet1000"/"imagenet1001" from the size of a single output)."""
    model = _load_proto(path)
    meta = {"source_format": "onnx", "name": os.path.splitext(os.path.basename(str(path)))[0],
            "producer": model.producer_name}
    g = _Importer(model, int(batch), dict(input_shapes or {}), meta).run()
    if preprocess == "auto":
        preprocess = None
        if len(g.inputs) == 1 and len(g.inputs[0].shape) == 4:
            spec = g.inputs[0]
            if spec.layout == "NCHW" and spec.shape[1] == 3:
                preprocess = "torchvision"
            elif spec.layout == "NHWC" and spec.shape[3] == 3:
                preprocess = "tf_slim"
    if labels == "auto":
        labels = None
        if len(g.outputs) == 1 and len(g.outputs[0].shape) == 2:
            labels = {1000: "imagenet1000", 1001: "imagenet1001"}.get(g.outputs[0].shape[1])
    g.meta["preprocess"], g.meta["labels"] = preprocess, labels
    return g
