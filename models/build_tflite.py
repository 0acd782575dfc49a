"""Build TFLite test models: MobileNet v1 and v2 (float32, uint8 per-tensor quantized, int8
per-channel quantized) at any width multiplier and resolution, with deterministic random
weights, written with the flatbuffers builder and the `tflite` schema bindings.

Quantized models get realistic scales: the float model with the same weights is run in the TFLite
interpreter (ai_edge_litert) over a few deterministic inputs and every tensor's observed range
sets its scale and zero point, as post-training quantization does. Building therefore needs
`flatbuffers`, `tflite` and `ai_edge_litert` (the [dev] extra); reading the files does not.

Usage:
    python models/build_tflite.py --arch v2 --alpha 0.35 --size 96 --dtype int8 -o m.tflite

As a library: `build_mobilenet(arch, alpha, size, dtype) -> bytes`, and `TfliteWriter` for
single-op models.
"""
from __future__ import annotations

import argparse
import importlib
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

_TYPES = {"float32": 0, "float16": 1, "int32": 2, "uint8": 3, "int64": 4, "int16": 7, "int8": 9}
PADDING = {"SAME": 0, "VALID": 1}
ACT = {None: 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3, "tanh": 4}

# builtin op -> its options table (None: the op takes no options)
OPTIONS = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "ADD": "AddOptions", "MUL": "MulOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "MEAN": "ReducerOptions",
    "RESHAPE": "ReshapeOptions", "SQUEEZE": "SqueezeOptions", "SOFTMAX": "SoftmaxOptions",
    "CONCATENATION": "ConcatenationOptions", "PAD": "PadOptions", "QUANTIZE": "QuantizeOptions",
    "DEQUANTIZE": "DequantizeOptions",
}


@dataclass
class _Tensor:
    name: str
    shape: tuple
    dtype: str
    buffer: int
    scale: Optional[np.ndarray] = None
    zero_point: Optional[np.ndarray] = None
    qdim: int = 0


@dataclass
class _Op:
    opcode: str
    inputs: list
    outputs: list
    fields: dict = field(default_factory=dict)


