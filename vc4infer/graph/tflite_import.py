"""TFLite importer: a .tflite file (float32, uint8 per-tensor or int8 per-channel quantized) ->
IR `Graph`.

TFLite is NHWC already, so activations keep their layout; convolution weights are OHWI as in the
IR; depthwise weights (1, KH, KW, C*m) become (C*m, KH, KW, 1) with groups = C. SAME padding is
turned into explicit pads exactly as TFLite computes them (total = max((out-1)*stride +
(k-1)*dilation + 1 - in, 0), the smaller half before). Quantization parameters are carried over
unchanged; quantized nodes run with TFLite's integer semantics in `hostside.neon_quant`.

Fused activations NONE/RELU/RELU6 become the IR's `activation` attribute where the op has one;
RELU_N1_TO_1, and any fused activation on ops without the attribute (pools, concatenation),
become a separate relu/relu6/clip node whose output has the same quantization (clamping there is
the same clamp TFLite applies). DEQUANTIZE of a constant (float16 or int8 weights) is folded into
a float32 constant; quantized weights read by a float op (dynamic-range models) are dequantized at
import, so such layers run in float32.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Union

import numpy as np

from vc4infer.errors import GraphError, ModelFormatError, UnsupportedModelError
from vc4infer.graph.ir import Graph, QuantParams
from vc4infer.graph.tflite_schema import ACTIVATIONS, PADDINGS, TflModel, TflOperator, read_model


def import_tflite(path: Union[str, os.PathLike], name: Optional[str] = None) -> Graph:
    """Read a .tflite file into a Graph (first subgraph). `name`: display name, default the file
    stem. Raises ModelFormatError for malformed files and UnsupportedModelError for operators or
    types vc4infer does not implement."""
    with open(path, "rb") as f:
        data = f.read()
    name = name or os.path.splitext(os.path.basename(str(path)))[0]
    return import_tflite_bytes(data, name=name, source=str(path))


def import_tflite_bytes(data: bytes, name: str = "model", source: str = "<bytes>") -> Graph:
    """Like `import_tflite`, from the file's bytes."""
    model = read_model(data, source)
    return _Importer(model, name, source).run()


def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple:
    """(before, after) padding of TFLite's SAME scheme along one axis."""
    out = (size + stride - 1) // stride
    eff = (k - 1) * dilation + 1
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


