"""The TF ops the frozen-graph importer claims beyond the MobileNet path (Cast, Fill, Neg, PadV2,
RealDiv, Reciprocal, Sigmoid, Sqrt, Square; FusedBatchNormV2 in test_tf_import), each against
its TensorFlow semantics written out in numpy here (the TF docs' definitions)."""
import numpy as np
import pytest

from test_tf_import import DT_INT32, const, node, placeholder, run, write_graph
from vc4infer.graph.tf_import import import_tf_graphdef

SHAPE = (1, 2, 2, 6)
X = np.arange(24, dtype=np.float32).reshape(SHAPE) / 4 - 2.5
A = np.array([1.5, -2, 4, -0.25, 3, 0.5], np.float32)


def scaled_by(tmp_path, *nodes):
    """A graph whose output is input * c, c computed by `nodes` from constants."""
    path = write_graph(tmp_path, placeholder("input", SHAPE), *nodes,
                       node("y", "Mul", ["input", "c"]))
    return run(import_tf_graphdef(path, output="y"), X)


# op -> (nodes computing "c", c as TF defines it)
FOLDED = {
    "Neg": ([const("a", A), node("c", "Neg", ["a"])], -A),
    "Reciprocal": ([const("a", A), node("c", "Reciprocal", ["a"])], 1 / A),
    "Sqrt": ([const("a", np.abs(A)), node("c", "Sqrt", ["a"])], np.sqrt(np.abs(A))),
    "Square": ([const("a", A), node("c", "Square", ["a"])], A * A),
    "RealDiv": ([const("a", A), const("b", A[::-1].copy()), node("c", "RealDiv", ["a", "b"])],
                A / A[::-1]),
    # Cast to int32 truncates toward zero; the cast back to float keeps the integer
    "Cast": ([const("a", np.array([1.7, -1.7, 2.5, -2.5, 0.9, -0.9], np.float32)),
              node("i", "Cast", ["a"], SrcT=("type", 1), DstT=("type", DT_INT32)),
              node("c", "Cast", ["i"], SrcT=("type", DT_INT32), DstT=("type", 1))],
             np.array([1, -1, 2, -2, 0, 0], np.float32)),
    "Fill": ([const("dims", np.array([6], np.int32)), const("v", np.float32(2.5)),
              node("c", "Fill", ["dims", "v"])], np.full(6, 2.5, np.float32)),
}


@pytest.mark.parametrize("op", sorted(FOLDED))
def test_folded_op(tmp_path, op):
    nodes, c = FOLDED[op]
    np.testing.assert_allclose(scaled_by(tmp_path, *nodes), X * c, rtol=1e-6)


def test_real_div_of_a_run_time_tensor(tmp_path):
    path = write_graph(tmp_path, placeholder("input", SHAPE), const("d", A),
                       node("y", "RealDiv", ["input", "d"]))
    np.testing.assert_allclose(run(import_tf_graphdef(path, output="y"), X), X / A, rtol=1e-6)


def test_sigmoid_of_a_run_time_tensor(tmp_path):
    path = write_graph(tmp_path, placeholder("input", SHAPE), node("y", "Sigmoid", ["input"]))
    np.testing.assert_allclose(run(import_tf_graphdef(path, output="y"), X),
                               1 / (1 + np.exp(-X.astype(np.float64))), rtol=1e-6)


def test_pad_v2_pads_with_its_constant(tmp_path):
    pads = np.array([[0, 0], [1, 2], [0, 1], [0, 0]], np.int32)
    path = write_graph(tmp_path, placeholder("input", SHAPE), const("p", pads),
                       const("v", np.float32(1.5)), node("y", "PadV2", ["input", "p", "v"]))
    want = np.pad(X, pads, constant_values=1.5)
    got = run(import_tf_graphdef(path, output="y"), X)
    assert got.shape == (1, 5, 3, 6)
    np.testing.assert_array_equal(got, want)

