"""vc4infer.load / Model: the input/output boundary, input checks, backends, classify, summary."""
import numpy as np
import pytest

import vc4infer
from hostside.driver import HardwareUnavailableError
from vc4infer.errors import BackendUnavailableError, InputSpecError
from vc4infer.graph.ir import Graph
from test_onnx_helpers import helper, load_build_onnx, make_model, ort_run, rel_err, save

RNG = np.random.default_rng(5)


@pytest.fixture(scope="module")
def conv_path(tmp_path_factory):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    model = make_model(nodes, [("x", (1, 3, 6, 5))], [("y", (1, 4, 6, 5))], {"w": w})
    return save(model, tmp_path_factory.mktemp("m"))


def test_specs_describe_the_files_own_boundary(conv_path):
    m = vc4infer.load(conv_path)
    i, o = m.input_spec, m.output_spec
    assert (i.name, i.shape, i.dtype, i.layout, i.quant) == ("x", (1, 3, 6, 5), "float32", "NCHW", None)
    assert (o.name, o.shape, o.dtype, o.layout) == ("y", (1, 4, 6, 5), "float32", "NCHW")
    assert m.graph.tensors[i.tensor].shape == (1, 6, 5, 3)  # NHWC inside


def test_run_takes_and_returns_file_layout(conv_path):
    m = vc4infer.load(conv_path, backend="neon")
    x = RNG.standard_normal((1, 3, 6, 5)).astype(np.float32)
    y = m.run(x)
    assert rel_err(y, ort_run(conv_path, {"x": x})[0]) < 1e-6
    assert np.array_equal(m.run({"x": x}), y) and np.array_equal(m.run([x]), y)


@pytest.mark.parametrize("bad,expect", [
    (np.zeros((1, 3, 6, 5), np.float64), r"expected dtype float32, got float64"),
    (np.zeros((1, 6, 5, 3), np.float32), r"expected shape \[1, 3, 6, 5\].*got \[1, 6, 5, 3\]"),
    (np.zeros((3, 6, 5), np.float32), r"expected shape \[1, 3, 6, 5\]"),
    ([np.zeros((1, 3, 6, 5), np.float32)] * 2, r"takes 1 input"),
    ({"z": np.zeros((1, 3, 6, 5), np.float32)}, r"the model takes \['x'\]"),
    ([[1.0]], r"expected a numpy array"),
])
def test_bad_input_names_expected_and_got(conv_path, bad, expect):
    m = vc4infer.load(conv_path)
    with pytest.raises(InputSpecError, match=expect):
        m.run(bad)



def test_unknown_backend_and_missing_file(conv_path, tmp_path):
    with pytest.raises(ValueError, match="backend"):
        vc4infer.load(conv_path, backend="gpu")
    with pytest.raises(FileNotFoundError):
        vc4infer.load(str(tmp_path / "nothing.onnx"))


def test_unknown_zoo_name():
    from vc4infer.graph.zoo import UnknownModelError
    with pytest.raises(UnknownModelError):
        vc4infer.load("no_such_model_name")


def test_summary_and_run_all(conv_path):
    m = vc4infer.load(conv_path)
    text = m.summary()
    # 6*5 outputs * 4 channels * 27 taps
    assert "3,240" in text and "neon" in text and "x: float32[1, 3, 6, 5] NCHW" in text
    env = m.run_all(np.zeros((1, 3, 6, 5), np.float32))
    assert all(t in env for n in m.graph.nodes for t in n.outputs)


def test_load_wraps_a_graph():
    g = Graph(meta={"source_format": "ir"})
    g.add_input("x", (2, 3))
    (y,) = g.add_node("softmax", ["x"])
    g.add_output(y)
    m = vc4infer.load(g)
    x = np.array([[0, 1, 2], [3, 3, 3]], np.float32)
    e = np.exp(x - x.max(1, keepdims=True))
    assert rel_err(m.run(x), e / e.sum(1, keepdims=True)) < 1e-6


def test_classify_matches_an_independent_pipeline(tmp_path):
    """classify = preprocess -> run -> softmax -> top-k; checked against onnxruntime on the
    preprocessed array and a numpy softmax."""
    build = load_build_onnx()
    from PIL import Image
    from vc4infer.graph.labels import labels_for
    from vc4infer.graph.preprocess import preprocess
    path = build.write(build.mobilenet_v2(0.35, 96, seed=3), str(tmp_path / "v2.onnx"))
    img = Image.fromarray(RNG.integers(0, 256, (120, 150, 3), dtype=np.uint8))
    m = vc4infer.load(path)
    top = m.classify(img, top=5)
    logits = ort_run(path, {"input": preprocess(img, m)})[0][0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    want = np.argsort(-p)[:5]
    assert [t[0] for t in top] == want.tolist()
    assert np.allclose([t[2] for t in top], p[want], atol=1e-5)
    labels = labels_for(m.graph)
    assert [t[1] for t in top] == [labels[i] for i in want]


@pytest.fixture(scope="module")
def qpu_path(tmp_path_factory):
    """Pointwise conv + ReLU, then a 3x3 depthwise conv: one QPU kernel runs the three."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"], group=16, pads=[1, 1, 1, 1])]
    init = {"w1": RNG.standard_normal((16, 8, 1, 1)).astype(np.float32),
            "b1": RNG.standard_normal(16).astype(np.float32),
            "w2": RNG.standard_normal((16, 1, 3, 3)).astype(np.float32)}
    model = make_model(nodes, [("x", (1, 8, 10, 12))], [("y", (1, 16, 10, 12))], init)
    return save(model, tmp_path_factory.mktemp("q"), "qpu.onnx")


def test_emu_backend_runs_reports_and_validates(qpu_path):
    x = RNG.standard_normal((1, 8, 10, 12)).astype(np.float32)
    with vc4infer.load(qpu_path, backend="emu") as m:
        assert m.backend == "emu"
        where = list(m.placement().values())
        assert where == ["qpu:expand_depthwise"] + ["fused into conv2d+conv2d_1"] * 2
        # sums of at most 9 float32 products: within 1e-5 of the range of onnxruntime's result
        assert rel_err(m.run(x), ort_run(qpu_path, {"x": x})[0]) < 1e-5
        assert "activation arena:" in m.summary()
        rows = m.validate(x)
        assert [r.where for r in rows] == ["qpu:expand_depthwise"]
        for r in rows:
            assert 0 < r.max_abs_reference and r.max_abs_error <= 1e-5 * r.max_abs_reference, r


@pytest.mark.not_on_pi
def test_hw_backend_off_a_pi_says_why(conv_path):
    with pytest.raises(HardwareUnavailableError):
        vc4infer.load(conv_path, backend="hw")


def test_validate_needs_a_qpu_backend(conv_path):
    with pytest.raises(BackendUnavailableError, match="validate"):
        vc4infer.load(conv_path, backend="neon").validate(np.zeros((1, 3, 6, 5), np.float32))
