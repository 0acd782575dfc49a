"""MobileNet v1 and v2 (ONNX from models/build_onnx.py, TFLite from models/build_tflite.py) compiled
by hostside.qpu_model and run on the QPU backend (`--backend emu` by default: every QPU
instruction emulated) against onnxruntime and the TFLite interpreter.

Tolerance: 1e-4 of the output range, as for the NEON runtime (tests/models/test_onnx_mobilenet.py).
The QPU adds with round-toward-zero, about one extra unit in the last place per addition: over
the longest sums here (K = 9 * 1280 terms at most, but each layer's error is relative to its
own sum of |w x| and errors of successive layers do not add in phase) the measured errors stay
near 1e-5 of the range."""
import os
import sys

import numpy as np
import pytest

from hostside import passes, scheduler
from hostside.qpu_model import QpuModel
from qpu_kernels import conv_expand_depthwise

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "host"))
from host_graphs import onnx_mobilenet, tflite_mobilenet  # noqa: E402
from requires import require

TOL = 1e-4


def where_report(qm):
    """{"qpu:<kernel>": n, "neon": n} over the steps that compute something."""
    counts = {}
    for s in qm.steps:
        if isinstance(s, scheduler.ViewStep):
            continue
        key = s.where if s.where.startswith("qpu") else "neon"
        counts[key] = counts.get(key, 0) + 1
    return counts


def check(got, ref):
    span = float(ref.max() - ref.min())
    assert span > 0.01          # the random network has not collapsed to a constant
    err = float(np.abs(got.astype(np.float64) - ref).max())
    assert err <= TOL * span, f"max abs error {err:.3g} vs output range {span:.3g}"
    assert np.array_equal(got.argmax(-1), ref.argmax(-1))


def run_onnx(backend, version, alpha, size):
    ort = require("onnxruntime")
    g, path = onnx_mobilenet(version, alpha, size)
    x = np.random.default_rng(size).standard_normal((1, 3, size, size)).astype(np.float32)
    spec_in, spec_out = g.inputs[0], g.outputs[0]
    with QpuModel(g, backend) as qm:
        print(qm.summary())
        got = spec_out.from_internal(qm.run({spec_in.tensor: spec_in.to_internal(x)})[spec_out.tensor])
        counts = where_report(qm)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    check(got, ref)
    return counts


def run_tflite(backend, version, alpha, size):
    litert = require("ai_edge_litert.interpreter")
    g, model = tflite_mobilenet(version, alpha, size)
    x = np.random.default_rng(size).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    with QpuModel(g, backend) as qm:
        print(qm.summary())
        got = qm.run({g.inputs[0].tensor: x})[g.outputs[0].tensor]
        counts = where_report(qm)
    it = litert.Interpreter(model_content=model)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    check(got, it.get_tensor(it.get_output_details()[0]["index"]).astype(np.float64))
    return counts


def expand_depthwise_pairs(graph) -> int:
    """1x1 convs whose only reader is a 3x3 depthwise conv (after the activation is fused), with
    K small enough for strips of scheduler.MIN_STRIP_PIXELS: what the fused kernel takes."""
    g = passes.optimise(graph)
    readers = {}
    for n in g.nodes:
        for t in n.inputs:
            readers.setdefault(t, []).append(n)
    pairs = 0
    for n in g.nodes:
        if n.op != "conv2d" or g.tensors[n.inputs[1]].shape[1:3] != (1, 1) or len(n.inputs) > 3:
            continue
        (nxt, *more) = readers.get(n.outputs[0], [None])
        k = g.tensors[n.inputs[0]].shape[3]
        if not more and nxt is not None and nxt.op == "conv2d" and nxt.attrs["groups"] > 1 and \
                conv_expand_depthwise.max_pixels(k, nxt.attrs["strides"][0]) >= \
                scheduler.MIN_STRIP_PIXELS:
            pairs += 1
    return pairs


