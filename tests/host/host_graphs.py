"""Graphs the host tests share: small IR graphs built in code and MobileNets built by
models/build_onnx.py and models/build_tflite.py, imported by vc4infer (cached per process)."""
import functools
import importlib.util
import os
import sys
import tempfile

import numpy as np
from hypothesis import strategies as st

from vc4infer.graph.ir import Graph

RNG = np.random.default_rng(2024)


def rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def conv_graph(h=6, w=6, c=5, o=8, k=3, **conv):
    """x -> conv2d (random weights and bias); returns (graph, y)."""
    g = Graph()
    g.add_input("x", (1, h, w, c), "float32")
    g.add_constant("w", rand(o, k, k, c // conv.get("groups", 1), scale=0.3))
    g.add_constant("b", rand(o, scale=0.1))
    (y,) = g.add_node("conv2d", ["x", "w", "b"], name="conv", **conv)
    return g, y


def add_bn(g, x, name="bn"):
    c = g.tensors[x].shape[-1]
    gamma = g.add_constant(f"{name}:g", RNG.uniform(0.5, 1.5, c).astype(np.float32))
    beta = g.add_constant(f"{name}:b", rand(c, scale=0.1))
    mean = g.add_constant(f"{name}:m", rand(c, scale=0.1))
    var = g.add_constant(f"{name}:v", RNG.uniform(0.5, 1.5, c).astype(np.float32))
    (y,) = g.add_node("batch_norm", [x, gamma, beta, mean, var], name=name, epsilon=1e-3)
    return y


_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def builder(name):
    """models/<name>.py loaded by path (the repository root need not be on sys.path)."""
    key = f"vc4_models_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(_ROOT, "models", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module      # before exec: its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[key]


def feeds_for(g, seed=0):
    rng = np.random.default_rng(seed)
    return {s.tensor: rng.standard_normal(g.tensors[s.tensor].shape).astype(np.float32)
            for s in g.inputs}


#: model files the helpers below write, removed when the test process ends
_FILES = tempfile.TemporaryDirectory(prefix="vc4host")


@functools.lru_cache(maxsize=None)
def onnx_mobilenet(version, alpha=0.25, resolution=96, seed=3):
    """(graph, path) of a build_onnx MobileNet imported by vc4infer."""
    import vc4infer
    build = builder("build_onnx")
    model = getattr(build, f"mobilenet_{version}")(alpha, resolution, seed=seed)
    path = os.path.join(_FILES.name, f"{version}-{alpha}-{resolution}-{seed}.onnx")
    build.write(model, path)
    return vc4infer.load(path, backend="neon").graph, path


@functools.lru_cache(maxsize=None)
def tflite_mobilenet(version, alpha=0.25, size=96, dtype="float32"):
    """(graph, model bytes) of a build_tflite MobileNet imported by vc4infer."""
    import vc4infer
    build = builder("build_tflite")
    data = build.build_mobilenet(version, alpha, size, dtype)
    path = os.path.join(_FILES.name, f"{version}-{alpha}-{size}-{dtype}.tflite")
    with open(path, "wb") as f:
        f.write(data)
    return vc4infer.load(path, backend="neon").graph, data


@st.composite
def random_graphs(draw):
    """Random DAGs over (1, 4, 4, C) activations: elementwise ops, 1x1 convs, concats, views
    (reshape round trips), several graph outputs."""
    g = Graph()
    acts = [g.add_input("x", (1, 4, 4, draw(st.sampled_from([1, 3, 4, 8]))), "float32").tensor]
    n = draw(st.integers(1, 14))
    for i in range(n):
        # convs twice as likely: with 2+ input channels they are the steps that reach the QPUs
        kind = draw(st.sampled_from(["relu", "add", "conv", "conv", "concat", "view", "sigmoid"]))
        a = draw(st.sampled_from(acts))
        ca = g.tensors[a].shape[3]
        if kind in ("relu", "sigmoid"):
            (y,) = g.add_node(kind, [a])
        elif kind == "add":
            same = [t for t in acts if g.tensors[t].shape == g.tensors[a].shape]
            (y,) = g.add_node("add", [a, draw(st.sampled_from(same))])
        elif kind == "conv":
            co = draw(st.integers(1, 9))
            w = g.add_constant(f"w{i}", rand(co, 1, 1, ca))
            (y,) = g.add_node("conv2d", [a, w])
        elif kind == "concat":
            (y,) = g.add_node("concat", [a, draw(st.sampled_from(acts))], axis=3)
        else:
            (f,) = g.add_node("reshape", [a], shape=(1, 16 * ca))
            (r,) = g.add_node("relu", [f])
            (y,) = g.add_node("reshape", [r], shape=(1, 4, 4, ca))
        acts.append(y)
    produced = acts[1:]
    outs = draw(st.lists(st.sampled_from(produced), max_size=3, unique=True))
    for t in dict.fromkeys(outs + [produced[-1]]):
        g.add_output(t)
    return g
