"""Malformed and unsupported .tflite files give ModelFormatError / UnsupportedModelError with a
message naming the problem, never a crash or a hang."""
import importlib.util
import os
import sys

import numpy as np
import pytest


from vc4infer.errors import ModelFormatError, UnsupportedModelError  # noqa: E402
from vc4infer.graph.tflite_import import import_tflite, import_tflite_bytes  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("build_tflite",
                                               os.path.join(_ROOT, "models", "build_tflite.py"))
bt = sys.modules.setdefault("build_tflite", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(bt)


def _small_model(**kw) -> "bt.TfliteWriter":
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 4, 4, 2), "float32")
    wt = w.add_tensor("w", (3, 1, 1, 2), "float32", np.ones((3, 1, 1, 2)))
    y = w.add_tensor("y", (1, 4, 4, 3), "float32")
    w.add_op("CONV_2D", [x, wt], [y], Padding=1, StrideW=1, StrideH=1, **kw)
    return w, x, y


def test_small_model_imports():
    w, x, y = _small_model()
    g = import_tflite_bytes(w.to_bytes([x], [y]))
    assert [n.op for n in g.nodes] == ["conv2d"]


def test_wrong_identifier():
    w, x, y = _small_model()
    data = bytearray(w.to_bytes([x], [y]))
    data[4:8] = b"XXXX"
    with pytest.raises(ModelFormatError, match="identifier"):
        import_tflite_bytes(bytes(data))


@pytest.mark.parametrize("keep", [3, 8, 40, 100, 200, 300])
def test_truncated(keep):
    w, x, y = _small_model()
    data = w.to_bytes([x], [y])
    with pytest.raises(ModelFormatError):
        import_tflite_bytes(data[:keep])


def test_random_corruption_never_crashes():
    """Flipping bytes anywhere gives either a graph or a model-side error, never another
    exception."""
    w, x, y = _small_model()
    data = w.to_bytes([x], [y])
    rng = np.random.default_rng(0)
    stages = {"file structure": 0, "tensors and buffers": 0, "operators": 0, "imported": 0}
    for _ in range(300):
        bad = bytearray(data)
        for pos in rng.integers(8, len(bad), 3):
            bad[pos] = int(rng.integers(0, 256))
        try:
            import_tflite_bytes(bytes(bad))
            stages["imported"] += 1
        except (ModelFormatError, UnsupportedModelError) as err:
            stages[_stage_of(str(err))] += 1
    # the mutants reached every stage of the reader, not only its first structural check
    assert stages["file structure"] >= 30 and stages["tensors and buffers"] >= 10, stages
    assert stages["operators"] >= 5 and stages["imported"] >= 3, stages


def _stage_of(message: str) -> str:
    """Which check of the reader refused a file, from its error message."""
    what = message.split(": ", 1)[1] if message.startswith("<bytes>: ") else message
    if what.startswith(("TFLite file is", "the model has no")):
        return "file structure"
    if what.startswith(("tensor ", "buffer ")):
        return "tensors and buffers"
    return "operators"


def test_buffer_index_out_of_range():
    w, x, y = _small_model()
    w.tensors[1].buffer = 57
    with pytest.raises(ModelFormatError, match="buffer 57"):
        import_tflite_bytes(w.to_bytes([x], [y]))


def test_buffer_size_does_not_match_shape():
    w, x, y = _small_model()
    w.buffers[w.tensors[1].buffer] = b"\0" * 12
    with pytest.raises(ModelFormatError, match="needs 24 bytes"):
        import_tflite_bytes(w.to_bytes([x], [y]))


def test_tensor_index_out_of_range():
    w, x, y = _small_model()
    w.ops[0].inputs = [0, 9]
    with pytest.raises(ModelFormatError, match="tensor 9"):
        import_tflite_bytes(w.to_bytes([x], [y]))


def test_shapes_that_contradict():
    w, x, y = _small_model()
    w.tensors[y].shape = (1, 4, 4, 5)
    with pytest.raises(ModelFormatError, match="CONV_2D"):
        import_tflite_bytes(w.to_bytes([x], [y]))


def test_filter_channels_mismatch():
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 4, 4, 2), "float32")
    wt = w.add_tensor("w", (3, 1, 1, 5), "float32", np.ones((3, 1, 1, 5)))
    y = w.add_tensor("y", (1, 4, 4, 3), "float32")
    w.add_op("CONV_2D", [x, wt], [y], Padding=1, StrideW=1, StrideH=1)
    with pytest.raises(ModelFormatError, match="input channels"):
        import_tflite_bytes(w.to_bytes([x], [y]))


def test_unsupported_operator_names_op_node_and_list():
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 8), "float32")
    y = w.add_tensor("tanh_out", (1, 8), "float32")
    w.add_op("TANH", [x], [y])
    with pytest.raises(UnsupportedModelError) as exc:
        import_tflite_bytes(w.to_bytes([x], [y]))
    msg = str(exc.value)
    assert "TANH" in msg and "operator 0" in msg and "tanh_out" in msg and "CONV_2D" in msg


def test_unsupported_fused_activation():
    w, x, y = _small_model(FusedActivationFunction=4)  # TANH
    with pytest.raises(UnsupportedModelError, match="tanh"):
        import_tflite_bytes(w.to_bytes([x], [y]))


def test_operator_reads_tensor_before_it_is_produced():
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 8), "float32")
    a = w.add_tensor("a", (1, 8), "float32")
    b = w.add_tensor("b", (1, 8), "float32")
    w.add_op("RELU", [a], [b])
    w.add_op("RELU", [x], [a])
    with pytest.raises(ModelFormatError, match="before any operator produces it"):
        import_tflite_bytes(w.to_bytes([x], [b]))


def test_external_buffers_beyond_file_end(tmp_path):
    w, x, y = _small_model()
    data = w.to_bytes([x], [y], external_buffers=True)
    assert import_tflite_bytes(data).constants  # the intact file reads
    p = tmp_path / "cut.tflite"
    p.write_bytes(data[:-8])
    with pytest.raises(ModelFormatError, match="beyond|truncated|bytes"):
        import_tflite(str(p))


def _quantized_relu(x_dtype="uint8", scale=0.05, zero_point=128):
    """One RELU over a quantized tensor whose type, scale and zero point the test picks."""
    w = bt.TfliteWriter()
    x = w.add_tensor("x", (1, 2, 2, 1), x_dtype, scale=scale, zero_point=zero_point)
    y = w.add_tensor("y", (1, 2, 2, 1), "uint8", scale=0.05, zero_point=128)
    w.add_op("RELU", [x], [y])
    return w.to_bytes([x], [y])


def test_the_quantized_probe_model_imports():
    assert [n.op for n in import_tflite_bytes(_quantized_relu()).nodes]


@pytest.mark.parametrize("change,match", [
    (dict(x_dtype="float32"), "quantization parameters but type float32"),
    (dict(scale=1e-45), "not a positive normal number"),       # a denormal float32
    (dict(zero_point=300), r"zero point outside \[0, 255\]"),
    (dict(x_dtype="int8", zero_point=-129), r"outside \[-128, 127\]"),
])
def test_bad_quantization_is_refused_at_import(change, match):
    """Found by mutation: these loaded, then failed in the NEON runtime with a ValueError or an
    OverflowError (a traceback in classify); now the import names the tensor and the problem."""
    with pytest.raises(ModelFormatError, match=match):
        import_tflite_bytes(_quantized_relu(**change))
