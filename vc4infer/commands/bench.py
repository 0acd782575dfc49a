"""`vc4infer bench`: speed figures. `--emulator` measures the emulator itself (emulated QPU
instructions per second of host time) on an SGEMM-like and a DMA-heavy 12-QPU kernel;
`--model NAME` times a model per layer and in total: measured on a Pi (`hw`) or on this machine
(`neon`), and on the emulator as the timing model's modelled Pi time; `--startup` times new
`vc4infer classify --backend emu` processes, cold (compiling the emulator) and warm.

Each kind of benchmark is one entry of BENCHMARKS (flag name -> runner), so other kinds (for
example a whole model) are added as another flag and runner without touching these."""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, Optional

import click
import numpy as np


def _host() -> str:
    from vc4infer.report import this_host
    return this_host()


def _emulator(clock_mhz: int, quick: bool) -> None:
    from vc4infer.benchmarks.emulator import run_emulator_benchmarks
    from vc4infer.emu.jit import NUMBA_ENABLED

    click.echo(f"emulator benchmark (numba {'on' if NUMBA_ENABLED else 'OFF: plain Python'}) on one "
               f"core of this {_host()}; modelled V3D clock {clock_mhz} MHz")
    for r in run_emulator_benchmarks(clock_mhz * 1e6, "quick" if quick else "full",
                                     repeats=1 if quick else 5):
        click.echo(f"  {r.name} on {r.n_qpus} QPUs: {r.instructions} instructions in "
                   f"{r.host_seconds:.3f} s CPU ({r.wall_seconds:.3f} s wall) = "
                   f"{r.instructions_per_second / 1e6:.2f} M emulated instructions/s; "
                   f"modelled Pi time {r.modelled_seconds * 1e3:.3f} ms; "
                   f"max |error| vs numpy {r.max_abs_error:.2e}")


def _check_writable(option: str, path: str) -> None:
    """A usage error unless `path` names a file that can be written in an existing directory."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        why = ("is a directory" if os.path.isdir(path) else
               f"{folder} does not exist" if not os.path.isdir(folder) else f"{folder} is not writable")
        raise click.BadParameter(f"{path}: {why}; give a file path in a writable directory",
                                 param_hint=option)


def _model(name: str, backend: str, clock_mhz: int, runs: int, json_path: Optional[str],
           plot_path: Optional[str]) -> None:
    import json

    from vc4infer import report as reporting
    from vc4infer.cli import CliError, fail
    from vc4infer.commands.classify import load_model
    from vc4infer.errors import InputError

    options = {"clock_hz": clock_mhz * 1e6} if backend == "emu" else {}
    start = time.perf_counter()
    model = load_model(name, backend, driver_options=options)
    load_seconds = time.perf_counter() - start
    spec = model.input_spec
    x = _random_input(np.random.default_rng(0), spec.shape, np.dtype(spec.dtype))
    if backend == "hw" and model.modelled and model.clock_hz:   # a simulated board's own clock
        clock_mhz = round(model.clock_hz / 1e6)
    model.run(x)                                     # warm-up: caches, page faults
    host = _host()
    reports = [reporting.build(model, name, x, clock_mhz, host) for _ in range(runs)]
    last = reports[-1]
    click.echo(f"loaded in {load_seconds:.2f} s; {runs} run(s); host times below measured on this "
               f"{host}")
    click.echo(reporting.render(last))
    host_totals = [sum(r.host_wall_ms for r in rep.rows) for rep in reports]
    click.echo(f"this host: median {np.median(host_totals):.1f} ms per inference "
               f"({'emulating the QPUs' if model.backend == 'emu' else model.backend})")
    try:
        if json_path:
            with open(json_path, "w") as f:
                json.dump(last.to_json(), f, indent=1)
            click.echo(f"wrote {json_path}")
        if plot_path:
            reporting.plot(last, plot_path)
            click.echo(f"wrote {plot_path}")
    except RuntimeError as exc:                      # matplotlib missing: this machine's lack
        raise CliError(str(exc), exit_code=5) from exc
    except OSError as exc:
        fail(InputError(f"cannot write {exc.filename}: {exc.strerror}"))


#: the command whose start-up `--startup` times: the README's Quick start classification
STARTUP_MODEL = "mobilenet_v2"


def _startup(quick: bool) -> None:
    """Time `vc4infer classify IMAGE --model mobilenet_v2 --backend emu` as new processes: cold (numba
    compiles the emulator into a temporary cache; the user's is left alone) and warm (the user's
    cache), each to the entry of the compiled emulator loop and to the printed result."""
    import tempfile

    host = _host()
    click.echo(f"start-up of `vc4infer classify IMAGE --model {STARTUP_MODEL} --backend emu`, new "
               f"processes on this {host} (measured, not modelled)")
    with tempfile.TemporaryDirectory(prefix="vc4infer-startup-") as tmp:
        image = os.path.join(tmp, "noise.png")
        _noise_image(image)
        runs = [] if quick else [("cold", _start_process(image, tmp, os.path.join(tmp, "numba")))]
        warm = _start_process(image, tmp, cache=None)
        if warm["compiled"]:             # the user's cache was empty or stale: that run filled it
            warm = _start_process(image, tmp, cache=None)
        runs.append(("warm", warm))
    for kind, result in runs:
        how = "compiled the emulator" if result["compiled"] else "loaded the compiled emulator"
        click.echo(f"  {kind} start: {result['seconds_to_loop']:.2f} s to the emulator loop "
                   f"({how}), {result['seconds_total']:.2f} s to the printed result")


def _noise_image(path: str) -> None:
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _start_process(image: str, tmp: str, cache: Optional[str]) -> dict:
    """One classify process; returns seconds_to_loop, compiled (from VC4INFER_STARTUP_REPORT) and
    seconds_total. `cache`: numba cache folder, None for the user's own."""
    import json
    import subprocess
    import sys

    report = os.path.join(tmp, "startup.jsonl")
    if os.path.exists(report):
        os.remove(report)
    env = dict(os.environ, VC4INFER_STARTUP_REPORT=report)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    command = [sys.executable, "-m", "vc4infer.cli", "classify", image, "--model", STARTUP_MODEL,
               "--backend", "emu", "--top", "1"]
    start = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    total = time.time() - start
    if done.returncode != 0 or not os.path.exists(report):
        raise click.ClickException(f"the start-up probe `{' '.join(command[2:])}` failed "
                                   f"(exit {done.returncode}): {done.stderr.strip()[-800:]}")
    with open(report) as f:
        result = json.loads(f.readline())
    result["seconds_total"] = total
    return result


