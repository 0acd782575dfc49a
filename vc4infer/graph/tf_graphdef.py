"""Decode a TensorFlow GraphDef (a frozen `.pb`) into plain Python objects, without TensorFlow.

Schema facts used (tensorflow/core/framework/*.proto):
GraphDef: node = 1 (NodeDef), versions = 4, library = 2.
NodeDef: name = 1, op = 2, input = 3 (repeated), device = 4, attr = 5 (map: key = 1, value = 2).
AttrValue: list = 1, s = 2, i = 3, f = 4, b = 5, type = 6, shape = 7, tensor = 8.
AttrValue.ListValue: s = 2, i = 3, f = 4, b = 5, type = 6, shape = 7, tensor = 8.
TensorShapeProto: dim = 2 (Dim: size = 1), unknown_rank = 3.
TensorProto: dtype = 1, tensor_shape = 2, tensor_content = 4, float_val = 5, double_val = 6,
int_val = 7, int64_val = 10, bool_val = 11, half_val = 13.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..errors import ModelFormatError
from .protobuf_wire import (LENGTH_DELIMITED, Field, WireFormatError, iter_fields,
                            packed_fixed, packed_varints)

# DataType enum value -> numpy dtype (types.proto). Others are reported by number.
TF_DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
             9: "int64", 10: "bool", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}

# A constant may not claim more elements than this (1 GiB of float32); a hostile shape with a
# single repeated value could otherwise ask for any amount of memory.
MAX_CONST_ELEMENTS = 1 << 28


@dataclass
class TfNode:
    """One NodeDef: `inputs` keep TensorFlow's spelling ("name", "name:1", "^control")."""
    name: str
    op: str
    inputs: list = field(default_factory=list)
    attrs: dict = field(default_factory=dict)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


def _shape(data: memoryview) -> Optional[tuple]:
    """TensorShapeProto -> tuple of ints (-1 for an unknown dimension), None if rank unknown."""
    dims = []
    for f in iter_fields(data):
        if f.number == 2 and f.wire_type == LENGTH_DELIMITED:
            size = 0
            for g in iter_fields(f.value):
                if g.number == 1:
                    size = g.as_int()
            dims.append(size)
        elif f.number == 3 and f.wire_type != LENGTH_DELIMITED and f.value:
            return None
    return tuple(dims)


def _tf_dtype(code: int, where: str) -> str:
    try:
        return TF_DTYPES[code]
    except KeyError:
        raise ModelFormatError(f"{where}: TensorFlow data type number {code} is not supported "
                               f"(supported: {sorted(set(TF_DTYPES.values()))})") from None