class TfliteWriter:
    """Collects tensors, buffers and operators of one subgraph and serialises them."""

    def __init__(self, description: str = "vc4infer test model"):
        self.description = description
        self.tensors: list[_Tensor] = []
        self.buffers: list[bytes] = [b""]  # buffer 0 is the empty buffer by convention
        self.ops: list[_Op] = []

    def add_tensor(self, name: str, shape, dtype: str = "float32", data=None, scale=None,
                   zero_point=None, qdim: int = 0) -> int:
        """Add a tensor (constant when `data` is given); returns its index."""
        buf = 0
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype).reshape(shape))
            self.buffers.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
            buf = len(self.buffers) - 1
        if scale is not None:
            scale = np.atleast_1d(np.asarray(scale, np.float32))
            zero_point = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point,
                                                  np.int64))
            if zero_point.size == 1 and scale.size > 1:
                zero_point = np.full(scale.size, zero_point[0], np.int64)
        self.tensors.append(_Tensor(name, tuple(int(d) for d in shape), dtype, buf, scale,
                                    zero_point, qdim))
        return len(self.tensors) - 1

    def add_op(self, opcode: str, inputs, outputs, **fields) -> None:
        """Add an operator; `fields` are the option table's fields in the schema's own names
        (Padding, StrideW, FusedActivationFunction, NewShape, ...)."""
        self.ops.append(_Op(opcode, list(inputs), list(outputs), fields))

    def to_bytes(self, inputs, outputs, external_buffers: bool = False) -> bytes:
        """Serialise. With `external_buffers` the constant data is stored after the flatbuffer
        and referenced by Buffer.offset/size, as converters do for large models."""
        if not external_buffers:
            return self._serialise(inputs, outputs, None)
        placeholder = [1 << 40] * len(self.buffers)
        head = self._serialise(inputs, outputs, placeholder)
        offsets, pos = [], (len(head) + 15) // 16 * 16
        for data in self.buffers:
            offsets.append(pos if data else 0)
            pos = (pos + len(data) + 15) // 16 * 16 if data else pos
        head = self._serialise(inputs, outputs, offsets)
        out = bytearray(head)
        for off, data in zip(offsets, self.buffers):
            if data:
                out.extend(b"\0" * (off - len(out)))
                out.extend(data)
        return bytes(out)

    # -- serialisation ------------------------------------------------------------------------
    def _serialise(self, inputs, outputs, offsets) -> bytes:
        import flatbuffers
        import tflite
        b = flatbuffers.Builder(1024 + sum(len(d) for d in self.buffers))

        def int_vector(start_fn, values, kind="Int32"):
            start_fn(b, len(values))
            for v in reversed(list(values)):
                getattr(b, f"Prepend{kind}")(int(v))
            return b.EndVector()

        def float_vector(start_fn, values):
            start_fn(b, len(values))
            for v in reversed(list(values)):
                b.PrependFloat32(float(v))
            return b.EndVector()

        buffer_offsets = []
        for i, data in enumerate(self.buffers):
            vec = None
            if data and offsets is None:
                b.StartVector(1, len(data), 16)
                b.head -= len(data)
                b.Bytes[b.head:b.head + len(data)] = data
                vec = b.EndVector()
            tflite.BufferStart(b)
            if vec is not None:
                tflite.BufferAddData(b, vec)
            if offsets is not None and data:
                tflite.BufferAddOffset(b, offsets[i])
                tflite.BufferAddSize(b, len(data))
            buffer_offsets.append(tflite.BufferEnd(b))

        tensor_offsets = []
        for t in self.tensors:
            name = b.CreateString(t.name)
            shape = int_vector(tflite.TensorStartShapeVector, t.shape)
            quant = None
            if t.scale is not None:
                sc = float_vector(tflite.QuantizationParametersStartScaleVector, t.scale)
                zp = int_vector(tflite.QuantizationParametersStartZeroPointVector, t.zero_point,
                                "Int64")
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, sc)
                tflite.QuantizationParametersAddZeroPoint(b, zp)
                tflite.QuantizationParametersAddQuantizedDimension(b, t.qdim)
                quant = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, _TYPES[t.dtype])
            tflite.TensorAddBuffer(b, t.buffer)
            tflite.TensorAddName(b, name)
            if quant is not None:
                tflite.TensorAddQuantization(b, quant)
            tensor_offsets.append(tflite.TensorEnd(b))

        codes = sorted({op.opcode for op in self.ops}, key=lambda c: getattr(tflite.BuiltinOperator, c))
        code_index = {c: i for i, c in enumerate(codes)}
        op_offsets = []
        for op in self.ops:
            opts, opts_type = self._options(b, op, int_vector)
            ins = int_vector(tflite.OperatorStartInputsVector, op.inputs)
            outs = int_vector(tflite.OperatorStartOutputsVector, op.outputs)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, code_index[op.opcode])
            tflite.OperatorAddInputs(b, ins)
            tflite.OperatorAddOutputs(b, outs)
            if opts is not None:
                tflite.OperatorAddBuiltinOptionsType(b, opts_type)
                tflite.OperatorAddBuiltinOptions(b, opts)
            op_offsets.append(tflite.OperatorEnd(b))

        def table_vector(start_fn, offs):
            start_fn(b, len(offs))
            for o in reversed(offs):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        tensors_vec = table_vector(tflite.SubGraphStartTensorsVector, tensor_offsets)
        ops_vec = table_vector(tflite.SubGraphStartOperatorsVector, op_offsets)
        in_vec = int_vector(tflite.SubGraphStartInputsVector, inputs)
        out_vec = int_vector(tflite.SubGraphStartOutputsVector, outputs)
        sg_name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddInputs(b, in_vec)
        tflite.SubGraphAddOutputs(b, out_vec)
        tflite.SubGraphAddOperators(b, ops_vec)
        tflite.SubGraphAddName(b, sg_name)
        subgraph = tflite.SubGraphEnd(b)

        code_offsets = []
        for c in codes:
            value = getattr(tflite.BuiltinOperator, c)
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(value, 127))
            tflite.OperatorCodeAddBuiltinCode(b, value)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offsets.append(tflite.OperatorCodeEnd(b))
        codes_vec = table_vector(tflite.ModelStartOperatorCodesVector, code_offsets)
        subgraphs_vec = table_vector(tflite.ModelStartSubgraphsVector, [subgraph])
        buffers_vec = table_vector(tflite.ModelStartBuffersVector, buffer_offsets)
        desc = b.CreateString(self.description)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs_vec)
        tflite.ModelAddDescription(b, desc)
        tflite.ModelAddBuffers(b, buffers_vec)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    @staticmethod
    def _options(b, op: _Op, int_vector):
        import tflite
        cls = OPTIONS.get(op.opcode)
        if cls is None:
            return None, 0
        mod = importlib.import_module(f"tflite.{cls}")
        vectors = {}
        for key, value in op.fields.items():
            if isinstance(value, (list, tuple)):
                vectors[key] = int_vector(getattr(mod, f"{cls}Start{key}Vector"), value)
        getattr(mod, f"{cls}Start")(b)
        for key, value in op.fields.items():
            getattr(mod, f"{cls}Add{key}")(b, vectors.get(key, value))
        return getattr(mod, f"{cls}End")(b), getattr(tflite.BuiltinOptions, cls)


