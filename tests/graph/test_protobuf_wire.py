"""The minimal protobuf wire reader against messages encoded by the protobuf runtime itself
(onnx's TensorProto: strings, packed int64 and float, negative varints, raw bytes)."""
import numpy as np
import pytest

from vc4infer.errors import ModelFormatError
from requires import require
from vc4infer.graph.protobuf_wire import (FIXED32, LENGTH_DELIMITED, VARINT, WireFormatError,
                                          iter_fields, packed_fixed, packed_varints)

onnx = require("onnx")

# onnx.proto TensorProto field numbers: dims = 1, data_type = 2, float_data = 4, int32_data = 5,
# name = 8, raw_data = 9, int64_data = 7
DIMS, DATA_TYPE, FLOAT_DATA, INT32_DATA, INT64_DATA, NAME, RAW = 1, 2, 4, 5, 7, 8, 9


def test_fields_of_a_runtime_encoded_message():
    t = onnx.TensorProto()
    t.dims.extend([3, -1, 1 << 40])
    t.data_type = 1
    t.float_data.extend([1.5, -2.25, 3e-8])
    t.int32_data.extend([-7, 0, 2**31 - 1])
    t.int64_data.extend([-(1 << 62), 5])
    t.name = "ünïcode/name"
    t.raw_data = bytes(range(256)) * 3
    fields = {}
    for f in iter_fields(t.SerializeToString()):
        fields.setdefault(f.number, []).append(f)
    assert [v for f in fields[DIMS] for v in packed_varints(f)] == [3, -1, 1 << 40]
    assert fields[DATA_TYPE][0].wire_type == VARINT and fields[DATA_TYPE][0].as_int() == 1
    floats = np.concatenate([packed_fixed(f, "<f4") for f in fields[FLOAT_DATA]])
    np.testing.assert_array_equal(floats, np.float32([1.5, -2.25, 3e-8]))
    assert [v for f in fields[INT32_DATA] for v in packed_varints(f)] == [-7, 0, 2**31 - 1]
    assert [v for f in fields[INT64_DATA] for v in packed_varints(f)] == [-(1 << 62), 5]
    assert fields[NAME][0].as_str() == "ünïcode/name"
    assert fields[RAW][0].wire_type == LENGTH_DELIMITED
    assert fields[RAW][0].as_bytes() == bytes(range(256)) * 3


def test_unpacked_and_fixed32_scalars():
    # a float as a lone fixed32 record (field 4, wire type 5) and an unpacked varint
    data = bytes([4 << 3 | FIXED32]) + np.float32(-0.5).tobytes() + bytes([1 << 3, 0x96, 0x01])
    fields = list(iter_fields(data))
    assert fields[0].as_float() == -0.5 and fields[1].as_int() == 150
    assert packed_fixed(fields[0], "<f4").tolist() == [-0.5]
    assert packed_varints(fields[1]) == [150]


@pytest.mark.parametrize("data, message", [
    (b"\x0a\x05abc", "runs past the end"),
    (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
    (b"\x08\xff", "truncated varint"),
    (b"\x0d\x00\x00", "truncated 32-bit"),
    (b"\x09\x00", "truncated 64-bit"),
    (b"\x0b", "wire type 3"),
    (b"\x00\x01", "field number 0"),
])
def test_malformed_wire_data(data, message):
    with pytest.raises(WireFormatError, match=message) as info:
        list(iter_fields(data))
    assert isinstance(info.value, ModelFormatError)


def test_wrong_wire_type_for_the_requested_reading():
    (field,) = iter_fields(b"\x08\x01")
    with pytest.raises(WireFormatError, match="length-delimited"):
        field.as_bytes()
    with pytest.raises(WireFormatError, match="32-bit float"):
        field.as_float()
    (packed,) = iter_fields(b"\x0a\x03abc")
    with pytest.raises(WireFormatError, match="not a multiple of 4"):
        packed_fixed(packed, "<f4")
