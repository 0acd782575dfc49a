"""The timing model against published VideoCore IV measurements (vc4infer.benchmarks.calibration),
at reduced sizes: every case within +-25% of its published figure (the SGEMM at 96x363 . 363x384
instead of . 363x3072; the full sizes are `vc4infer bench --calibration`)."""
import pytest
from click.testing import CliRunner

from vc4infer.benchmarks import calibration
from vc4infer.cli import main

DMA_CASES = [name for name in calibration.CASES if name.startswith("dma")]


@pytest.fixture(scope="module")
def results():
    return {r.name: r for r in calibration.run_calibration("quick")}


@pytest.mark.parametrize("name", DMA_CASES)
def test_dma_cases_reproduce_the_published_figures(results, name):
    r = results[name]
    assert r.unit == "MB/s" and r.clock_hz == 250e6
    assert r.passed, f"{name}: modelled {r.modelled:.0f} MB/s, published {r.published:.0f} MB/s"


def test_sgemm_case_is_within_tolerance(results):
    r = results["sgemm"]
    assert r.unit == "GFLOPS" and r.published == 8.32
    assert r.passed, f"sgemm: modelled {r.modelled:.2f} GFLOPS, published 8.32"


def test_a_case_outside_the_tolerance_fails():
    r = calibration.CalibrationResult("x", "MB/s", 126.0, 100.0, "s", 250e6)
    assert not r.passed and r.ratio == pytest.approx(1.26)
    assert calibration.CalibrationResult("x", "MB/s", 124.0, 100.0, "s", 250e6).passed


def test_the_cli_prints_every_case(monkeypatch):
    fixed = [calibration.CalibrationResult(name, unit, published * 1.1, published, source, clock)
             for name, (unit, published, source, clock, _) in calibration.CASES.items()]
    monkeypatch.setattr(calibration, "run_calibration", lambda size: fixed)
    out = CliRunner().invoke(main, ["bench", "--calibration", "--quick"]).output
    for name in calibration.CASES:
        assert name in out
    assert "1.10" in out and f"{len(fixed)} of {len(fixed)} cases within +-25%" in out
