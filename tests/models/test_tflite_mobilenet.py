"""MobileNet v1 and v2 TFLite files built by models/build_tflite.py (float32, uint8 per-tensor,
int8 per-channel) through `vc4infer.load(path, backend="neon")` against the TFLite interpreter
(ai_edge_litert): float outputs within 1e-4 of the output range; quantized outputs compared as
real numbers (dequantized with the output's scale and zero point) within 2 output steps, or the
steps by which the interpreter's reference and optimized kernels differ if more, of both, and the
top-5 classes agreeing. Every comparison first checks that the reference
output spans many steps, so that a constant or near-constant output cannot pass."""
import importlib.util
import os
import sys

import numpy as np
import pytest
from requires import require

require("ai_edge_litert")
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


#: softmax models are built with a classifier this much stronger than build_tflite's default, so
#: that the quantized probabilities span tens of steps instead of 0..3 (a flat softmax over 1001
#: random classes quantizes to almost nothing, and any output would then be "within 2 steps")
SOFTMAX_HEAD_GAIN = 16.0
TOLERANCE_STEPS = 2


def _output_quantization(model: bytes):
    """(scale, zero point) of the model's output; (None, None) for a float output."""
    d = Interpreter(model_content=model).get_output_details()[0]
    scale, zero_point = d["quantization"]
    return (scale, zero_point) if scale else (None, None)


def check_quantized(ours: np.ndarray, ref: np.ndarray, auto: np.ndarray, scale: float,
                    zero_point: int, top: int = 5) -> None:
    """Dequantized `ours` against the reference kernels' `ref` and the optimized kernels' `auto`
    (all quantized, same scale and zero point)."""
    real = lambda q: scale * (q.astype(np.float64) - zero_point)  # noqa: E731
    ours_r, ref_r, auto_r = real(ours).ravel(), real(ref).ravel(), real(auto).ravel()
    # TFLite's reference and optimized kernels round differently and disagree by up to 4 steps on
    # these models (softmax of wide logits most): against the reference, ours may be as far off as
    # the optimized kernels are (at least 2 steps); against those, that plus their own distance
    spread = np.abs(ref_r - auto_r).max()
    tol = max(TOLERANCE_STEPS * scale, spread)
    # the reference must be informative: a constant output misses one of its ends by > 2 tol
    assert np.ptp(ref_r) > 4 * tol, f"reference spans only {np.ptp(ref_r) / scale:.0f} steps"
    for name, other, limit in (("reference", ref_r, tol),
                               ("optimized", auto_r, TOLERANCE_STEPS * scale + spread)):
        err = np.abs(ours_r - other).max()
        assert err <= limit + 1e-9, \
            f"max error {err / scale:.1f} steps against the {name} kernels (limit {limit / scale:.0f})"
    check_top_k(ours_r, ref_r, top, tol)


def check_top_k(ours: np.ndarray, ref: np.ndarray, k: int, tol: float) -> None:
    """Our i-th best class scores, in the reference, within 2 tol of the reference's i-th best
    (exact agreement where the reference's scores are apart; either order where they tie)."""
    ours_top = np.argsort(-ours, kind="stable")[:k]
    ref_sorted = np.sort(ref)[::-1][:k]
    for i, index in enumerate(ours_top):
        assert ref[index] >= ref_sorted[i] - 2 * tol, \
            f"our top-{i + 1} class {index} has reference score {ref[index]}, its top-{i + 1} {ref_sorted[i]}"


def _compare(tmp_path, arch, alpha, size, dtype, **kw):
    softmax = kw.get("softmax", True)
    kw.setdefault("head_gain", SOFTMAX_HEAD_GAIN if softmax else bt.HEAD_GAIN)
    model = bt.build_mobilenet(arch, alpha, size, dtype, **kw)
    path = tmp_path / f"mobilenet_{arch}_{alpha}_{size}_{dtype}.tflite"
    path.write_bytes(model)
    m = vc4infer.load(str(path), backend="neon")
    out_scale, _ = _output_quantization(model)
    for seed in (11, 12):
        x = _input(model, size, seed)
        ours = m.run(x)
        ref = _interpret(model, x, OpResolverType.BUILTIN_REF)
        auto = _interpret(model, x, OpResolverType.AUTO)
        assert ours.dtype == ref.dtype and ours.shape == ref.shape
        if out_scale is not None:
            check_quantized(ours, ref, auto, *_output_quantization(model))
        elif kw.get("io_float"):      # float interface over int8: DEQUANTIZE of 1/256 steps
            check_quantized(*(np.round(a.astype(np.float64) * 256) for a in (ours, ref, auto)),
                            scale=1 / 256, zero_point=0)
        else:
            span = float(np.ptp(ref))
            err = np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()
            assert err <= 1e-4 * span, f"max error {err}, range {span}"
            check_top_k(ours.ravel(), ref.ravel(), 5, 1e-4 * span)
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
    m = _compare(tmp_path, "v2", 0.35, 64, "int8", io_float=True)
    assert m.graph.inputs[0].dtype == "float32"
    assert m.graph.nodes[0].op == "quantize" and m.graph.nodes[-1].op == "dequantize"


@pytest.mark.slow
@pytest.mark.parametrize("arch,alpha,size", [("v1", 1.0, 224), ("v2", 1.0, 224),
                                             ("v2", 0.75, 160)])
@pytest.mark.parametrize("dtype", ["float32", "uint8", "int8"])
def test_full_size_mobilenet(tmp_path, arch, alpha, size, dtype):
    _compare(tmp_path, arch, alpha, size, dtype)


def test_the_comparison_fails_a_constant_or_shifted_output():
    """The checks above have teeth: a constant output, and one shifted by 3 steps, fail them."""
    model = bt.build_mobilenet("v1", 0.25, 64, "uint8", head_gain=SOFTMAX_HEAD_GAIN)
    x = _input(model, 64, 11)
    ref = _interpret(model, x, OpResolverType.BUILTIN_REF)
    scale, zero_point = _output_quantization(model)
    for wrong in (np.full_like(ref, np.median(ref)), np.clip(ref.astype(int) + 3, 0, 255).astype(ref.dtype)):
        with pytest.raises(AssertionError):
            check_quantized(wrong, ref, ref, scale, zero_point)
    check_quantized(ref, ref, ref, scale, zero_point)        # and the reference itself passes
