"""Reading a .tflite flatbuffer into plain Python records, with every index and size checked.

The generated schema bindings (`tflite` package, over `flatbuffers`) do no bounds checking; this
module calls them under a guard, checks every count against the file size before looping over it,
checks tensor and buffer indices and buffer sizes, and turns every failure into a
`ModelFormatError` that names what is wrong. `tflite_import` maps the records onto the IR.

Buffers are found either inside the flatbuffer (`Buffer.data`) or, as newer converters write
for large models, at `Buffer.offset`/`Buffer.size` counted from the start of the file.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from vc4infer.errors import ModelFormatError, UnsupportedModelError

FILE_IDENTIFIER = b"TFL3"

# TensorType enum of the TFLite schema -> numpy dtype (the types a CNN file uses).
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool",
                7: "int16", 9: "int8", 10: "float64"}

# ActivationFunctionType enum of the schema.
ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh",
               5: "sign_bit", 6: "sigmoid"}

# Padding enum of the schema.
PADDINGS = {0: "SAME", 1: "VALID"}

_GUARDED = (IndexError, struct.error, ValueError, TypeError, OverflowError, AttributeError,
            UnicodeDecodeError, MemoryError)


@dataclass
class TflTensor:
    """One tensor of the (first) subgraph."""
    index: int
    name: str
    shape: tuple
    dtype: str
    data: Optional[np.ndarray] = None          # constant contents, shaped and typed
    scale: Optional[np.ndarray] = None         # float32 per-tensor (len 1) or per-channel
    zero_point: Optional[np.ndarray] = None    # int64, same length as scale
    quantized_dimension: int = 0


@dataclass
class TflOperator:
    """One operator: its builtin name, tensor indices (-1 = omitted optional) and options."""
    index: int
    opcode: str
    inputs: tuple
    outputs: tuple
    options: dict = field(default_factory=dict)


@dataclass
class TflModel:
    """The first subgraph of a .tflite file, decoded."""
    version: int
    description: str
    tensors: list
    operators: list
    inputs: tuple
    outputs: tuple
    subgraph_count: int = 1


def _builtin_names() -> dict:
    import tflite
    return {v: k for k, v in vars(tflite.BuiltinOperator).items()
            if not k.startswith("_") and isinstance(v, int)}


def _check_count(what: str, count: int, elem_bytes: int, file_bytes: int) -> int:
    """A vector cannot hold more elements than the file has room for: stops garbage lengths from
    turning into endless loops."""
    if count < 0 or count * elem_bytes > file_bytes:
        raise ModelFormatError(f"TFLite file is corrupt: {what} claims {count} entries, more than "
                               f"a {file_bytes}-byte file can hold")
    return count


def read_model(data: bytes, source: str = "<bytes>") -> TflModel:
    """Decode the flatbuffer `data` (a whole .tflite file). Raises ModelFormatError on anything
    malformed: wrong identifier, truncation, indices or sizes out of range."""
    try:
        import tflite  # noqa: F401  (schema bindings)
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ModelFormatError(
            "reading .tflite files needs the packages 'tflite' and 'flatbuffers': "
            "pip install tflite flatbuffers") from exc
    if len(data) < 8:
        raise ModelFormatError(f"{source}: {len(data)} bytes is too short for a TFLite file "
                               f"(truncated?)")
    ident = bytes(data[4:8])
    if ident != FILE_IDENTIFIER:
        raise ModelFormatError(f"{source}: not a TFLite file: file identifier is {ident!r}, "
                               f"expected {FILE_IDENTIFIER!r}")
    try:
        return _decode(bytearray(data), source)
    except (ModelFormatError, UnsupportedModelError):
        raise
    except _GUARDED as exc:
        raise ModelFormatError(f"{source}: TFLite file is truncated or corrupt "
                               f"({type(exc).__name__}: {exc})") from exc


def _decode(buf: bytearray, source: str) -> TflModel:
    import tflite
    n = len(buf)
    root = struct.unpack_from("<I", buf, 0)[0]
    if root + 4 > n:
        raise ModelFormatError(f"{source}: root table offset {root} lies beyond the end of the "
                               f"{n}-byte file (truncated?)")
    model = tflite.Model.GetRootAs(buf, 0)
    n_sub = _check_count("subgraphs", model.SubgraphsLength(), 4, n)
    if n_sub < 1:
        raise ModelFormatError(f"{source}: the model has no subgraph")
    n_codes = _check_count("operator codes", model.OperatorCodesLength(), 4, n)
    names = _builtin_names()
    opcodes = []
    for i in range(n_codes):
        code = model.OperatorCodes(i)
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if builtin == 32:  # CUSTOM
            custom = code.CustomCode()
            opcodes.append("CUSTOM:" + (custom.decode("utf-8", "replace") if custom else "?"))
        else:
            opcodes.append(names.get(builtin, f"BUILTIN_{builtin}"))
    n_buf = _check_count("buffers", model.BuffersLength(), 4, n)
    sub = model.Subgraphs(0)
    n_t = _check_count("tensors", sub.TensorsLength(), 4, n)
    tensors = [_read_tensor(sub.Tensors(i), i, model, n_buf, buf, source) for i in range(n_t)]

    def index_list(what: str, arr) -> tuple:
        if isinstance(arr, int):  # the bindings return 0 for an absent vector
            return ()
        out = tuple(int(v) for v in arr)
        for v in out:
            if v < -1 or v >= n_t:
                raise ModelFormatError(f"{source}: {what} refers to tensor {v}, but the "
                                       f"subgraph has {n_t} tensors")
        return out

    n_ops = _check_count("operators", sub.OperatorsLength(), 4, n)
    operators = []
    for i in range(n_ops):
        op = sub.Operators(i)
        idx = int(op.OpcodeIndex())
        if not 0 <= idx < len(opcodes):
            raise ModelFormatError(f"{source}: operator {i} uses opcode index {idx}, but the file "
                                   f"lists {len(opcodes)} operator codes")
        name = opcodes[idx]
        operators.append(TflOperator(i, name, index_list(f"operator {i} ({name}) inputs",
                                                         op.InputsAsNumpy()),
                                     index_list(f"operator {i} ({name}) outputs",
                                                op.OutputsAsNumpy()),
                                     _read_options(op, name)))
    desc = model.Description()
    return TflModel(int(model.Version()), desc.decode("utf-8", "replace") if desc else "",
                    tensors, operators, index_list("subgraph inputs", sub.InputsAsNumpy()),
                    index_list("subgraph outputs", sub.OutputsAsNumpy()), n_sub)


def _read_tensor(t, i: int, model, n_buf: int, buf: bytearray, source: str) -> TflTensor:
    name = t.Name()
    name = name.decode("utf-8", "replace") if name else f"tensor_{i}"
    shape_arr = t.ShapeAsNumpy()
    shape = () if isinstance(shape_arr, int) else tuple(int(d) for d in shape_arr)
    if any(d < 0 for d in shape):
        raise ModelFormatError(f"{source}: tensor {i} ({name!r}) has shape {list(shape)}; dynamic "
                               f"(-1) or negative dimensions are not supported, the model needs "
                               f"a fixed input size")
    ttype = int(t.Type())
    dtype = TENSOR_TYPES.get(ttype)
    if dtype is None:
        raise ModelFormatError(f"{source}: tensor {i} ({name!r}) has tensor type {ttype}, which "
                               f"is not one of the numeric types {sorted(TENSOR_TYPES.values())}")
    b = int(t.Buffer())
    if not 0 <= b < max(n_buf, 1):
        raise ModelFormatError(f"{source}: tensor {i} ({name!r}) refers to buffer {b}, but the "
                               f"file has {n_buf} buffers")
    data = None
    if t.Sparsity() is not None:
        raise UnsupportedModelError(
            f"{source}: tensor {i} ({name!r}) is stored sparse (TFLite sparsity / DENSIFY); "
            f"vc4infer reads dense tensors only: convert the model without sparsification")
    if n_buf:
        raw = _buffer_bytes(model.Buffers(b), b, buf, source)
        if raw is not None and len(raw):
            count = int(np.prod(shape, dtype=np.int64))
            expect = count * np.dtype(dtype).itemsize
            if len(raw) != expect:
                raise ModelFormatError(
                    f"{source}: tensor {i} ({name!r}) of shape {list(shape)} and type {dtype} "
                    f"needs {expect} bytes, its buffer {b} holds {len(raw)}")
            data = np.frombuffer(bytes(raw), dtype=np.dtype(dtype).newbyteorder("<"))
            data = data.astype(dtype).reshape(shape)
    tensor = TflTensor(i, name, shape, dtype, data)
    q = t.Quantization()
    if q is not None:
        scale = q.ScaleAsNumpy()
        zp = q.ZeroPointAsNumpy()
        if not isinstance(scale, int) and len(scale):
            scale = np.asarray(scale, dtype=np.float32)
            zp = (np.zeros(len(scale), np.int64) if isinstance(zp, int)
                  else np.asarray(zp, dtype=np.int64))
            if len(zp) not in (1, len(scale)):
                raise ModelFormatError(f"{source}: tensor {i} ({name!r}) has {len(scale)} scales "
                                       f"but {len(zp)} zero points")
            if len(zp) == 1 and len(scale) > 1:
                zp = np.full(len(scale), zp[0], np.int64)
            if not np.all(np.isfinite(scale)) or np.any(scale < np.finfo(np.float32).tiny):
                raise ModelFormatError(f"{source}: tensor {i} ({name!r}) has a quantization scale "
                                       f"that is not a positive normal number: {scale[:4]}")
            if not np.issubdtype(np.dtype(dtype), np.integer):
                raise ModelFormatError(f"{source}: tensor {i} ({name!r}) has quantization "
                                       f"parameters but type {dtype}: quantized values are "
                                       f"integers (the file is corrupt)")
            low, high = np.iinfo(np.dtype(dtype)).min, np.iinfo(np.dtype(dtype)).max
            if np.any(zp < low) or np.any(zp > high):
                raise ModelFormatError(f"{source}: tensor {i} ({name!r}) of type {dtype} has a zero "
                                       f"point outside [{low}, {high}]: {zp[:4]}")
            qdim = int(q.QuantizedDimension())
            if len(scale) > 1 and not (0 <= qdim < len(shape) and shape[qdim] == len(scale)):
                raise ModelFormatError(f"{source}: tensor {i} ({name!r}) of shape {list(shape)} "
                                       f"has {len(scale)} scales along dimension {qdim}")
            tensor.scale, tensor.zero_point, tensor.quantized_dimension = scale, zp, qdim
    return tensor


def _buffer_bytes(b, index: int, buf: bytearray, source: str) -> Optional[memoryview]:
    """Bytes of one buffer: inline data, or an (offset, size) range of the file."""
    offset, size = int(b.Offset()), int(b.Size())
    if offset > 1:
        if offset + size > len(buf):
            raise ModelFormatError(f"{source}: buffer {index} lies at bytes {offset}..{offset + size}"
                                   f" but the file has only {len(buf)} bytes (truncated?)")
        return memoryview(buf)[offset:offset + size]
    length = b.DataLength()
    if length == 0:
        return None
    _check_count(f"buffer {index}", length, 1, len(buf))
    arr = b.DataAsNumpy()
    return memoryview(np.ascontiguousarray(arr).view(np.uint8))


def _read_options(op, name: str) -> dict:
    """The builtin options of the operators the importer maps, as a plain dict."""
    import tflite
    table = op.BuiltinOptions()
    if table is None:
        return {}
    cls = _OPTION_CLASSES.get(name)
    if cls is None:
        return {}
    o = getattr(tflite, cls)()
    o.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    for key, getter in _OPTION_FIELDS[cls]:
        out[key] = getattr(o, getter)()
    if "new_shape" in out:
        arr = out["new_shape"]
        out["new_shape"] = None if isinstance(arr, int) else tuple(int(v) for v in arr)
    if "squeeze_dims" in out:
        arr = out["squeeze_dims"]
        out["squeeze_dims"] = () if isinstance(arr, int) else tuple(int(v) for v in arr)
    return out


_OPTION_CLASSES = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "ADD": "AddOptions", "MUL": "MulOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "MEAN": "ReducerOptions",
    "RESHAPE": "ReshapeOptions", "SQUEEZE": "SqueezeOptions", "SOFTMAX": "SoftmaxOptions",
    "CONCATENATION": "ConcatenationOptions",
}

_OPTION_FIELDS = {
    "Conv2DOptions": [("padding", "Padding"), ("stride_w", "StrideW"), ("stride_h", "StrideH"),
                      ("activation", "FusedActivationFunction"),
                      ("dilation_w", "DilationWFactor"), ("dilation_h", "DilationHFactor")],
    "DepthwiseConv2DOptions": [("padding", "Padding"), ("stride_w", "StrideW"),
                               ("stride_h", "StrideH"), ("depth_multiplier", "DepthMultiplier"),
                               ("activation", "FusedActivationFunction"),
                               ("dilation_w", "DilationWFactor"),
                               ("dilation_h", "DilationHFactor")],
    "FullyConnectedOptions": [("activation", "FusedActivationFunction"),
                              ("weights_format", "WeightsFormat"),
                              ("keep_num_dims", "KeepNumDims")],
    "AddOptions": [("activation", "FusedActivationFunction")],
    "MulOptions": [("activation", "FusedActivationFunction")],
    "Pool2DOptions": [("padding", "Padding"), ("stride_w", "StrideW"), ("stride_h", "StrideH"),
                      ("filter_w", "FilterWidth"), ("filter_h", "FilterHeight"),
                      ("activation", "FusedActivationFunction")],
    "ReducerOptions": [("keep_dims", "KeepDims")],
    "ReshapeOptions": [("new_shape", "NewShapeAsNumpy")],
    "SqueezeOptions": [("squeeze_dims", "SqueezeDimsAsNumpy")],
    "SoftmaxOptions": [("beta", "Beta")],
    "ConcatenationOptions": [("axis", "Axis"), ("activation", "FusedActivationFunction")],
}
