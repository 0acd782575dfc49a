"""MobileNet v1 and v2 TFLite files built by models/build_tflite.py (float32, uint8 per-tensor,
int8 per-channel) through `vc4infer.load(path, backend="neon")` against the TFLite interpreter
(ai_edge_litert): float outputs within 1e-4 of the output range, quantized outputs within 2
units of both the interpreter's reference kernels and its default kernels."""
import importlib.util
import os
import sys

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
pytest.importorskip("tflite")
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

import vc4infer  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location("build_tflite",
                                               os.path.join(_ROOT, "models", "build_tflite.py"))
bt = sys.modules.setdefault("build_tflite", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(bt)

LIMITS = {"uint8": (0, 255), "int8": (-128, 127)}


def _input(model: bytes, size: int, seed: int) -> np.ndarray:
    x = bt.calibration_inputs(size, 1, seed=seed)[0]
    d = Interpreter(model_content=model).get_input_details()[0]
    if d["dtype"] == np.float32:
        return x
    scale, zp = d["quantization"]
    return np.clip(np.round(x / scale) + zp, *LIMITS[np.dtype(d["dtype"]).name]).astype(d["dtype"])


def _interpret(model: bytes, x: np.ndarray, resolver) -> np.ndarray:
    it = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _compare(tmp_path, arch, alpha, size, dtype, unit=None, **kw):
    """`unit`: the quantization step of a float output that was dequantized from integers
    (QUANTIZE/DEQUANTIZE interface); then the tolerance is 2 such steps."""
    model = bt.build_mobilenet(arch, alpha, size, dtype, **kw)
    path = tmp_path / f"mobilenet_{arch}_{alpha}_{size}_{dtype}.tflite"
    path.write_bytes(model)
    m = vc4infer.load(str(path), backend="neon")
    for seed in (11, 12):
        x = _input(model, size, seed)
        ours = m.run(x)
        for resolver in (OpResolverType.BUILTIN_REF, OpResolverType.AUTO):
            ref = _interpret(model, x, resolver)
            assert ours.dtype == ref.dtype and ours.shape == ref.shape
            err = np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()
            if unit is not None:
                assert err <= 2 * unit + 1e-7, f"{resolver.name}: max error {err / unit} steps"
            elif ref.dtype == np.float32:
                span = float(ref.max() - ref.min())
                assert err <= 1e-4 * span, f"{resolver.name}: max error {err}, range {span}"
            else:
                assert err <= 2, f"{resolver.name}: max error {err} units"
    return m


FAST = [("v1", 0.25, 64), ("v2", 0.35, 64), ("v1", 0.5, 96)]


@pytest.mark.parametrize("arch,alpha,size", FAST)
@pytest.mark.parametrize("dtype", ["float32", "uint8", "int8"])
@pytest.mark.parametrize("softmax", [True, False])
def test_mobilenet_matches_interpreter(tmp_path, arch, alpha, size, dtype, softmax):
    m = _compare(tmp_path, arch, alpha, size, dtype, softmax=softmax)
    g = m.graph
    assert g.meta["preprocess"] == ("tf_slim" if dtype == "float32" else "tflite_uint8")
    assert g.meta["labels"] == "imagenet1001"
    assert g.inputs[0].dtype == dtype and g.outputs[0].dtype == dtype


def test_external_buffers(tmp_path):
    """Weights stored after the flatbuffer (Buffer.offset/size) read the same."""
    _compare(tmp_path, "v2", 0.35, 64, "uint8", external_buffers=True)
    _compare(tmp_path, "v1", 0.25, 64, "float32", external_buffers=True)


def test_quantized_model_with_float_interface(tmp_path):
    """int8 model with QUANTIZE at the input and DEQUANTIZE at the output."""
    m = _compare(tmp_path, "v2", 0.35, 64, "int8", unit=1 / 256, io_float=True)
    assert m.graph.inputs[0].dtype == "float32"
    assert m.graph.nodes[0].op == "quantize" and m.graph.nodes[-1].op == "dequantize"


@pytest.mark.slow
@pytest.mark.parametrize("arch,alpha,size", [("v1", 1.0, 224), ("v2", 1.0, 224),
                                             ("v2", 0.75, 160)])
@pytest.mark.parametrize("dtype", ["float32", "uint8", "int8"])
def test_full_size_mobilenet(tmp_path, arch, alpha, size, dtype):
    _compare(tmp_path, arch, alpha, size, dtype)
