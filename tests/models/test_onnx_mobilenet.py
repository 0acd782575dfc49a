"""MobileNet v1 and v2 written as ONNX by models/build_onnx.py, run through vc4infer (NEON) and
onnxruntime: the largest difference must stay within 1e-4 of the output range."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import vc4infer
from requires import require

onnx = require("onnx")
ort = require("onnxruntime")

_BUILDER = Path(__file__).resolve().parents[2] / "models" / "build_onnx.py"
if "build_onnx" not in sys.modules:  # models/ is not an installed package: load the file
    _spec = importlib.util.spec_from_file_location("build_onnx", _BUILDER)
    sys.modules["build_onnx"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["build_onnx"])
build = sys.modules["build_onnx"]

TOL = 1e-4


def reference(path, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def compare(tmp_path, version, alpha, resolution, batch=1, **kw):
    model = getattr(build, f"mobilenet_{version}")(alpha, resolution, seed=7, batch=batch, **kw)
    path = build.write(model, str(tmp_path / f"{version}.onnx"))
    n = batch if isinstance(batch, int) else 2
    m = vc4infer.load(path, backend="neon", batch=n)
    x = np.random.default_rng(resolution).standard_normal((n, 3, resolution, resolution)).astype(np.float32)
    got, ref = m.run(x), reference(path, x)
    assert got.shape == ref.shape == (n, 1000) and got.dtype == np.float32
    span = float(ref.max() - ref.min())
    assert span > 0.1  # the random network must not have collapsed to a constant
    err = float(np.abs(got - ref).max())
    assert err <= TOL * span, f"max abs error {err:.3g} vs output range {span:.3g}"
    # same top class for every image
    assert np.array_equal(got.argmax(1), ref.argmax(1))
    return m


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("alpha,resolution", [(0.25, 96), (0.5, 128), (1.0, 224)])
def test_mobilenet_matches_onnxruntime(tmp_path, version, alpha, resolution):
    compare(tmp_path, version, alpha, resolution)


@pytest.mark.parametrize("version,head,opset", [("v1", "reshape_chain", 9), ("v2", "reduce_mean", 13),
                                               ("v2", "reshape_chain", 11), ("v1", "reduce_mean", 18)])
def test_exporter_variants(tmp_path, version, head, opset):
    compare(tmp_path, version, 0.25, 96, head=head, opset=opset)


def test_dynamic_batch_of_two(tmp_path):
    compare(tmp_path, "v2", 0.35, 96, batch="N")


@pytest.mark.slow
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("alpha,resolution", [(0.75, 160), (1.4, 224), (1.0, 192)])
def test_mobilenet_more_sizes(tmp_path, version, alpha, resolution):
    compare(tmp_path, version, alpha, resolution)


def test_model_summary_of_v2(tmp_path):
    m = compare(tmp_path, "v2", 0.5, 128)
    text = m.summary()
    assert "neon" in text and "multiply-adds" in text
    assert m.graph.meta["source_format"] == "onnx"
    assert m.graph.meta["preprocess"] == "torchvision" and m.graph.meta["labels"] == "imagenet1000"