# -- MobileNet description ----------------------------------------------------------------------

@dataclass
class Layer:
    """One layer of the float network: kind in conv, dw, add, avgpool, mean, fc, reshape, pad,
    softmax; `x`/`y` are tensor names."""
    kind: str
    x: list
    y: str
    w: Optional[np.ndarray] = None
    b: Optional[np.ndarray] = None
    stride: int = 1
    act: Optional[str] = None
    padding: str = "SAME"
    extra: dict = field(default_factory=dict)


# Weight scale relative to He initialisation. Below 1 the random network damps perturbations
# instead of amplifying them layer after layer, as trained networks do; then TFLite's own kernels
# (reference and optimized rounding) agree on the output within a unit or two.
GAIN = 0.7
# The classifier head is scaled up so that the softmax is not flat.
HEAD_GAIN = 4.0


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class _Net:
    def __init__(self, seed: int, gain: float):
        self.rng = np.random.default_rng(seed)
        self.gain = gain
        self.layers: list[Layer] = []
        self.shapes: dict[str, tuple] = {}
        self.count = 0

    def _name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}_{self.count}"

    def conv(self, x: str, cout: int, k: int, stride: int, act, padding="SAME") -> str:
        n, h, w, cin = self.shapes[x]
        wt = self.rng.normal(0, self.gain * np.sqrt(2.0 / (k * k * cin)),
                             (cout, k, k, cin)).astype(np.float32)
        bias = self.rng.normal(0.05, 0.1, cout).astype(np.float32)
        return self._add(Layer("conv", [x], self._name("conv"), wt, bias, stride, act, padding),
                         _spatial(h, w, k, stride, padding), cout)

    def dw(self, x: str, k: int, stride: int, act, padding="SAME") -> str:
        n, h, w, c = self.shapes[x]
        wt = self.rng.normal(0, self.gain * np.sqrt(2.0 / (k * k)), (1, k, k, c)).astype(np.float32)
        bias = self.rng.normal(0.05, 0.1, c).astype(np.float32)
        return self._add(Layer("dw", [x], self._name("dw"), wt, bias, stride, act, padding),
                         _spatial(h, w, k, stride, padding), c)

    def pad(self, x: str, pads) -> str:
        n, h, w, c = self.shapes[x]
        y = self._name("pad")
        self.layers.append(Layer("pad", [x], y, extra={"pads": pads}))
        self.shapes[y] = (n, h + pads[1][0] + pads[1][1], w + pads[2][0] + pads[2][1], c)
        return y

    def add(self, a: str, b: str) -> str:
        y = self._name("add")
        self.layers.append(Layer("add", [a, b], y))
        self.shapes[y] = self.shapes[a]
        return y

    def _add(self, layer: Layer, hw: tuple, c: int) -> str:
        n = self.shapes[layer.x[0]][0]
        self.layers.append(layer)
        self.shapes[layer.y] = (n, hw[0], hw[1], c)
        return layer.y

    def simple(self, kind: str, x: str, shape: tuple, **extra) -> str:
        y = self._name(kind)
        self.layers.append(Layer(kind, [x], y, extra=extra))
        self.shapes[y] = shape
        return y


