"""Helpers shared by the ONNX / NEON tests: build small ONNX models with onnx.helper and run them
with onnxruntime (the independent reference). No tests live here."""
from __future__ import annotations

import numpy as np
from requires import require

onnx = require("onnx")
ort = require("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

BUILD_ONNX_PATH = __import__("pathlib").Path(__file__).resolve().parents[2] / "models" / "build_onnx.py"


def load_build_onnx():
    """models/build_onnx.py loaded by path (models/ is not an installed package)."""
    import importlib.util
    import sys
    if "build_onnx" not in sys.modules:
        spec = importlib.util.spec_from_file_location("build_onnx", BUILD_ONNX_PATH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["build_onnx"] = module
    return sys.modules["build_onnx"]


def tensor_info(name: str, shape) -> "onnx.ValueInfoProto":
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def make_model(nodes: list, inputs: list, outputs: list, initializers: dict = None,
               opset: int = 13) -> "onnx.ModelProto":
    """inputs/outputs: [(name, shape)]; initializers: {name: array}."""
    graph = helper.make_graph(
        nodes, "test", [tensor_info(n, s) for n, s in inputs],
        [tensor_info(n, s) if s is not None else helper.make_empty_tensor_value_info(n)
         for n, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def save(model, tmp_path, name: str = "m.onnx") -> str:
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def ort_run(model_or_path, feeds: dict) -> list:
    """Run with onnxruntime on one thread; returns the list of outputs."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") \
        else model_or_path
    sess = ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def ort_single(op_type: str, x: np.ndarray, initializers: dict = None, out_shape=None,
               opset: int = 13, extra_inputs: list = (), **attrs) -> np.ndarray:
    """Run one ONNX operator on input `x` (plus initializer inputs in order) with onnxruntime."""
    init = dict(initializers or {})
    node = helper.make_node(op_type, ["x"] + list(extra_inputs) + list(init), ["y"], **attrs)
    model = make_model([node], [("x", x.shape)], [("y", out_shape)], init, opset)
    return ort_run(model, {"x": x})[0]


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| relative to the range of ref (the model tests' measure)."""
    span = float(ref.max() - ref.min()) or 1.0
    return float(np.abs(a.astype(np.float64) - ref).max()) / span
