"""Benchmark (not a test): the NEON (numpy) runtime against onnxruntime, both on one thread, on
MobileNet v1 and v2 1.0/224 built by models/build_onnx.py, in the same process.

    python -m hostside.bench_neon [--runs 30] [--models v1,v2] [--resolution 224]

The two runtimes are called alternately, so both see the same load on a shared machine. For each
it prints the median wall time and the median CPU time of the calling thread (both runtimes
compute in that thread when limited to one thread; CPU time leaves out the time the thread
waited for a core, so it is the steadier figure when other work runs), the ratios neon /
onnxruntime, and the largest output difference relative to the output range. numpy's BLAS is
limited to one thread here (OPENBLAS_NUM_THREADS etc. are set before numpy loads, unless already
set), like onnxruntime's intra-op pool."""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _interleaved(fns: list, runs: int) -> list:
    """Call each function in turn `runs` times (after two warm-up rounds); per function an
    array of (wall seconds, thread CPU seconds) rows."""
    for _ in range(2):
        for fn in fns:
            fn()
    out = [[] for _ in fns]
    for _ in range(runs):
        for k, fn in enumerate(fns):
            w, c = time.perf_counter(), time.thread_time()
            fn()
            out[k].append((time.perf_counter() - w, time.thread_time() - c))
    return [np.array(rows) for rows in out]


def _load_builder():
    """models/build_onnx.py of the source tree this package runs from."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "models" / "build_onnx.py"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run the benchmark from a vc4infer source checkout")
    spec = importlib.util.spec_from_file_location("build_onnx", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(version: str, resolution: int, runs: int, workdir: str) -> dict:
    """Time one MobileNet in both runtimes; returns the figures in milliseconds."""
    import onnxruntime as ort

    import vc4infer
    build_onnx = _load_builder()
    model = getattr(build_onnx, f"mobilenet_{version}")(1.0, resolution)
    path = build_onnx.write(model, os.path.join(workdir, f"mobilenet_{version}.onnx"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    m = vc4infer.load(path, backend="neon")
    x = np.random.default_rng(0).standard_normal(m.input_spec.shape).astype(np.float32)
    ref = sess.run(None, {"input": x})[0]
    got = m.run(x)
    t_ort, t_neon = _interleaved([lambda: sess.run(None, {"input": x}), lambda: m.run(x)], runs)
    med_ort, med_neon = np.median(t_ort, axis=0) * 1e3, np.median(t_neon, axis=0) * 1e3
    return {"model": f"mobilenet_{version} 1.0/{resolution}", "macs": m.graph.total_macs(),
            "ort_wall_ms": med_ort[0], "ort_cpu_ms": med_ort[1],
            "neon_wall_ms": med_neon[0], "neon_cpu_ms": med_neon[1],
            "max_err_rel": float(np.abs(got - ref).max() / (ref.max() - ref.min()))}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="NEON runtime vs onnxruntime, one thread each")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--models", default="v1,v2")
    p.add_argument("--resolution", type=int, default=224)
    a = p.parse_args(argv)
    import onnxruntime as ort
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}; "
          f"numpy {np.__version__}, onnxruntime {ort.__version__}; one thread each; median of "
          f"{a.runs} alternating runs")
    print(f"{'model':<24} {'MACs':>9} | {'onnxruntime':^17} | {'neon':^17} | {'neon/ort':^13} | "
          f"{'max err':>8}")
    print(f"{'':<24} {'':>9} | {'wall':>8} {'cpu':>8} | {'wall':>8} {'cpu':>8} | {'wall':>6} "
          f"{'cpu':>6} |")
    with tempfile.TemporaryDirectory() as workdir:
        for version in a.models.split(","):
            r = bench(version.strip(), a.resolution, a.runs, workdir)
            print(f"{r['model']:<24} {r['macs'] / 1e6:>7.1f} M | "
                  f"{r['ort_wall_ms']:>5.1f} ms {r['ort_cpu_ms']:>5.1f} ms | "
                  f"{r['neon_wall_ms']:>5.1f} ms {r['neon_cpu_ms']:>5.1f} ms | "
                  f"{r['neon_wall_ms'] / r['ort_wall_ms']:>5.2f}x "
                  f"{r['neon_cpu_ms'] / r['ort_cpu_ms']:>5.2f}x | {r['max_err_rel']:>8.1e}")
    print("max err: largest |neon - onnxruntime| relative to the range of onnxruntime's output")


if __name__ == "__main__":
    main()
