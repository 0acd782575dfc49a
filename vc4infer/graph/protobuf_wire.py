"""A minimal, bounded reader of the protocol-buffers wire format.

Enough to walk TensorFlow GraphDef files without the protobuf runtime: a message is a flat
sequence of (field number, wire type, value) records. Every length is checked against the bytes
that remain, so a truncated or hostile file raises `WireFormatError` instead of reading past the
end, allocating without bound or looping.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Union

import numpy as np

from ..errors import ModelFormatError

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

_MAX_VARINT_BYTES = 10


class WireFormatError(ModelFormatError):
    """The bytes are not a well-formed protocol-buffers message."""


@dataclass(frozen=True)
class Field:
    """One record of a message: `value` is an int (varint, fixed32, fixed64) or a memoryview
    of the payload (length-delimited)."""
    number: int
    wire_type: int
    value: Union[int, memoryview]

    def as_bytes(self) -> bytes:
        """The payload of a length-delimited field."""
        if self.wire_type != LENGTH_DELIMITED:
            raise WireFormatError(f"field {self.number}: expected a length-delimited value, "
                                  f"found wire type {self.wire_type}")
        return bytes(self.value)

    def as_str(self) -> str:
        """The payload of a string field, decoded as UTF-8."""
        try:
            return self.as_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise WireFormatError(f"field {self.number}: string is not valid UTF-8") from err

    def as_int(self) -> int:
        """A varint field read as a signed 64-bit integer (protobuf int32/int64/enum)."""
        if self.wire_type != VARINT:
            raise WireFormatError(f"field {self.number}: expected a varint, found wire type "
                                  f"{self.wire_type}")
        return to_signed64(self.value)

    def as_float(self) -> float:
        """A fixed32 field read as an IEEE float32."""
        if self.wire_type != FIXED32:
            raise WireFormatError(f"field {self.number}: expected a 32-bit float, found wire type "
                                  f"{self.wire_type}")
        return float(np.array([self.value], dtype="<u4").view("<f4")[0])


def to_signed64(value: int) -> int:
    """Reinterpret an unsigned 64-bit varint as two's-complement (negative int32/int64)."""
    return value - (1 << 64) if value >= (1 << 63) else value


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint at `pos`; return (value, position after it)."""
    result = 0
    end = len(buf)
    for i in range(_MAX_VARINT_BYTES):
        if pos >= end:
            raise WireFormatError("truncated varint at the end of the data")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return result & ((1 << 64) - 1), pos
    raise WireFormatError(f"varint longer than {_MAX_VARINT_BYTES} bytes")


def iter_fields(data: Union[bytes, bytearray, memoryview]) -> Iterator[Field]:
    """Yield the records of one message, in file order (repeated fields appear repeatedly)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        # a field read as a message arrived with another wire type (a number): corrupt file
        raise WireFormatError(f"a nested message is encoded as a {type(data).__name__}, not as "
                              f"bytes (wrong wire type)")
    buf = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireFormatError("field number 0 is invalid (data is not a protobuf message)")
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos)
            yield Field(number, wire_type, value)
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise WireFormatError(f"field {number}: truncated 64-bit value")
            yield Field(number, wire_type, int.from_bytes(buf[pos:pos + 8], "little"))
            pos += 8
        elif wire_type == FIXED32:
            if pos + 4 > end:
                raise WireFormatError(f"field {number}: truncated 32-bit value")
            yield Field(number, wire_type, int.from_bytes(buf[pos:pos + 4], "little"))
            pos += 4
        elif wire_type == LENGTH_DELIMITED:
            length, pos = read_varint(buf, pos)
            if length > end - pos:
                raise WireFormatError(f"field {number}: length {length} runs past the end of the "
                                      f"data ({end - pos} bytes left)")
            yield Field(number, wire_type, buf[pos:pos + length])
            pos += length
        else:
            # Groups (3, 4) are a proto2 relic no TensorFlow graph uses; 6 and 7 do not exist.
            raise WireFormatError(f"field {number}: unsupported wire type {wire_type}")


def packed_varints(field: Field) -> list[int]:
    """The values of a repeated varint field, packed (one length-delimited record) or not."""
    if field.wire_type == VARINT:
        return [to_signed64(field.value)]
    if field.wire_type != LENGTH_DELIMITED:
        raise WireFormatError(f"field {field.number}: expected varints, found wire type "
                              f"{field.wire_type}")
    buf, pos, out = field.value, 0, []
    while pos < len(buf):
        value, pos = read_varint(buf, pos)
        out.append(to_signed64(value))
    return out


def packed_fixed(field: Field, dtype: str) -> np.ndarray:
    """The values of a repeated fixed-width field (`dtype` '<f4', '<f8', '<i4', ...), packed or
    not."""
    size = np.dtype(dtype).itemsize
    if field.wire_type == LENGTH_DELIMITED:
        if len(field.value) % size:
            raise WireFormatError(f"field {field.number}: packed length {len(field.value)} is not "
                                  f"a multiple of {size}")
        return np.frombuffer(field.value, dtype=dtype).copy()
    expected = FIXED32 if size == 4 else FIXED64
    if field.wire_type != expected:
        raise WireFormatError(f"field {field.number}: expected {size}-byte values, found wire "
                              f"type {field.wire_type}")
    raw = field.value.to_bytes(size, "little")
    return np.frombuffer(raw, dtype=dtype).copy()