class _Importer:
    def __init__(self, model: TflModel, name: str, source: str):
        self.m = model
        self.source = source
        self.g = Graph(meta={"source_format": "tflite", "name": name, "preprocess": None,
                             "labels": None, "tflite_version": model.version,
                             "description": model.description})
        self.names: dict[int, str] = {}       # tflite tensor index -> IR tensor name
        self.derived: dict[tuple, str] = {}   # (index, transform) -> IR constant name
        self.op: Optional[TflOperator] = None

    # -- helpers ------------------------------------------------------------------------------
    def where(self) -> str:
        op = self.op
        outs = [self.m.tensors[i].name for i in op.outputs if i >= 0]
        return f"{self.source}: operator {op.index} ({op.opcode}, outputs {outs})"

    def fail(self, msg: str) -> ModelFormatError:
        return ModelFormatError(f"{self.where()}: {msg}")

    def unsupported(self, msg: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.where()}: {msg}")

    def quant(self, idx: int, transpose_axis: Optional[dict] = None) -> Optional[QuantParams]:
        t = self.m.tensors[idx]
        if t.scale is None:
            return None
        axis = None
        if t.scale.size > 1:
            axis = t.quantized_dimension if transpose_axis is None \
                else transpose_axis[t.quantized_dimension]
        return QuantParams(t.scale, t.zero_point, axis)

    def dtype(self, idx: int) -> str:
        t = self.m.tensors[idx]
        if t.dtype not in ("float32", "uint8", "int8", "int16", "int32", "int64"):
            raise self.unsupported(f"tensor {t.name!r} has type {t.dtype}; vc4infer computes in "
                                   f"float32, uint8, int8 (and int32 for biases)")
        return t.dtype

    def const_value(self, idx: int) -> np.ndarray:
        t = self.m.tensors[idx]
        folded = self.names.get(idx)
        if t.data is None and folded is not None and self.g.is_constant(folded):
            return self.g.constants[folded]
        if t.data is None:
            raise self.unsupported(f"input tensor {t.name!r} must be a constant in the file "
                                   f"(vc4infer needs static shapes and parameters)")
        return t.data

    def tensor(self, idx: int) -> str:
        """IR name of tensor `idx` as an op input: activations must be produced already,
        constants are added on first use."""
        if idx in self.names:
            return self.names[idx]
        t = self.m.tensors[idx]
        if t.data is None:
            raise self.fail(f"reads tensor {idx} ({t.name!r}) before any operator produces it "
                            f"(operators are not in execution order, or the graph has a cycle)")
        if t.dtype == "float16":
            raise self.unsupported(f"float16 constant {t.name!r} used without DEQUANTIZE")
        name = self.g.unique_name(t.name)
        self.g.add_constant(name, t.data, self.quant(idx))
        self.names[idx] = name
        return name

    def derived_const(self, idx: int, key: str, make: Callable[[], tuple]) -> str:
        """A constant derived from tensor `idx` (transposed, dequantized); `make` returns
        (array, quant)."""
        if (idx, key) not in self.derived:
            value, q = make()
            name = self.g.unique_name(f"{self.m.tensors[idx].name}/{key}")
            self.g.add_constant(name, value, q)
            self.derived[(idx, key)] = name
        return self.derived[(idx, key)]

    def dequantized(self, idx: int, transpose=None) -> np.ndarray:
        t = self.m.tensors[idx]
        v = self.const_value(idx)
        if t.scale is not None:
            shape = [1] * v.ndim
            if t.scale.size > 1:
                shape[t.quantized_dimension] = -1
            v = ((v.astype(np.float64) - t.zero_point.reshape(shape))
                 * t.scale.astype(np.float64).reshape(shape))
        v = v.astype(np.float32)
        return v if transpose is None else np.ascontiguousarray(v.transpose(transpose))

    def declare_output(self, idx: int, suffix: str = "") -> str:
        """Declare the IR tensor for output `idx` (shape, dtype, quantization from the file)."""
        t = self.m.tensors[idx]
        if idx in self.names:
            raise self.fail(f"tensor {idx} ({t.name!r}) is written twice")
        name = self.g.unique_name(t.name + suffix)
        self.g.add_tensor(name, t.shape, self.dtype(idx), self.quant(idx))
        if not suffix:
            self.names[idx] = name
        return name

    def finish_activation(self, act: Optional[str], out_idx: int, has_attr: bool) -> tuple:
        """(attribute value, IR name the op itself writes) for a fused activation; when the
        activation needs its own node, the op writes a temporary tensor with the same quant."""
        if act not in ACTIVATIONS.values() or act in ("tanh", "sign_bit", "sigmoid"):
            raise self.unsupported(f"fused activation {act!r} is not supported (NONE, RELU, "
                                   f"RELU6, RELU_N1_TO_1 are)")
        if act is None or (has_attr and act in ("relu", "relu6")):
            return act, self.declare_output(out_idx)
        return None, self.declare_output(out_idx, suffix="/pre_act")

    def emit_activation(self, act: Optional[str], tmp: str, out_idx: int) -> None:
        if out_idx in self.names:
            return
        out = self.declare_output(out_idx)
        if act == "relu_n1_to_1":
            self.node("clip", [tmp], [out], min=-1.0, max=1.0)
        else:
            self.node(act, [tmp], [out])

    def activation(self, opts: dict) -> Optional[str]:
        code = int(opts.get("activation", 0))
        if code not in ACTIVATIONS:
            raise self.fail(f"fused activation code {code} is not in the schema")
        return ACTIVATIONS[code]

    def padding(self, opts: dict) -> str:
        code = int(opts.get("padding", 0))
        if code not in PADDINGS:
            raise self.fail(f"padding code {code} is not in the schema (0 SAME, 1 VALID)")
        return PADDINGS[code]

    def spatial_pads(self, x_shape: tuple, kh: int, kw: int, opts: dict, dil=(1, 1)) -> tuple:
        sh, sw = int(opts.get("stride_h", 1)), int(opts.get("stride_w", 1))
        if sh < 1 or sw < 1:
            raise self.fail(f"strides ({sh}, {sw}) must be >= 1")
        if self.padding(opts) == "VALID":
            return (0, 0, 0, 0), (sh, sw)
        pt, pb = _same_pads(x_shape[1], kh, sh, dil[0])
        pl, pr = _same_pads(x_shape[2], kw, sw, dil[1])
        return (pt, pl, pb, pr), (sh, sw)

    def io(self, n_in: tuple, n_out: int = 1) -> tuple:
        op = self.op
        lo, hi = n_in
        ins = list(op.inputs)
        while ins and ins[-1] == -1 and len(ins) > lo:
            ins.pop()
        if not lo <= len(ins) <= hi or any(i < 0 for i in ins[:lo]):
            raise self.fail(f"has {len(op.inputs)} inputs {list(op.inputs)}; {op.opcode} takes "
                            f"{lo}..{hi}")
        if len(op.outputs) != n_out or any(i < 0 for i in op.outputs):
            raise self.fail(f"has outputs {list(op.outputs)}; {op.opcode} has {n_out}")
        return ins, list(op.outputs)

    def node(self, op: str, inputs: list, outputs: list, **attrs) -> list:
        """Add an IR node named after the tensor it writes (names as in the file)."""
        return self.g.add_node(op, inputs, outputs, name=outputs[0], **attrs)

    def shape(self, idx: int) -> tuple:
        return self.m.tensors[idx].shape

    # -- ops ----------------------------------------------------------------------------------
    def conv(self, depthwise: bool) -> None:
        ins, (out,) = self.io((2, 3))
        x_idx, w_idx = ins[0], ins[1]
        o = self.op.options
        xs, ws = self.shape(x_idx), self.shape(w_idx)
        if len(xs) != 4 or len(ws) != 4:
            raise self.fail(f"input shape {list(xs)} and filter shape {list(ws)} must be rank 4")
        dil = (int(o.get("dilation_h", 1)), int(o.get("dilation_w", 1)))
        float_x = self.m.tensors[x_idx].scale is None
        if depthwise:
            c_in, c_out = xs[3], ws[3]
            if ws[0] != 1 or c_out % c_in:
                raise self.fail(f"depthwise filter shape {list(ws)} does not fit input channels "
                                f"{c_in} (expected (1, KH, KW, {c_in}*multiplier))")
            mult = int(o.get("depth_multiplier", c_out // c_in) or c_out // c_in)
            if mult * c_in != c_out:
                raise self.fail(f"depth_multiplier {mult} x {c_in} input channels != filter "
                                f"channels {c_out}")
            perm, axis_map, groups = (3, 1, 2, 0), {3: 0, 0: 3, 1: 1, 2: 2}, c_in
            kh, kw = ws[1], ws[2]
        else:
            perm, axis_map, groups = None, None, 1
            kh, kw = ws[1], ws[2]
            if ws[3] != xs[3]:
                raise self.fail(f"filter shape {list(ws)} needs {ws[3]} input channels, the "
                                f"input {list(xs)} has {xs[3]}")
        w = self.weights(w_idx, float_x, perm, axis_map)
        b = self.bias(ins[2], float_x) if len(ins) > 2 else None
        pads, strides = self.spatial_pads(xs, kh, kw, o, dil)
        act = self.activation(o)
        attr, y = self.finish_activation(act, out, True)
        self.node("conv2d", [self.tensor(x_idx), w] + ([b] if b else []), [y],
                  strides=strides, dilations=dil, pads=pads, groups=groups,
                  activation=attr)
        self.emit_activation(act, y, out)

    def weights(self, idx: int, float_x: bool, perm=None, axis_map=None) -> str:
        t = self.m.tensors[idx]
        folded = self.names.get(idx)
        if t.data is None and folded is not None and self.g.is_constant(folded):
            # weights produced by a folded DEQUANTIZE (float16 or int8 storage): float32 now
            if perm is None:
                return folded
            return self.derived_const(idx, "ohwi", lambda: (
                np.ascontiguousarray(self.g.constants[folded].transpose(perm)), None))
        if t.data is None:
            raise self.unsupported(f"weights {t.name!r} are not a constant")
        if float_x and t.scale is not None:
            return self.derived_const(idx, "dequantized",
                                      lambda: (self.dequantized(idx, perm), None))
        if perm is None:
            return self.tensor(idx)
        return self.derived_const(idx, "ohwi", lambda: (
            np.ascontiguousarray(t.data.transpose(perm)), self.quant(idx, axis_map)))

    def bias(self, idx: int, float_x: bool) -> str:
        t = self.m.tensors[idx]
        if float_x and t.scale is not None and t.data is not None:
            return self.derived_const(idx, "dequantized", lambda: (self.dequantized(idx), None))
        return self.tensor(idx)

    def fully_connected(self) -> None:
        ins, (out,) = self.io((2, 3))
        x_idx, w_idx = ins[0], ins[1]
        o = self.op.options
        if int(o.get("weights_format", 0)) != 0:
            raise self.unsupported("shuffled FULLY_CONNECTED weights are not supported")
        ws = self.shape(w_idx)
        if len(ws) != 2:
            raise self.fail(f"weights shape {list(ws)} must be (outputs, inputs)")
        xs = self.shape(x_idx)
        size = int(np.prod(xs))
        if size % ws[1]:
            raise self.fail(f"input shape {list(xs)} cannot be flattened into rows of {ws[1]}")
        float_x = self.m.tensors[x_idx].scale is None
        x = self.tensor(x_idx)
        if xs != (size // ws[1], ws[1]):
            (x,) = self.node("reshape", [x], [self.flat_tensor(x_idx, (size // ws[1], ws[1]))],
                             shape=(size // ws[1], ws[1]))
        w = self.weights(w_idx, float_x)
        b = self.bias(ins[2], float_x) if len(ins) > 2 else None
        act = self.activation(o)
        out_shape = self.shape(out)
        rows = (size // ws[1], ws[0])
        if out_shape != rows:
            if int(np.prod(out_shape)) != rows[0] * rows[1]:
                raise self.fail(f"output shape {list(out_shape)} does not hold {rows} values")
            if act not in (None, "relu", "relu6"):
                raise self.unsupported(f"fused activation {act!r} on a FULLY_CONNECTED whose "
                                       f"output is not 2-D")
            y = self.g.unique_name(self.m.tensors[out].name + "/rows")
            self.g.add_tensor(y, rows, self.dtype(out), self.quant(out))
            self.node("fully_connected", [x, w] + ([b] if b else []), [y], activation=act)
            self.node("reshape", [y], [self.declare_output(out)], shape=out_shape)
            return
        attr, y = self.finish_activation(act, out, True)
        self.node("fully_connected", [x, w] + ([b] if b else []), [y], activation=attr)
        self.emit_activation(act, y, out)

    def flat_tensor(self, idx: int, shape: tuple) -> str:
        name = self.g.unique_name(self.m.tensors[idx].name + "/flat")
        self.g.add_tensor(name, shape, self.dtype(idx), self.quant(idx))
        return name

    def binary(self, ir_op: str) -> None:
        ins, (out,) = self.io((2, 2))
        act = self.activation(self.op.options)
        attr, y = self.finish_activation(act, out, True)
        self.node(ir_op, [self.tensor(ins[0]), self.tensor(ins[1])], [y], activation=attr)
        self.emit_activation(act, y, out)

    def pool(self, ir_op: str) -> None:
        ins, (out,) = self.io((1, 1))
        o = self.op.options
        kh, kw = int(o.get("filter_h", 0)), int(o.get("filter_w", 0))
        if kh < 1 or kw < 1:
            raise self.fail(f"filter size ({kh}, {kw}) must be >= 1")
        xs = self.shape(ins[0])
        if len(xs) != 4:
            raise self.fail(f"input shape {list(xs)} must be rank 4 (NHWC)")
        pads, strides = self.spatial_pads(xs, kh, kw, o)
        act = self.activation(o)
        _, y = self.finish_activation(act, out, False)
        attrs = dict(kernel=(kh, kw), strides=strides, pads=pads)
        if ir_op == "avg_pool2d":
            attrs["count_include_pad"] = False
        self.node(ir_op, [self.tensor(ins[0])], [y], **attrs)
        self.emit_activation(act, y, out)

    def mean(self) -> None:
        ins, (out,) = self.io((2, 2))
        rank = len(self.shape(ins[0]))
        raw = [int(a) for a in np.ravel(self.const_value(ins[1]))]
        if any(not -rank <= a < rank for a in raw):
            raise self.fail(f"axes {raw} out of range for rank {rank}")
        axes = tuple(sorted({a % rank for a in raw}))
        keep = bool(self.op.options.get("keep_dims", False))
        self.node("mean", [self.tensor(ins[0])], [self.declare_output(out)], axes=axes,
                  keepdims=keep)

    def reshape(self) -> None:
        ins, (out,) = self.io((1, 2))
        shape = self.shape(out)
        src = self.shape(ins[0])
        if int(np.prod(shape)) != int(np.prod(src)):
            raise self.fail(f"reshape from {list(src)} to {list(shape)} changes the element count")
        self.node("reshape", [self.tensor(ins[0])], [self.declare_output(out)], shape=shape)

    def squeeze(self) -> None:
        ins, (out,) = self.io((1, 1))
        src = self.shape(ins[0])
        dims = self.op.options.get("squeeze_dims") or ()
        axes = tuple(sorted(int(d) % len(src) for d in dims)) if dims else \
            tuple(i for i, d in enumerate(src) if d == 1)
        self.node("squeeze", [self.tensor(ins[0])], [self.declare_output(out)], axes=axes)

    def softmax(self) -> None:
        ins, (out,) = self.io((1, 1))
        beta = float(self.op.options.get("beta", 1.0))
        x = self.tensor(ins[0])
        if beta != 1.0:
            if self.m.tensors[ins[0]].scale is not None:
                raise self.unsupported(f"quantized SOFTMAX with beta {beta} (only beta 1 is "
                                       f"supported for quantized softmax)")
            c = self.g.add_constant(self.g.unique_name("softmax_beta"), np.float32(beta))
            (x,) = self.g.add_node("mul", [x, c])
        self.node("softmax", [x], [self.declare_output(out)], axis=-1)

    def concat(self) -> None:
        op = self.op
        if not op.inputs or any(i < 0 for i in op.inputs) or len(op.outputs) != 1:
            raise self.fail("CONCATENATION needs at least one input and one output")
        out = op.outputs[0]
        act = self.activation(op.options)
        _, y = self.finish_activation(act, out, False)
        rank = len(self.shape(op.inputs[0]))
        axis = int(op.options.get("axis", 0))
        if not -rank <= axis < rank:
            raise self.fail(f"axis {axis} out of range for rank {rank}")
        self.node("concat", [self.tensor(i) for i in op.inputs], [y], axis=axis % rank)
        self.emit_activation(act, y, out)

    def pad(self) -> None:
        ins, (out,) = self.io((2, 2))
        rank = len(self.shape(ins[0]))
        p = np.asarray(self.const_value(ins[1])).astype(np.int64)
        if p.shape != (rank, 2):
            raise self.fail(f"paddings shape {list(p.shape)} must be ({rank}, 2)")
        self.node("pad", [self.tensor(ins[0])], [self.declare_output(out)],
                  pads=tuple((int(a), int(b)) for a, b in p))

    def unary(self, ir_op: str, **attrs) -> None:
        ins, (out,) = self.io((1, 1))
        self.node(ir_op, [self.tensor(ins[0])], [self.declare_output(out)], **attrs)

    def quantize(self) -> None:
        ins, (out,) = self.io((1, 1))
        if self.m.tensors[out].scale is None:
            raise self.fail("QUANTIZE output has no quantization parameters")
        self.node("quantize", [self.tensor(ins[0])], [self.declare_output(out)],
                  dtype=self.dtype(out))

    def dequantize(self) -> None:
        ins, (out,) = self.io((1, 1))
        t = self.m.tensors[ins[0]]
        if t.data is not None:  # fold: float16 or quantized weights -> float32 constant
            name = self.g.unique_name(self.m.tensors[out].name)
            self.g.add_constant(name, self.dequantized(ins[0]))
            self.names[out] = name
            return
        self.node("dequantize", [self.tensor(ins[0])], [self.declare_output(out)])

    HANDLERS: dict = {
        "CONV_2D": lambda s: s.conv(False),
        "DEPTHWISE_CONV_2D": lambda s: s.conv(True),
        "FULLY_CONNECTED": lambda s: s.fully_connected(),
        "ADD": lambda s: s.binary("add"),
        "MUL": lambda s: s.binary("mul"),
        "AVERAGE_POOL_2D": lambda s: s.pool("avg_pool2d"),
        "MAX_POOL_2D": lambda s: s.pool("max_pool2d"),
        "MEAN": lambda s: s.mean(),
        "RESHAPE": lambda s: s.reshape(),
        "SQUEEZE": lambda s: s.squeeze(),
        "SOFTMAX": lambda s: s.softmax(),
        "CONCATENATION": lambda s: s.concat(),
        "PAD": lambda s: s.pad(),
        "RELU": lambda s: s.unary("relu"),
        "RELU6": lambda s: s.unary("relu6"),
        "RELU_N1_TO_1": lambda s: s.unary("clip", min=-1.0, max=1.0),
        "LOGISTIC": lambda s: s.unary("sigmoid"),
        "QUANTIZE": lambda s: s.quantize(),
        "DEQUANTIZE": lambda s: s.dequantize(),
    }

    # -- driver -------------------------------------------------------------------------------
    def run(self) -> Graph:
        m, g = self.m, self.g
        if not m.inputs:
            raise ModelFormatError(f"{self.source}: the subgraph declares no inputs")
        for idx in m.inputs:
            if idx < 0:
                raise ModelFormatError(f"{self.source}: subgraph input index {idx} is invalid")
            t = m.tensors[idx]
            name = g.unique_name(t.name)
            dtype = t.dtype
            if dtype not in ("float32", "uint8", "int8"):
                raise UnsupportedModelError(f"{self.source}: input {t.name!r} has type {dtype}; "
                                            f"supported input types: float32, uint8, int8")
            g.add_input(name, t.shape, dtype, layout="NHWC" if len(t.shape) == 4 else None,
                        name=t.name, quant=self.quant(idx))
            self.names[idx] = name
        for op in m.operators:
            self.op = op
            handler = self.HANDLERS.get(op.opcode)
            if handler is None:
                raise UnsupportedModelError(
                    f"{self.where()}: operator {op.opcode} is not supported; vc4infer's TFLite "
                    f"importer supports {', '.join(sorted(self.HANDLERS))}")
            try:
                handler(self)
            except GraphError as exc:
                raise self.fail(f"inconsistent with its tensors: {exc}") from exc
        for idx in m.outputs:
            if idx < 0 or idx not in self.names:
                raise ModelFormatError(f"{self.source}: subgraph output {idx} "
                                       f"({m.tensors[idx].name!r}) is never produced")
            g.add_output(self.names[idx], name=m.tensors[idx].name)
        try:
            g.validate()
        except GraphError as exc:
            raise ModelFormatError(f"{self.source}: {exc}") from exc
        self.set_meta()
        return g

    def set_meta(self) -> None:
        g = self.g
        spec = g.inputs[0]
        if len(g.inputs) == 1 and len(spec.shape) == 4 and spec.shape[3] == 3:
            g.meta["preprocess"] = "tf_slim" if spec.dtype == "float32" else "tflite_uint8"
        if len(g.outputs) == 1:
            classes = g.outputs[0].shape[-1] if g.outputs[0].shape else 0
            g.meta["labels"] = {1001: "imagenet1001", 1000: "imagenet1000"}.get(classes)
