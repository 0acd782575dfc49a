"""Benchmark (not a test): the NEON (numpy) runtime against onnxruntime, both on one thread, on
MobileNet v1 and v2 1.0/224 built by models/build_onnx.py, in the same process.

    python -m vc4infer.benchmarks.neon [--runs 30] [--models v1,v2] [--resolution 224]

Made for a shared machine: the two runtimes are called alternately (which one goes first
alternates too), so both see the same load; every call is timed by wall clock and by the CPU
time of the calling thread (both runtimes compute in that thread when limited to one thread;
CPU time leaves out the time the thread waited for a core, so it is the steadier figure when
other work runs). Printed per model: the best (minimum) and the median of each, the ratios
neon / onnxruntime of the best and of the medians, and the largest output difference relative
to the output range. The header gives the machine, its load average before and after, and
numpy's BLAS and SIMD build. numpy's BLAS is limited to one thread here (OPENBLAS_NUM_THREADS
etc. are set before numpy loads, unless already set), like onnxruntime's intra-op pool."""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402


def _interleaved(fns: list, runs: int) -> list:
    """Call the functions alternately `runs` times (after two warm-up rounds), reversing their
    order every other round; per function an array of (wall seconds, thread CPU seconds)
    rows."""
    for _ in range(2):
        for fn in fns:
            fn()
    out = [[] for _ in fns]
    for r in range(runs):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for k in order:
            w, c = time.perf_counter(), time.thread_time()
            fns[k]()
            out[k].append((time.perf_counter() - w, time.thread_time() - c))
    return [np.array(rows) for rows in out]


def _load_builder():
    """models/build_onnx.py of the source tree this package runs from."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "models" / "build_onnx.py"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run the benchmark from a vc4infer source checkout")
    spec = importlib.util.spec_from_file_location("build_onnx", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench(version: str, resolution: int, runs: int, workdir: str) -> dict:
    """Time one MobileNet in both runtimes; returns the figures in milliseconds: per runtime
    "best" and "median" of (wall, cpu)."""
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
    out = {"model": f"mobilenet_{version} 1.0/{resolution}", "macs": m.graph.total_macs(),
           "max_err_rel": float(np.abs(got - ref).max() / (ref.max() - ref.min()))}
    for name, t in (("ort", t_ort), ("neon", t_neon)):
        out[name] = {"best": t.min(axis=0) * 1e3, "median": np.median(t, axis=0) * 1e3}
    return out


def _machine() -> str:
    """CPU model, core count and load average."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    cpu += ", " + line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, load average {_load()}"


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def _numpy_build() -> str:
    """numpy's version, BLAS and SIMD extensions (and BLAS threads, if threadpoolctl is there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # show_config warns when pyyaml is missing
        cfg = np.show_config(mode="dicts")
    blas = cfg.get("Build Dependencies", {}).get("blas", {})
    simd = cfg.get("SIMD Extensions", {})
    text = (f"numpy {np.__version__}, BLAS {blas.get('name', '?')} {blas.get('version', '')}"
            f" ({blas.get('openblas configuration', '').strip()}), SIMD baseline "
            f"{','.join(simd.get('baseline', []))} + found {','.join(simd.get('found', []))}")
    try:
        import threadpoolctl
    except ImportError:
        return text + f", OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    pools = threadpoolctl.threadpool_info()
    return text + ", threads " + ", ".join(f"{p['internal_api']}={p['num_threads']}"
                                           for p in pools)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="NEON runtime vs onnxruntime, one thread each")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--models", default="v1,v2")
    p.add_argument("--resolution", type=int, default=224)
    a = p.parse_args(argv)
    import onnxruntime as ort
    print(f"machine: {_machine()}")
    print(f"{_numpy_build()}; onnxruntime {ort.__version__}")
    print(f"one thread each; {a.runs} alternating runs per model; best = minimum, median")
    print(f"{'model':<24} {'':>6} | {'onnxruntime':^15} | {'neon':^15} | {'neon/ort':^11} | "
          f"{'max err':>7}")
    print(f"{'':<24} {'':>6} | {'wall':>7} {'cpu':>7} | {'wall':>7} {'cpu':>7} | {'wall':>5} "
          f"{'cpu':>5} |")
    with tempfile.TemporaryDirectory() as workdir:
        for version in a.models.split(","):
            r = bench(version.strip(), a.resolution, a.runs, workdir)
            for stat in ("best", "median"):
                o, n = r["ort"][stat], r["neon"][stat]
                label = r["model"] if stat == "best" else f"{r['macs'] / 1e6:.1f} MMACs"
                err = f"{r['max_err_rel']:>7.1e}" if stat == "best" else ""
                print(f"{label:<24} {stat:>6} | {o[0]:>7.2f} {o[1]:>7.2f} | "
                      f"{n[0]:>7.2f} {n[1]:>7.2f} | {n[0] / o[0]:>5.2f} {n[1] / o[1]:>5.2f} | "
                      f"{err}")
    print(f"times in ms; load average after: {_load()}")
    print("max err: largest |neon - onnxruntime| relative to the range of onnxruntime's output")


if __name__ == "__main__":
    main()