def assert_where(graph, counts):
    """Every conv2d (the 3x3 stem on conv_stem; a 1x1 conv and the depthwise conv after it
    together on expand_depthwise where it takes them), the pooling and the classifier (gemv) on
    the QPUs; only a softmax left to the CPU."""
    ops_ = [n.op for n in graph.nodes]
    convs = ops_.count("conv2d")
    depthwise = sum(1 for n in graph.nodes if n.op == "conv2d" and n.attrs["groups"] > 1)
    fused = expand_depthwise_pairs(graph)
    assert counts.get("qpu:expand_depthwise", 0) == fused
    assert counts["qpu:conv_depthwise"] == depthwise - fused
    assert counts["qpu:conv_stem"] == 1
    # the classifier (fully_connected, or TFLite v1's 1x1 conv) on the matrix-vector kernel
    assert counts["qpu:gemv"] == 1
    classifier_conv = 1 if ops_.count("fully_connected") == 0 else 0
    assert counts["qpu:conv_pointwise"] == convs - depthwise - 1 - classifier_conv - fused
    # the global average pool / spatial mean on the transposed-read SGEMM
    # (TFLite v1: an avg_pool2d whose window is the whole image)
    pools = ("global_avg_pool", "mean", "avg_pool2d")
    assert counts["qpu:global_average"] == sum(ops_.count(p) for p in pools) == 1
    # on NEON: (TFLite) the softmax
    assert counts.get("neon", 0) == ops_.count("softmax")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_onnx_mobilenet_on_qpus(backend, version):
    assert_where(onnx_mobilenet(version, 0.25, 96)[0], run_onnx(backend, version, 0.25, 96))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_tflite_mobilenet_on_qpus(backend, version):
    assert_where(tflite_mobilenet(version, 0.25, 96)[0], run_tflite(backend, version, 0.25, 96))


@pytest.mark.slow
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("alpha,size", [(0.5, 128), (1.0, 224)])
def test_bigger_mobilenets_on_qpus(backend, version, alpha, size):
    run_onnx(backend, version, alpha, size)


def test_validate_reports_every_layer_of_mobilenet_v2(backend):
    """Per layer, QPU against NEON on the same inputs: QPU layers within 1e-4 of the layer's
    largest magnitude (sums of up to K = 1280 products, round-toward-zero adds: K * 2^-23
    relative to sum |w x|, which is a few times the largest output)."""
    g = onnx_mobilenet("v2", 0.25, 64)[0]
    x = np.random.default_rng(1).standard_normal((1, 64, 64, 3)).astype(np.float32)
    with QpuModel(g, backend) as qm:
        rows = qm.validate({g.inputs[0].tensor: x})
        computing = [s for s in qm.steps if not isinstance(s, scheduler.ViewStep)]
    assert [r.layer for r in rows] == [s.name for s in computing]
    for r in rows:
        assert r.max_abs_reference > 0
        if r.where.startswith("qpu"):
            assert r.max_abs_error <= 1e-4 * r.max_abs_reference, r
    convs = sum(n.op == "conv2d" for n in g.nodes)
    fused = expand_depthwise_pairs(g)
    assert fused > 0 and sum(r.where == "qpu:expand_depthwise" for r in rows) == fused
    # every conv (the stem too; a fused pair is one step), the pool and the fc on the QPUs
    assert sum(r.where.startswith("qpu") for r in rows) == convs - fused + 2


def test_the_stems_zero_halo_is_written_again_for_every_inference(backend):
    """The stem reads its padding from a zero border the host writes around the input; other
    tensors reuse those bytes during an inference, so each run must write it again."""
    g = onnx_mobilenet("v2", 0.25, 64)[0]
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((1, 64, 64, 3)).astype(np.float32) for _ in range(2)]
    with QpuModel(g, backend) as qm:
        assert qm.plan.halos == {g.inputs[0].tensor: (1, 1, 1, 1)}
        first = qm.run({g.inputs[0].tensor: xs[0]})[g.outputs[0].tensor]
        qm.run({g.inputs[0].tensor: xs[1]})
        again = qm.run({g.inputs[0].tensor: xs[0]})[g.outputs[0].tensor]
    np.testing.assert_array_equal(again, first)
    ref = passes.run_graph(passes.optimise(g), {g.inputs[0].tensor: xs[0]})[g.outputs[0].tensor]
    check(first, ref.astype(np.float64))
