"""The constant-folding ops the ONNX importer claims (Cast, Ceil, ConstantOfShape, Floor, Neg,
Pow, Range, Reciprocal, Slice, Sqrt, and integer Div), each computing a constant from
initializers that then scales the model's input, against onnxruntime."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_onnx_helpers import make_model, ort_run, save
import vc4infer

X_SHAPE = (1, 6)
F = TensorProto.FLOAT


def _node(op, inputs, output, **attrs):
    return helper.make_node(op, inputs, [output], **attrs)


# name -> (nodes computing "c" from the initializers, initializers); c must broadcast to (1, 6)
CASES = {
    "Neg": ([_node("Neg", ["a"], "c")], {"a": np.array([1.5, -2, 3, -4, 5, 0.25], np.float32)}),
    "Sqrt": ([_node("Sqrt", ["a"], "c")], {"a": np.array([4, 2, 9, 0.25, 1, 7], np.float32)}),
    "Reciprocal": ([_node("Reciprocal", ["a"], "c")],
                   {"a": np.array([4, -2, 8, 0.5, 3, -7], np.float32)}),
    "Pow": ([_node("Pow", ["a", "e"], "c")],
            {"a": np.array([2, 3, 0.5, 4, 1.5, 9], np.float32), "e": np.array(1.5, np.float32)}),
    "Pow int exponent": ([_node("Pow", ["a", "e"], "c")],
                         {"a": np.array([2, -3, 0.5, 4, 1.5, -1], np.float32),
                          "e": np.array(3, np.int64)}),
    "Floor": ([_node("Floor", ["a"], "c")], {"a": np.array([1.5, -1.5, 2, -0.2, 3.7, -3.7], np.float32)}),
    "Ceil": ([_node("Ceil", ["a"], "c")], {"a": np.array([1.5, -1.5, 2, -0.2, 3.7, -3.7], np.float32)}),
    "Cast float to int and back (truncates toward zero)": (
        [_node("Cast", ["a"], "i", to=TensorProto.INT64), _node("Cast", ["i"], "c", to=F)],
        {"a": np.array([1.7, -1.7, 2.5, -2.5, 0.9, -0.9], np.float32)}),
    "Range": ([_node("Range", ["s", "l", "d"], "r"), _node("Cast", ["r"], "c", to=F)],
              {"s": np.array(-4, np.int64), "l": np.array(8, np.int64), "d": np.array(2, np.int64)}),
    "Range float": ([_node("Range", ["s", "l", "d"], "c")],
                    {"s": np.array(0.5, np.float32), "l": np.array(2.0, np.float32),
                     "d": np.array(0.25, np.float32)}),
    "ConstantOfShape": ([_node("ConstantOfShape", ["shape"], "c",
                               value=numpy_helper.from_array(np.array([2.5], np.float32)))],
                        {"shape": np.array([1, 6], np.int64)}),
    "Slice with negative step": (
        [_node("Slice", ["a", "st", "en", "ax", "sp"], "c")],
        {"a": np.arange(13, dtype=np.float32) - 6, "st": np.array([-2], np.int64),
         "en": np.array([-100], np.int64), "ax": np.array([0], np.int64),
         "sp": np.array([-2], np.int64)}),
    "Slice clamped": (
        [_node("Slice", ["a", "st", "en"], "c")],
        {"a": np.arange(8, dtype=np.float32) * 0.5, "st": np.array([2], np.int64),
         "en": np.array([1 << 40], np.int64)}),
    "integer Div truncates toward zero": (
        [_node("Div", ["a", "b"], "q"), _node("Cast", ["q"], "c", to=F)],
        {"a": np.array([7, -7, 9, -9, 1, -1], np.int64), "b": np.array([2, 2, -4, -4, 3, 3], np.int64)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_folded_constant_matches_onnxruntime(tmp_path, case):
    nodes, init = CASES[case]
    model = make_model(nodes + [helper.make_node("Mul", ["x", "c"], ["y"])], [("x", X_SHAPE)],
                       [("y", X_SHAPE)], init)
    path = save(model, tmp_path)
    x = np.arange(1, 7, dtype=np.float32).reshape(X_SHAPE)
    ref = ort_run(path, {"x": x})[0]
    got = vc4infer.load(path, backend="neon").run(x)
    assert got.dtype == ref.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)
