"""hostside.neon.NeonRunner's prepared runs: the first run with given input shapes prepares every
kernel's numpy calls on the runner's buffers, later runs replay them. They must give what a
fresh run gives, hand the caller arrays of its own, follow new input shapes, and stay correct
when two threads share a runner; and the buffer pool that backs them."""
import threading

import numpy as np
import pytest

import vc4infer
from hostside import neon
from test_onnx_helpers import load_build_onnx, ort_run, rel_err

RNG = np.random.default_rng(99)


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """(model, path) of a small build_onnx MobileNet v2 (expand, depthwise of both strides,
    project, residual adds, global pool, classifier)."""
    build = load_build_onnx()
    path = str(tmp_path_factory.mktemp("runner") / "v2.onnx")
    build.write(build.mobilenet_v2(0.35, 64, seed=5), path)
    return vc4infer.load(path, backend="neon"), path


def _feeds(model, x):
    spec = model.input_spec
    return {spec.tensor: spec.to_internal(x)}


def test_replayed_runs_equal_fresh_runs(mobilenet):
    """Run after run, with new inputs, the prepared calls give exactly what a new runner's first
    (prepared while running) run gives, and onnxruntime's result; earlier results stay intact."""
    model, path = mobilenet
    runner = neon.NeonRunner(model.graph)
    out = model.output_spec.tensor
    kept = []
    for _ in range(3):
        x = RNG.standard_normal(model.input_spec.shape).astype(np.float32)
        got = runner.run(_feeds(model, x))[out]
        fresh = neon.NeonRunner(model.graph).run(_feeds(model, x))[out]
        np.testing.assert_array_equal(got, fresh)
        ref = ort_run(path, {"input": x})[0]
        assert rel_err(model.output_spec.from_internal(got), ref) < 1e-5
        kept.append((got, got.copy()))
    assert len(runner._prepared) == 1
    for got, copy in kept:
        np.testing.assert_array_equal(got, copy)


def test_keep_runs_node_by_node_beside_prepared_runs(mobilenet):
    """keep=True (every tensor, node by node) between prepared runs changes neither."""
    model, _ = mobilenet
    runner = neon.NeonRunner(model.graph)
    x = RNG.standard_normal(model.input_spec.shape).astype(np.float32)
    out = model.output_spec.tensor
    first = runner.run(_feeds(model, x))[out]
    env = runner.run(_feeds(model, x), keep=True)
    assert rel_err(env[out], first) < 1e-5
    np.testing.assert_array_equal(runner.run(_feeds(model, x))[out], first)


@pytest.mark.parametrize("max_prepared", [4, 1])
def test_new_input_shapes_are_prepared_anew(mobilenet, max_prepared):
    """A fully convolutional graph fed another image size gets its own prepared calls; both
    sizes keep giving the node-by-node results, also when the runner keeps only the last
    size's calls."""
    model, _ = mobilenet
    runner = neon.NeonRunner(model.graph)
    runner.MAX_PREPARED = max_prepared
    out = model.output_spec.tensor
    tensor = model.input_spec.tensor
    for _ in range(2):
        for size in (64, 48):
            x = RNG.standard_normal((1, size, size, 3)).astype(np.float32)
            got = runner.run({tensor: x})[out]
            ref = neon.NeonRunner(model.graph, fuse=False).run({tensor: x})[out]
            assert rel_err(got, ref) < 1e-5
    assert len(runner._prepared) == min(2, max_prepared)


def test_threads_sharing_a_runner(mobilenet):
    """While one thread replays the prepared calls on the runner's buffers, another one runs
    apart (its own buffers): every thread gets its own input's result."""
    model, _ = mobilenet
    runner = neon.NeonRunner(model.graph)
    out = model.output_spec.tensor
    xs = [RNG.standard_normal(model.input_spec.shape).astype(np.float32) for _ in range(4)]
    refs = [neon.NeonRunner(model.graph).run(_feeds(model, x))[out] for x in xs]
    errors = []

    def work(k):
        for _ in range(10):
            got = runner.run(_feeds(model, xs[k]))[out]
            if not np.array_equal(got, refs[k]):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_buffer_pool_reuses_memory_by_size():
    pool = neon.BufferPool()
    a = pool.get((10, 10))
    block = pool.block_of(a)
    assert block is not None and block.nbytes >= 400
    pool.put(a)
    b = pool.get((5, 19), np.float32)  # smaller, other shape: the same memory
    assert pool.block_of(b) is block and b.shape == (5, 19) and b.flags.c_contiguous
    c = pool.get((10, 10))  # b is in use: new memory
    assert pool.block_of(c) is not block and not np.shares_memory(b, c)
    assert pool.block_of(np.empty(3)) is None
    pool.put(b)
    big = pool.get((1000,))  # too large for the free block
    assert not np.shares_memory(big, block)
    tiny = pool.get((2,))  # too small for it: a block of its own
    assert pool.block_of(tiny) is not block
    foreign = np.zeros(64, np.float32)
    pool.put(foreign)  # any C-contiguous array's memory joins the pool
    assert np.shares_memory(pool.get((8, 8)), foreign)
