"""hostside.scheduler and hostside.qpu_model on the emulator: where each layer runs and why, the
NEON fallback through the arena, QPU steps against hostside.neon, and load-time work that never
repeats per inference."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from hostside import neon, passes, scheduler
from hostside.driver import Driver
from hostside.qpu_model import QpuModel
from vc4infer.errors import InputSpecError
from vc4infer.graph.ir import Graph
from host_graphs import add_bn, feeds_for, onnx_mobilenet, rand, random_graphs, tflite_mobilenet

# The QPU multiplies and adds with round-toward-zero (spec §float, VC4C; emu/alu.py for fmul) and
# the host rounds to nearest: each product is off by less than one unit of itself, and each of
# the K+2 additions of a dot product, bias and residual by one unit of the running sum on either
# side, so |qpu - neon| <= (K + 3) * 2^-22 * S with S = sum |w_k x_k| + |b| + |r| (in float64).
ULP_FACTOR = 2.0 ** -22


@pytest.fixture(scope="module")
def drv(backend):
    with Driver(backend, data_area_size=64 << 20) as d:
        yield d


def gemm_bound(x2d, w_ok, b, r=None):
    s = np.abs(x2d.astype(np.float64)) @ np.abs(w_ok.astype(np.float64)).T
    if b is not None:
        s += np.abs(b)
    if r is not None:
        s += np.abs(r.reshape(s.shape))
    return (w_ok.shape[1] + 3) * ULP_FACTOR * s + 1e-30


def pointwise_graph():
    """x -> 1x1 conv + bn + relu6 -> 1x1 conv + residual add -> global pool -> flatten -> fc."""
    g = Graph()
    g.add_input("x", (1, 5, 6, 24), "float32")
    g.add_constant("w1", rand(24, 1, 1, 24, scale=0.3))
    (a,) = g.add_node("conv2d", ["x", "w1"], name="expand")
    (a,) = g.add_node("relu6", [add_bn(g, a)], name="act")
    g.add_constant("w2", rand(24, 1, 1, 24, scale=0.3))
    g.add_constant("b2", rand(24, scale=0.1))
    (p,) = g.add_node("conv2d", [a, "w2", "b2"], name="project")
    (s,) = g.add_node("add", ["x", p], name="residual")
    (m,) = g.add_node("global_avg_pool", [s], name="pool")
    (f,) = g.add_node("flatten", [m], name="flat")
    g.add_constant("wf", rand(10, 24, scale=0.3))
    g.add_constant("bf", rand(10, scale=0.1))
    (y,) = g.add_node("fully_connected", [f, "wf", "bf"], name="fc")
    g.add_output(y)
    return g


# -- decisions -----------------------------------------------------------------------------

def test_every_node_gets_a_place_and_a_reason():
    g = passes.optimise(pointwise_graph())
    missing = scheduler.KernelChoice("nope", "qpu_kernels.does_not_exist", ("global_avg_pool",),
                                     lambda g, n: None, None, None)
    where = {d.node.name: d.where for d in scheduler.schedule(g, (missing, scheduler.SGEMM))}
    assert where == {"expand": "qpu:sgemm", "project": "qpu:sgemm", "fc": "qpu:sgemm",   # sgemm only
                     "pool": "neon (kernel module qpu_kernels.does_not_exist does not exist)",
                     "flat": "view (shares its input's bytes)"}


@pytest.mark.parametrize("conv,reason", [
    (dict(k=3, pads=(1, 1, 1, 1)), "a 3x3 kernel"),
    (dict(k=1, strides=(2, 2)), "a strided or padded 1x1 convolution"),
    (dict(k=1, c=1), "K = 1"),
    (dict(k=1, c=4, groups=4, o=4), "groups=4"),
])
def test_sgemm_rejects_what_it_cannot_run(conv, reason):
    k, c, o = conv.pop("k"), conv.pop("c", 6), conv.pop("o", 8)
    g = Graph()
    g.add_input("x", (1, 6, 6, c), "float32")
    g.add_constant("w", rand(o, k, k, c // conv.get("groups", 1)))
    g.add_output(g.add_node("conv2d", ["x", "w"], name="conv", **conv)[0])
    (d,) = scheduler.schedule(g, (scheduler.SGEMM,))
    assert d.place == "neon" and reason in d.reason


def test_activation_the_kernel_does_not_fuse_keeps_the_layer_on_neon():
    import types
    g = Graph()
    g.add_input("x", (1, 4, 4, 8), "float32")
    g.add_constant("w", rand(8, 1, 1, 8))
    g.add_output(g.add_node("conv2d", ["x", "w"], name="conv", activation="relu6")[0])
    plain = types.SimpleNamespace(ACTIVATIONS=(None, "relu"))   # a module without relu6
    d = scheduler.decide(g, g.nodes[0], (scheduler.SGEMM,), {"sgemm": (plain, None)})
    assert d.place == "neon" and d.reason == "sgemm: activation relu6 (its epilogue fuses " \
        "(None, 'relu'))"


def test_quantized_layers_stay_on_the_cpu():
    g = passes.optimise(tflite_mobilenet("v1", dtype="uint8")[0])
    decisions = scheduler.schedule(g, scheduler.KERNEL_CHOICES)
    assert {d.place for d in decisions} <= {"neon", "view"}
    assert all("quantized" in d.reason for d in decisions if d.node.op == "conv2d")


# -- NEON fallback through the arena ----------------------------------------------------------

@pytest.mark.parametrize("source,version", [("onnx", "v1"), ("onnx", "v2"), ("tflite", "v2"),
                                            ("tflite-uint8", "v2")])
def test_all_neon_through_the_arena_equals_the_neon_runner(drv, source, version):
    if source == "onnx":
        g = onnx_mobilenet(version, 0.25, 64)[0]
    else:
        g = tflite_mobilenet(version, 0.25, 64, "uint8" if "uint8" in source else "float32")[0]
    qm = QpuModel(g, drv, choices=())
    places = qm.placement()
    assert set(places) == {n.name for n in g.nodes}
    assert not any(w.startswith("qpu") for w in places.values())
    assert all(w.startswith("neon (") for s in qm.steps if s.node.op == "conv2d"
               for w in [s.where])
    spec = g.inputs[0]
    info = g.tensors[spec.tensor]
    rng = np.random.default_rng(0)
    if info.dtype == "float32":
        x = rng.standard_normal(info.shape).astype(np.float32)
    else:
        x = rng.integers(0, 256, info.shape).astype(info.dtype)
    for _ in range(2):          # the arena is reused: a second run gives the same answer
        got = qm.run({spec.tensor: x})
        ref = neon.run(g, {spec.tensor: x})
        for t in ref:
            np.testing.assert_array_equal(got[t], ref[t])
    assert qm.plan.arena_bytes == qm.plan.lower_bound_bytes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_random_graphs_through_the_arena_equal_the_neon_runner(backend, g):
    """Views, in-place CPU steps, several outputs: every output equals NeonRunner's, whether the
    1x1 convs run on the QPUs (within their rounding) or all on the CPU (bit for bit)."""
    feeds = feeds_for(g, 5)
    ref = neon.NeonRunner(g, fuse=False).run(feeds)
    with QpuModel(g, backend, choices=(), memory_bytes=16 << 20) as qm:
        got = qm.run(feeds)
    for t in ref:
        np.testing.assert_array_equal(got[t], ref[t])
    with QpuModel(g, backend, memory_bytes=16 << 20) as qm:
        got = qm.run(feeds)
    for t in ref:
        scale = np.abs(ref[t]).max(initial=1.0)
        np.testing.assert_allclose(got[t], ref[t], rtol=0, atol=1e-5 * scale)


def test_input_checks(drv):
    qm = QpuModel(pointwise_graph(), drv, choices=())
    with pytest.raises(InputSpecError, match="no value fed"):
        qm.run({})
    with pytest.raises(InputSpecError, match=r"expected float32\[1, 5, 6, 24\]"):
        qm.run({"x": np.zeros((1, 24, 5, 6), np.float32)})


# -- QPU steps ---------------------------------------------------------------------------------

def test_matrix_product_steps_match_neon_within_rounding(drv):
    g = pointwise_graph()
    qm = QpuModel(g, drv)
    where = qm.placement()
    assert where["expand"] == where["project"] == "qpu:conv_pointwise"
    assert where["fc"] == "qpu:gemv"                    # one row: the matrix-vector kernel
    assert where["pool"] == "qpu:global_average"
    assert where["bn"] == "fused into expand" and where["residual"] == "fused into project"
    feeds = feeds_for(g, 3)
    env = qm.run(feeds, keep=True)
    # each QPU layer against NEON on the same inputs, with the rounding bound of its sums
    og = qm.graph
    for step in qm.steps:
        if not isinstance(step, scheduler.QpuStep):
            continue
        node = step.node
        args = [og.constants[t] if og.is_constant(t) else env[t] for t in node.inputs]
        ref = passes.run_node(og, node, args)[0]
        got = env[node.outputs[0]]
        if node.op == "global_avg_pool":
            # a float32 sum of H*W terms scaled by 1/(H*W): recursive-summation bound, doubled
            x = args[0].astype(np.float64).reshape(-1, args[0].shape[-1])
            bound = 2 * (x.shape[0] + 2) * 2.0 ** -23 * np.abs(x).sum(axis=0) / x.shape[0]
            assert np.all(np.abs(got.reshape(-1) - x.mean(axis=0)) <= bound + 1e-30), node.name
            continue
        w = og.constants[node.inputs[1]]
        w = w.reshape(w.shape[0], -1)
        x2d = args[0].reshape(-1, w.shape[1])
        bound = gemm_bound(x2d, w, args[2], args[3] if len(args) > 3 else None)
        assert np.all(np.abs(got.reshape(bound.shape) - ref.reshape(bound.shape)) <= bound), node.name
    rows = qm.validate(feeds)
    assert [r.layer for r in rows] == ["expand", "project", "pool", "fc"]
    assert all(r.max_abs_error <= 1e-5 * max(1.0, r.max_abs_reference) for r in rows)


@pytest.mark.parametrize("h,w,c,strides,pads,act", [
    (9, 19, 20, (1, 1), (1, 1, 1, 1), "relu6"),      # width past 16 pixels, 20 channels
    (10, 7, 16, (2, 2), (0, 0, 1, 1), None),          # TF "SAME" stride 2 (pad fused)
    (5, 6, 3, (2, 2), (1, 1, 1, 1), "relu"),          # fewer channels than lanes
])
def test_depthwise_steps_match_neon_within_rounding(drv, h, w, c, strides, pads, act):
    g = Graph()
    g.add_input("x", (1, h, w, c), "float32")
    g.add_constant("w", rand(c, 3, 3, 1))
    g.add_constant("b", rand(c, scale=0.1))
    (y,) = g.add_node("conv2d", ["x", "w", "b"], name="dw", groups=c, strides=strides, pads=pads,
                      activation=act)
    g.add_output(y)
    qm = QpuModel(g, drv)
    assert qm.placement() == {"dw": "qpu:conv_depthwise"}
    feeds = feeds_for(g, 6)
    got = qm.run(feeds)[y]
    ref = neon.run(g, feeds)[y]
    # S = sum over the 9 taps of |w x| plus |b|, from the same conv on magnitudes
    s = neon.conv2d(np.abs(feeds["x"]), np.abs(g.constants["w"]), np.abs(g.constants["b"]),
                    strides, (1, 1), pads, c).astype(np.float64)
    assert np.all(np.abs(got - ref) <= (9 + 3) * ULP_FACTOR * s * 1.01 + 1e-30)


@pytest.mark.parametrize("change,reason", [
    (dict(o=8), "depth multiplier 2"),
    (dict(k=5, pads=(2, 2, 2, 2)), "a 5x5 depthwise kernel"),
    (dict(dilations=(2, 2), pads=(2, 2, 2, 2)), "dilations (2, 2)"),
    (dict(pads=(0, 2, 0, 2)), "pads (0, 2, 0, 2)"),
    (dict(n=2), "batch 2"),
])
def test_depthwise_rejects_what_it_cannot_run(change, reason):
    n, o, k = change.pop("n", 1), change.pop("o", 4), change.pop("k", 3)
    attrs = dict(groups=4, pads=(1, 1, 1, 1))
    attrs.update(change)
    g = Graph()
    g.add_input("x", (n, 6, 6, 4), "float32")
    g.add_constant("w", rand(o, k, k, 1))
    g.add_output(g.add_node("conv2d", ["x", "w"], name="dw", **attrs)[0])
    (d,) = scheduler.schedule(g, (scheduler.CONV_DEPTHWISE,))
    assert d.place == "neon" and reason in d.reason


def test_a_kernel_refusing_at_build_time_leaves_the_layer_to_neon(drv):
    # 2100 output columns: the sgemm's DMA store stride field (13 bits) cannot skip the rest of
    # a 8400-byte row, which only the builder finds out
    g = Graph()
    g.add_input("x", (2, 8), "float32")               # two rows: the sgemm, not the gemv
    g.add_constant("w", rand(2100, 8))
    (y,) = g.add_node("fully_connected", ["x", "w"], name="fc", activation="relu")
    g.add_output(y)
    qm = QpuModel(g, drv)
    where = qm.placement()["fc"]
    assert where.startswith("neon (sgemm: ") and "stride" in where
    feeds = feeds_for(g, 7)
    np.testing.assert_array_equal(qm.run(feeds)[y], neon.run(g, feeds)[y])


def test_load_time_work_is_not_repeated_per_inference(drv, monkeypatch):
    g = pointwise_graph()
    qm = QpuModel(g, drv)
    feeds = feeds_for(g, 4)
    first = qm.run(feeds)
    calls = []
    for name in ("alloc", "program", "copy", "array"):
        monkeypatch.setattr(drv, name, lambda *a, _n=name, **k: calls.append(_n))
    monkeypatch.setattr(passes, "optimise", lambda *a: calls.append("optimise"))
    for choice in scheduler.KERNEL_CHOICES:
        monkeypatch.setattr(choice, "pack", lambda *a: calls.append("pack"))
        monkeypatch.setattr(choice, "build", lambda *a: calls.append("build"))
    launches = sum(len(s.launches) for s in qm.steps if isinstance(s, scheduler.QpuStep))
    executes = []
    real_execute = Driver.execute
    monkeypatch.setattr(drv, "execute", lambda *a, **k: executes.append(1) or
                        real_execute(drv, *a, **k))
    second = qm.run(feeds)
    assert calls == []
    assert len(executes) == launches > 0
    np.testing.assert_array_equal(first["fc"], second["fc"])


def test_profile_times_every_step(drv, backend):
    g = pointwise_graph()
    qm = QpuModel(g, drv)
    rows = qm.profile(feeds_for(g, 8))
    assert [r.layer for r in rows] == [s.name for s in qm.steps]
    for r, s in zip(rows, qm.steps):
        assert r.wall_seconds >= 0 and r.where == s.where
        modelled = isinstance(s, scheduler.QpuStep) and backend == "emu"
        assert (r.modelled_seconds is not None and r.modelled_seconds > 0) == modelled


def test_summary_names_every_step_and_the_arena(drv):
    qm = QpuModel(pointwise_graph(), drv)
    text = qm.summary()
    for line in ("expand", "qpu:conv_pointwise", "qpu:global_average",
                 "activation arena:", "weights arena:"):
        assert line in text
    rows = qm.summary_rows()
    assert [r["name"] for r in rows] == ["expand", "project", "pool", "flat", "fc"]
    assert rows[0]["covers"] == ["expand", "bn", "act"]


@pytest.mark.parametrize("op,attrs,shape,where", [
    ("global_avg_pool", {}, (1, 4, 5, 8), "qpu:global_average"),
    ("mean", {"axes": (1, 2), "keepdims": False}, (1, 4, 5, 8), "qpu:global_average"),
    ("mean", {"axes": (-3, -2), "keepdims": True}, (1, 4, 5, 8), "qpu:global_average"),
    ("avg_pool2d", {"kernel": (4, 5)}, (1, 4, 5, 8), "qpu:global_average"),
    ("mean", {"axes": (3,), "keepdims": True}, (1, 4, 5, 8), "mean over axes (3,)"),
    ("avg_pool2d", {"kernel": (2, 2), "strides": (2, 2)}, (1, 4, 4, 8), "whole unpadded image"),
    ("global_avg_pool", {}, (2, 4, 5, 8), "batch 2"),
    ("global_avg_pool", {}, (1, 1, 1, 8), "1 pixel(s)"),
])
def test_global_average_runs_whole_image_means_only(drv, op, attrs, shape, where):
    """Spatial means of batch-1 NHWC tensors run on the QPUs (and match numpy); other pools and
    means stay on NEON with the reason."""
    g = Graph()
    g.add_input("x", shape, "float32")
    (y,) = g.add_node(op, ["x"], name="pool", **attrs)
    g.add_output(y)
    (d,) = scheduler.schedule(g, scheduler.KERNEL_CHOICES)
    if where.startswith("qpu"):
        assert d.where == where
        x = rand(*shape)
        qm = QpuModel(g, drv)
        got = qm.run({"x": x})[y]
        ref = x.astype(np.float64).mean(axis=(1, 2))
        bound = 2 * (shape[1] * shape[2] + 2) * 2.0 ** -23 * np.abs(x).mean(axis=(1, 2))
        assert np.all(np.abs(got.reshape(ref.shape) - ref) <= bound + 1e-30)
    else:
        assert d.where.startswith("neon (global_average: ") and where in d.where, d.where


def _expansion_graph(k, stride=1, h=9, w=11, c=24):
    g = Graph()
    g.add_input("x", (1, h, w, k), "float32")
    g.add_constant("we", rand(c, 1, 1, k, scale=0.3))
    g.add_constant("be", rand(c, scale=0.1))
    g.add_constant("wd", rand(c, 3, 3, 1, scale=0.3))
    (e,) = g.add_node("conv2d", ["x", "we", "be"], activation="relu6")
    g.add_output(g.add_node("conv2d", [e, "wd"], groups=c, strides=(stride, stride),
                            pads=(1, 1, 1, 1), activation="relu6")[0])
    return g


@pytest.mark.parametrize("k,stride", [(16, 2), (24, 1), (3, 1)])
def test_expansion_and_depthwise_run_as_one_step_matching_neon(drv, k, stride):
    g = _expansion_graph(k, stride)
    feeds = feeds_for(g, 5)
    ref = neon.NeonRunner(g).run(feeds)[g.outputs[0].tensor]
    with QpuModel(g, drv) as qm:
        assert [s.where for s in qm.steps] == ["qpu:expand_depthwise"]
        got = qm.run(feeds)[g.outputs[0].tensor]
    # K + 9 products a value through relu6: float32 rounding, far below 1e-5 of the range
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()


def test_expansion_with_too_many_input_channels_stays_two_steps(drv):
    # K = 32 weights leave registers for strips of one pixel: the two kernels apart are faster
    g = _expansion_graph(32)
    fused = passes.fuse_expand_depthwise(passes.optimise(g))
    assert scheduler.EXPAND_DEPTHWISE.reject(fused, fused.nodes[0]).startswith("K = 32")
    with QpuModel(g, drv) as qm:
        assert [s.where for s in qm.steps] == ["qpu:conv_pointwise", "qpu:conv_depthwise"]
