"""The commands a Pi user runs first, through the hw backend on a simulated board
(VC4INFER_SIMULATED_BOARD): selftest, classify and bench, as the README tells users without a Pi."""
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hostside.driver import simboard
from vc4infer.cli import main
from vc4infer.graph import zoo


IMAGES = Path(__file__).resolve().parents[1] / "demos" / "images"


@pytest.mark.parametrize("board, mhz", [("pi3", 400), ("pi-zero", 300), ("pi2:arm64", 250)])
def test_selftest_passes_on_a_simulated_board(monkeypatch, board, mhz):
    monkeypatch.setenv(simboard.ENV_VAR, board)
    result = CliRunner().invoke(main, ["selftest", "--backend", "hw", "--quick"])
    assert result.exit_code == 0, result.output
    assert f"backend: hw on a simulated board; modelled times are for its V3D clock of {mhz} MHz" \
        in result.output
    assert re.search(rf"\d+ passed, 0 failed .*modelled QPU time .* at {mhz} MHz", result.output)


def _top5(args):
    result = CliRunner().invoke(main, ["classify", str(IMAGES / "chelsea.png"), "--top", "5", *args])
    assert result.exit_code == 0, result.output
    return [line.split(None, 2)[1:] for line in result.output.splitlines() if re.match(r"\s+\d\.", line)]


@pytest.mark.parametrize("board", ["pi3", "pi-zero:no-vcsm"])
def test_classify_on_a_simulated_board_gives_the_neon_top5(monkeypatch, board):
    entry = zoo.get("mobilenet_v2")
    if zoo.local_path(entry) is None:
        pytest.skip(f"mobilenet_v2 needs {entry.package}: {entry.pip}")
    neon = _top5(["--model", "mobilenet_v2", "--backend", "neon"])
    monkeypatch.setenv(simboard.ENV_VAR, board)
    hw = _top5(["--model", "mobilenet_v2", "--backend", "hw"])
    assert [row[1].split()[0] for row in hw] == [row[1].split()[0] for row in neon]   # classes
    assert len(hw) == 5


def _bench(model, backend, tmp_path, *extra):
    out = tmp_path / f"{backend}.json"
    result = CliRunner().invoke(main, ["bench", "--model", model, "--backend", backend, "--runs", "1",
                                       "--json", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


@pytest.mark.parametrize("board, mhz", [("pi3", 400), ("pi-zero", 300)])
def test_bench_on_a_simulated_board_models_what_the_emulator_does(monkeypatch, tmp_path, small_v2,
                                                                  board, mhz):
    emu = _bench(small_v2, "emu", tmp_path, "--clock", str(mhz))
    monkeypatch.setenv(simboard.ENV_VAR, board)
    hw = _bench(small_v2, "hw", tmp_path)
    assert hw["backend"] == "hw" and hw["times"] == "modelled" and hw["clock_mhz"] == mhz
    # the same timing model; the buffers sit elsewhere (the hw backend rounds blocks up to pages
    # and keeps a control-list page), so cache sets differ a little
    assert hw["totals"]["ms"] == pytest.approx(emu["totals"]["ms"], rel=1e-3)
    assert [r["layer"] for r in hw["layers"]] == [r["layer"] for r in emu["layers"]]
    assert [r["ms"] for r in hw["layers"]] == pytest.approx([r["ms"] for r in emu["layers"]], rel=0.02)


@pytest.mark.parametrize("board, says, code", [
    ("pi3:kms", "the firmware refused to power on the QPUs", 5),
    ("pi-zero:gpu_mem=20:no-vcsm", "gpu_mem is too small or used up. Fix: raise `gpu_mem=`", 5),
    ("pi3:cma=20", "the CMA pool cannot hold 17698816 bytes for array#2 uint8[17696064]. Fix: "
                   "enlarge it with `dtoverlay=cma,cma-256`", 5),
])
def test_a_board_fault_is_one_line_with_its_fix(monkeypatch, board, says, code):
    entry = zoo.get("mobilenet_v1")
    if zoo.local_path(entry) is None:
        pytest.skip(f"mobilenet_v1 needs {entry.package}: {entry.pip}")
    monkeypatch.setenv(simboard.ENV_VAR, board)
    result = CliRunner().invoke(main, ["classify", str(IMAGES / "chelsea.png"), "--model",
                                       "mobilenet_v1", "--backend", "hw"])
    assert result.exit_code == code, result.output
    assert result.output.count("\n") == 1 and says in result.output
    assert "Traceback" not in result.output


def test_selftest_on_a_board_whose_v3d_the_kernel_holds_is_one_line_with_exit_code_5(monkeypatch):
    monkeypatch.setenv(simboard.ENV_VAR, "pi3:kms")
    result = CliRunner().invoke(main, ["selftest", "--backend", "hw", "--quick"])
    assert result.exit_code == 5, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith("Error: cannot open the hw backend: the firmware refused")


def test_info_describes_the_simulated_board(monkeypatch):
    monkeypatch.setenv(simboard.ENV_VAR, "pi-zero:no-vcsm")
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Simulated: pi-zero:no-vcsm (VC4INFER_SIMULATED_BOARD)" in text
    assert "Board: Raspberry Pi Zero Rev 1.2 (type Zero, revision 900092)" in text
    assert "V3D clock: 300 MHz now" in text and "the firmware reports 128 MB" in text
    assert "/dev/vcsm-cma missing" in text
    assert "Backend hw: usable (GPU memory via mailbox + /dev/mem)" in text and "auto picks: hw" in text