def decode_tensor(data: memoryview, where: str) -> np.ndarray:
    """TensorProto -> numpy array of its dtype and shape."""
    dtype_code, shape, content = 0, (), None
    values: dict[int, list] = {}
    for f in iter_fields(data):
        if f.number == 1:
            dtype_code = f.as_int()
        elif f.number == 2 and f.wire_type == LENGTH_DELIMITED:
            shape = _shape(f.value)
        elif f.number == 4:
            content = f.as_bytes()
        elif f.number in (5, 6, 7, 10, 11, 13):
            values.setdefault(f.number, []).append(f)
    dtype = np.dtype(_tf_dtype(dtype_code, where))
    if shape is None or any(d < 0 for d in shape):
        raise ModelFormatError(f"{where}: constant has an unknown shape {shape}")
    count = 1
    for d in shape:
        count *= d
    if count > MAX_CONST_ELEMENTS:
        raise ModelFormatError(f"{where}: constant claims {count} elements, more than the "
                               f"{MAX_CONST_ELEMENTS} vc4infer accepts")
    if content is not None:
        if len(content) != count * dtype.itemsize:
            raise ModelFormatError(f"{where}: tensor_content has {len(content)} bytes, shape "
                                   f"{shape} of {dtype} needs {count * dtype.itemsize}")
        return np.frombuffer(content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    flat = _repeated_values(values, dtype)
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size == 0:
        return np.zeros(shape, dtype)
    if flat.size < count:
        # TensorProto rule: a shorter list is padded with its last value.
        out = np.empty(count, dtype)
        out[:flat.size] = flat
        out[flat.size:] = flat[-1]
        return out.reshape(shape)
    raise ModelFormatError(f"{where}: constant has {flat.size} values for shape {shape}")


def _repeated_values(values: dict, dtype: np.dtype) -> np.ndarray:
    parts: list = []
    if dtype == np.float32:
        parts = [packed_fixed(f, "<f4") for f in values.get(5, [])]
    elif dtype == np.float64:
        parts = [packed_fixed(f, "<f8") for f in values.get(6, [])]
    elif dtype == np.float16:
        parts = [np.array(packed_varints(f), np.uint16).view(np.float16) for f in values.get(13, [])]
    elif dtype == np.int64:
        parts = [np.array(packed_varints(f), np.int64) for f in values.get(10, [])]
    elif dtype == np.bool_:
        parts = [np.array(packed_varints(f), np.bool_) for f in values.get(11, [])]
    elif dtype.kind in "iu":
        parts = [np.array(packed_varints(f), np.int64).astype(dtype) for f in values.get(7, [])]
    if not parts:
        return np.zeros(0, dtype)
    return np.concatenate(parts).astype(dtype)


def _attr_list(data: memoryview, where: str) -> list:
    out: list = []
    for f in iter_fields(data):
        if f.number == 2:
            out.append(f.as_bytes())
        elif f.number in (3, 6):
            out.extend(packed_varints(f))
        elif f.number == 4:
            out.extend(float(v) for v in packed_fixed(f, "<f4"))
        elif f.number == 5:
            out.extend(bool(v) for v in packed_varints(f))
        elif f.number == 7:
            out.append(_shape(f.value))
        elif f.number == 8:
            out.append(decode_tensor(f.value, where))
    return out


def _attr_value(data: memoryview, where: str) -> Any:
    value: Any = None
    for f in iter_fields(data):
        if f.number == 1:
            value = _attr_list(f.value, where)
        elif f.number == 2:
            value = f.as_bytes()
        elif f.number in (3, 6):
            value = f.as_int()
        elif f.number == 4:
            value = f.as_float()
        elif f.number == 5:
            value = bool(f.as_int())
        elif f.number == 7:
            value = _shape(f.value)
        elif f.number == 8:
            value = decode_tensor(f.value, where)
    return value


def _node(data: memoryview, index: int) -> TfNode:
    node = TfNode(name="", op="")
    attr_fields: list[Field] = []
    for f in iter_fields(data):
        if f.number == 1:
            node.name = f.as_str()
        elif f.number == 2:
            node.op = f.as_str()
        elif f.number == 3:
            node.inputs.append(f.as_str())
        elif f.number == 5:
            attr_fields.append(f)
    if not node.name or not node.op:
        raise ModelFormatError(f"GraphDef node #{index} has no name or no op")
    for f in attr_fields:
        key, raw = "", None
        for g in iter_fields(f.value):
            if g.number == 1:
                key = g.as_str()
            elif g.number == 2 and g.wire_type == LENGTH_DELIMITED:
                raw = g.value
        if raw is not None:
            node.attrs[key] = _attr_value(raw, f"node {node.name!r} attr {key!r}")
    return node


def parse_graphdef(data: bytes) -> list:
    """Decode GraphDef bytes into a list of TfNode in file order.

    Raises ModelFormatError (WireFormatError) when the bytes are not a GraphDef."""
    nodes: list[TfNode] = []
    try:
        for f in iter_fields(data):
            if f.number == 1:
                if f.wire_type != LENGTH_DELIMITED:
                    raise WireFormatError("GraphDef field 'node' is not a message")
                nodes.append(_node(f.value, len(nodes)))
    except WireFormatError as err:
        raise ModelFormatError(f"not a TensorFlow GraphDef (malformed protobuf): {err}") from err
    if not nodes:
        raise ModelFormatError("not a TensorFlow GraphDef: it holds no nodes")
    return nodes