def _spatial(h: int, w: int, k: int, stride: int, padding: str) -> tuple:
    if padding == "SAME":
        return (h + stride - 1) // stride, (w + stride - 1) // stride
    return (h - k) // stride + 1, (w - k) // stride + 1


def mobilenet_v1(alpha: float, size: int, classes: int = 1001, seed: int = 0,
                 gain: float = GAIN, softmax: bool = True, head_gain: float = HEAD_GAIN) -> _Net:
    """TF-slim MobileNet v1 (SAME padding, ReLU6, average pool, 1x1 conv logits)."""
    net = _Net(seed, gain)
    net.shapes["input"] = (1, size, size, 3)
    x = net.conv("input", max(8, int(32 * alpha)), 3, 2, "relu6")
    for c, s in [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
            [(1024, 2), (1024, 1)]:
        x = net.dw(x, 3, s, "relu6")
        x = net.conv(x, max(8, int(c * alpha)), 1, 1, "relu6")
    n, h, w, c = net.shapes[x]
    x = net.simple("avgpool", x, (n, 1, 1, c), kernel=(h, w))
    net.gain = head_gain
    x = net.conv(x, classes, 1, 1, None)
    x = net.simple("reshape", x, (n, classes))
    if softmax:
        net.simple("softmax", x, (n, classes))
    return net


def mobilenet_v2(alpha: float, size: int, classes: int = 1001, seed: int = 0,
                 gain: float = GAIN, softmax: bool = True, head_gain: float = HEAD_GAIN) -> _Net:
    """Keras MobileNet v2 (explicit PAD + VALID before stride-2 depthwise, ReLU6, residual ADD,
    MEAN over H and W, FULLY_CONNECTED logits)."""
    net = _Net(seed, gain)
    net.shapes["input"] = (1, size, size, 3)
    x = net.conv("input", _make_divisible(32 * alpha), 3, 2, "relu6")
    cin = net.shapes[x][3]
    for t, c, n_rep, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        cout = _make_divisible(c * alpha)
        for i in range(n_rep):
            stride = s if i == 0 else 1
            inp = x
            if t != 1:
                x = net.conv(x, cin * t, 1, 1, "relu6")
            if stride == 2:
                h = net.shapes[x][1]
                pt = 0 if h % 2 == 0 else 1
                x = net.pad(x, ((0, 0), (pt, 1), (pt, 1), (0, 0)))
                x = net.dw(x, 3, 2, "relu6", padding="VALID")
            else:
                x = net.dw(x, 3, 1, "relu6")
            x = net.conv(x, cout, 1, 1, None)
            if stride == 1 and cin == cout:
                x = net.add(x, inp)
            cin = cout
    last = _make_divisible(1280 * alpha) if alpha > 1.0 else 1280
    x = net.conv(x, last, 1, 1, "relu6")
    n = net.shapes[x][0]
    x = net.simple("mean", x, (n, last))
    fc_w = net.rng.normal(0, head_gain * np.sqrt(2.0 / last), (classes, last)).astype(np.float32)
    y = net._name("fc")
    net.layers.append(Layer("fc", [x], y, fc_w, net.rng.normal(0, 0.1, classes).astype(np.float32)))
    net.shapes[y] = (n, classes)
    if softmax:
        net.simple("softmax", y, (n, classes))
    return net


# -- emission -------------------------------------------------------------------------------------

@dataclass
class _QSpec:
    dtype: str           # "float32", "uint8", "int8"
    ranges: dict         # tensor name -> (min, max) observed in the float model


def _act_quant(q: _QSpec, name: str) -> tuple:
    """(scale, zero_point) of an activation tensor from its observed range (range widened to
    include 0, as TFLite's converter does)."""
    lo, hi = q.ranges[name]
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-6:
        hi = lo + 1e-6
    qmin, qmax = (0, 255) if q.dtype == "uint8" else (-128, 127)
    scale = (hi - lo) / (qmax - qmin)
    zp = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return np.float32(scale), zp


def _emit(net: _Net, q: _QSpec, external_buffers: bool = False, io_float: bool = False) -> bytes:
    wr = TfliteWriter(f"vc4infer test MobileNet ({q.dtype})")
    ids: dict[str, int] = {}
    quant = q.dtype != "float32"
    last = net.layers[-1]
    softmax_out = last.y if last.kind == "softmax" else None

    def act_tensor(name: str) -> int:
        shape = net.shapes[name]
        if not quant:
            ids[name] = wr.add_tensor(name, shape, "float32")
        elif name == softmax_out:
            ids[name] = wr.add_tensor(name, shape, q.dtype, scale=1 / 256,
                                      zero_point=0 if q.dtype == "uint8" else -128)
        else:
            scale, zp = _act_quant(q, name)
            ids[name] = wr.add_tensor(name, shape, q.dtype, scale=scale, zero_point=zp)
        return ids[name]

    def scale_of(name: str) -> float:
        return float(wr.tensors[ids[name]].scale[0])

    def weights(layer: Layer, x_name: str, depthwise: bool):
        w = layer.w
        if not quant:
            return (wr.add_tensor(layer.y + "/w", w.shape, "float32", w),
                    wr.add_tensor(layer.y + "/b", layer.b.shape, "float32", layer.b))
        axis = 3 if depthwise else 0
        red = tuple(i for i in range(w.ndim) if i != axis)
        if q.dtype == "uint8":
            lo, hi = min(float(w.min()), 0.0), max(float(w.max()), 0.0)
            ws = np.float32((hi - lo) / 255.0)
            wzp = int(np.clip(round(-lo / ws), 0, 255))
            wq = np.clip(np.round(w / ws) + wzp, 0, 255).astype(np.uint8)
            w_scales, w_id = np.array([ws], np.float32), None
            w_id = wr.add_tensor(layer.y + "/w", w.shape, "uint8", wq, scale=ws, zero_point=wzp)
        else:
            amax = np.maximum(np.abs(w).max(axis=red), 1e-8)
            w_scales = (amax / 127.0).astype(np.float32)
            shape = [1] * w.ndim
            shape[axis] = -1
            wq = np.clip(np.round(w / w_scales.reshape(shape)), -127, 127).astype(np.int8)
            w_id = wr.add_tensor(layer.y + "/w", w.shape, "int8", wq, scale=w_scales,
                                 zero_point=np.zeros(w_scales.size, np.int64), qdim=axis)
        b_scales = (np.float64(scale_of(x_name)) * w_scales.astype(np.float64)).astype(np.float32)
        bq = np.round(layer.b / b_scales.astype(np.float64)).astype(np.int32)
        b_id = wr.add_tensor(layer.y + "/b", layer.b.shape, "int32", bq, scale=b_scales,
                             zero_point=np.zeros(b_scales.size, np.int64))
        return w_id, b_id

    in_dtype = q.dtype if quant else "float32"
    if quant and io_float:
        f_in = wr.add_tensor("input_float", net.shapes["input"], "float32")
        act_tensor("input")
        wr.add_op("QUANTIZE", [f_in], [ids["input"]])
        graph_in = f_in
    elif quant:
        ids["input"] = wr.add_tensor("input", net.shapes["input"], in_dtype, scale=1 / 128.0,
                                     zero_point=128 if q.dtype == "uint8" else 0)
        graph_in = ids["input"]
    else:
        graph_in = act_tensor("input")

    for layer in net.layers:
        x = layer.x[0]
        if layer.kind in ("conv", "dw"):
            act_tensor(layer.y)
            w_id, b_id = weights(layer, x, layer.kind == "dw")
            fields = dict(Padding=PADDING[layer.padding], StrideW=layer.stride,
                          StrideH=layer.stride, FusedActivationFunction=ACT[layer.act])
            if layer.kind == "dw":
                fields["DepthMultiplier"] = 1
            wr.add_op("CONV_2D" if layer.kind == "conv" else "DEPTHWISE_CONV_2D",
                      [ids[x], w_id, b_id], [ids[layer.y]], **fields)
        elif layer.kind == "fc":
            act_tensor(layer.y)
            w_id, b_id = weights(layer, x, False)
            wr.add_op("FULLY_CONNECTED", [ids[x], w_id, b_id], [ids[layer.y]],
                      FusedActivationFunction=0)
        elif layer.kind == "add":
            act_tensor(layer.y)
            wr.add_op("ADD", [ids[x], ids[layer.x[1]]], [ids[layer.y]], FusedActivationFunction=0)
        elif layer.kind == "pad":
            if quant:  # PAD keeps its input's quantization
                t = wr.tensors[ids[x]]
                ids[layer.y] = wr.add_tensor(layer.y, net.shapes[layer.y], q.dtype,
                                             scale=t.scale, zero_point=t.zero_point)
            else:
                act_tensor(layer.y)
            pads = wr.add_tensor(layer.y + "/paddings", (4, 2), "int32",
                                 np.array(layer.extra["pads"], np.int32))
            wr.add_op("PAD", [ids[x], pads], [ids[layer.y]])
        elif layer.kind == "avgpool":
            if quant:  # AVERAGE_POOL_2D keeps its input's quantization
                t = wr.tensors[ids[x]]
                ids[layer.y] = wr.add_tensor(layer.y, net.shapes[layer.y], q.dtype,
                                             scale=t.scale, zero_point=t.zero_point)
            else:
                act_tensor(layer.y)
            kh, kw = layer.extra["kernel"]
            wr.add_op("AVERAGE_POOL_2D", [ids[x]], [ids[layer.y]], Padding=PADDING["VALID"],
                      StrideW=kw, StrideH=kh, FilterWidth=kw, FilterHeight=kh,
                      FusedActivationFunction=0)
        elif layer.kind == "mean":
            act_tensor(layer.y)
            axes = wr.add_tensor(layer.y + "/axes", (2,), "int32", np.array([1, 2], np.int32))
            wr.add_op("MEAN", [ids[x], axes], [ids[layer.y]], KeepDims=False)
        elif layer.kind == "reshape":
            t = wr.tensors[ids[x]]
            ids[layer.y] = wr.add_tensor(layer.y, net.shapes[layer.y], t.dtype, scale=t.scale,
                                         zero_point=t.zero_point)
            shape = wr.add_tensor(layer.y + "/shape", (2,), "int32",
                                  np.array(net.shapes[layer.y], np.int32))
            wr.add_op("RESHAPE", [ids[x], shape], [ids[layer.y]],
                      NewShape=list(net.shapes[layer.y]))
        elif layer.kind == "softmax":
            act_tensor(layer.y)
            wr.add_op("SOFTMAX", [ids[x]], [ids[layer.y]], Beta=1.0)
        else:
            raise ValueError(f"unknown layer kind {layer.kind}")
    graph_out = ids[last.y]
    if quant and io_float:
        graph_out = wr.add_tensor("output_float", net.shapes[last.y], "float32")
        wr.add_op("DEQUANTIZE", [ids[last.y]], [graph_out])
    return wr.to_bytes([graph_in], [graph_out], external_buffers=external_buffers)


def calibration_inputs(size: int, count: int = 3, seed: int = 1) -> list:
    """Deterministic image-like float inputs in [-1, 1] (smooth gradients plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    out = []
    for _ in range(count):
        base = np.stack([np.sin(3 * xx * rng.uniform(0.5, 2) + rng.uniform(0, 6)),
                         np.cos(4 * yy * rng.uniform(0.5, 2) + rng.uniform(0, 6)),
                         (xx - yy) * rng.uniform(-1, 1)], axis=-1)
        x = np.clip(0.7 * base + 0.3 * rng.uniform(-1, 1, base.shape), -1, 1)
        out.append(x[None].astype(np.float32))
    return out


def _observe_ranges(float_model: bytes, net: _Net, inputs: list) -> dict:
    """Every tensor's (min, max) over `inputs`, from the TFLite interpreter running the float
    model (its own numerics, not ours)."""
    from ai_edge_litert.interpreter import Interpreter
    with warnings.catch_warnings():  # the interpreter warns that keeping tensors is for debugging
        warnings.simplefilter("ignore", UserWarning)
        interp = Interpreter(model_content=float_model, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    index = {d["name"]: d["index"] for d in interp.get_tensor_details()}
    ranges: dict[str, list] = {}
    for x in inputs:
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        for name in net.shapes:
            v = interp.get_tensor(index[name])
            lo, hi = float(v.min()), float(v.max())
            old = ranges.get(name, [lo, hi])
            ranges[name] = [min(old[0], lo), max(old[1], hi)]
    return ranges


def build_mobilenet(arch: str = "v1", alpha: float = 0.25, size: int = 96, dtype: str = "float32",
                    classes: int = 1001, seed: int = 0, external_buffers: bool = False,
                    io_float: bool = False, softmax: bool = True, gain: float = GAIN,
                    head_gain: float = HEAD_GAIN) -> bytes:
    """A MobileNet v1 or v2 .tflite file as bytes. dtype "float32", "uint8" (per-tensor,
    asymmetric weights) or "int8" (per-channel symmetric weights, asymmetric activations).
    `io_float` gives a quantized model float input/output through QUANTIZE/DEQUANTIZE;
    `softmax=False` ends the model at the logits; `head_gain` scales the classifier's weights
    (larger: a peakier softmax)."""
    builders = {"v1": mobilenet_v1, "v2": mobilenet_v2}
    if arch not in builders:
        raise ValueError(f"arch must be one of {sorted(builders)}, got {arch!r}")
    if dtype not in ("float32", "uint8", "int8"):
        raise ValueError(f"dtype must be float32, uint8 or int8, got {dtype!r}")
    net = builders[arch](alpha, size, classes, seed, gain, softmax, head_gain)
    float_model = _emit(net, _QSpec("float32", {}), external_buffers)
    if dtype == "float32":
        return float_model
    ranges = _observe_ranges(float_model, net, calibration_inputs(size))
    return _emit(net, _QSpec(dtype, ranges), external_buffers, io_float)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=["v1", "v2"], default="v1")
    p.add_argument("--alpha", type=float, default=0.25, help="width multiplier")
    p.add_argument("--size", type=int, default=96, help="input resolution")
    p.add_argument("--dtype", choices=["float32", "uint8", "int8"], default="float32")
    p.add_argument("--classes", type=int, default=1001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--external-buffers", action="store_true",
                   help="store weights after the flatbuffer (Buffer.offset/size)")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    data = build_mobilenet(a.arch, a.alpha, a.size, a.dtype, a.classes, a.seed,
                           a.external_buffers)
    with open(a.output, "wb") as f:
        f.write(data)
    print(f"wrote {a.output}: MobileNet {a.arch} {a.alpha}/{a.size} {a.dtype}, {len(data):,} bytes")


if __name__ == "__main__":
    main()