def _random_input(rng, shape, dtype):
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _calibration(quick: bool) -> None:
    """The timing model against published Pi measurements (vc4infer.benchmarks.calibration)."""
    from vc4infer.benchmarks.calibration import render, run_calibration

    click.echo(render(run_calibration("quick" if quick else "full")))


BENCHMARKS: Dict[str, Callable[..., None]] = {"emulator": _emulator, "startup": _startup,
                                              "calibration": _calibration}


@click.command()
@click.option("--emulator", is_flag=True, help="Measure the emulator's speed (instructions per second).")
@click.option("--startup", is_flag=True,
              help="Time new `vc4infer classify --backend emu` processes to the emulator and the "
                   "result: cold (compiling, in a temporary cache) and warm; --quick: warm only.")
@click.option("--calibration", is_flag=True,
              help="Hold the emulator's timing model against published Pi measurements (SGEMM, "
                   "VPM DMA): modelled vs published figure, ratio, pass within +-25%.")
@click.option("--model", "model_name", metavar="NAME|PATH",
              help="Time a model per layer and in total (zoo name or model file).")
@click.option("--backend", type=click.Choice(["auto", "neon", "emu", "hw"]), default="auto",
              show_default=True, help="Where --model runs (auto: hw on a Pi, else neon).")
@click.option("--runs", type=click.IntRange(1), default=3, show_default=True,
              help="Timed inferences for --model (after one warm-up run).")
@click.option("--clock", "clock_mhz", type=click.Choice(["250", "300", "400"]), default="250",
              show_default=True, help="V3D clock (MHz) for the modelled Pi times.")
@click.option("--quick", is_flag=True, help="Small problem sizes, one timed run (a smoke test).")
@click.option("--json", "json_path", metavar="FILE", help="--model: write the report as JSON.")
@click.option("--plot", "plot_path", metavar="FILE.png",
              help="--model: draw the per-layer times with their QPU floor (needs matplotlib).")
def bench(emulator: bool, startup: bool, calibration: bool, model_name: Optional[str], backend: str,
          runs: int, clock_mhz: str, quick: bool, json_path: Optional[str],
          plot_path: Optional[str]) -> None:
    """Benchmarks. Times from the emulator's timing model are labelled modelled."""
    if not emulator and not startup and not calibration and not model_name:
        raise click.UsageError("choose what to benchmark: --emulator, --startup, --calibration "
                               "and/or --model NAME")
    if (json_path or plot_path) and not model_name:
        raise click.UsageError("--json and --plot report on --model NAME")
    for option, path in (("--json", json_path), ("--plot", plot_path)):
        if path:
            _check_writable(option, path)          # before the run, not after it
    if emulator:
        BENCHMARKS["emulator"](int(clock_mhz), quick)
    if startup:
        BENCHMARKS["startup"](quick)
    if calibration:
        BENCHMARKS["calibration"](quick)
    if model_name:
        _model(model_name, backend, int(clock_mhz), 1 if quick else runs, json_path, plot_path)
