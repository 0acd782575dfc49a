"""The timing model held against published VideoCore IV measurements.

Each case runs a program written by this project the way the published benchmark's program
worked, on the emulator at the published V3D clock, and compares the modelled figure with the
published one: within +-TOLERANCE it passes. The sources are the project's research notes
(anchors.md): py-videocore's 12-thread SGEMM (A3) and Sugizaki's VPM DMA benchmarks on a Pi 2
(section 4b). `size="quick"` runs smaller problems of the same shape of work (the test suite's),
`"full"` the published sizes (`vc4infer bench --calibration`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np

#: how far a modelled figure may be from the published one and still count as calibrated
TOLERANCE = 0.25


@dataclass
class CalibrationResult:
    """One case: the modelled figure beside the published one (same unit)."""
    name: str
    unit: str
    modelled: float
    published: float
    source: str
    clock_hz: float

    @property
    def ratio(self) -> float:
        """modelled / published: above 1 the model is optimistic (too fast)."""
        return self.modelled / self.published

    @property
    def passed(self) -> bool:
        return abs(self.ratio - 1.0) <= TOLERANCE


def _sgemm(drv, size: str) -> float:
    """GFLOPS of C = A.B + C, 96x363 . 363x3072 on 12 QPUs (quick: 363x384), counted as the
    published example counts them (2pqr + 3pr)."""
    from qpu_kernels.bench_sgemm64 import sgemm64

    p, q, r = 96, 363, 3072 if size == "full" else 384
    rng = np.random.default_rng(0)
    a = rng.standard_normal((p, q)).astype(np.float32)
    b = rng.standard_normal((q, r)).astype(np.float32)
    c = rng.standard_normal((p, r)).astype(np.float32)
    out = sgemm64(drv, a, b, c, timeout=3600.0)
    reference = a.astype(np.float64) @ b + c
    if not np.allclose(out, reference, rtol=1e-4, atol=1e-3):
        raise AssertionError("the calibration SGEMM computed a wrong C")
    return (2 * p * q * r + 3 * p * r) / drv.last_stats.modelled_seconds / 1e9


def _dma(store: bool, rows: int, count_full: int) -> Callable:
    def run(drv, size: str) -> float:
        from qpu_kernels.bench_dma import dma_stream
        count = count_full if size == "full" else max(4, count_full // 16)
        return dma_stream(drv, store, rows, count) / 1e6
    return run


#: name -> (unit, published figure, source, V3D clock of the measurement, run(drv, size))
CASES: Dict[str, Tuple[str, float, str, float, Callable]] = {
    "sgemm": ("GFLOPS", 8.32, "py-videocore examples/sgemm.py, 12 threads, 96x363 . 363x3072 "
              "(README; VC4CL issue #91): anchors A3", 250e6, _sgemm),
    "dma read 1 row": ("MB/s", 200.0, "VPM DMA loads of one vector, Pi 2 (Sugizaki QV52 via "
                       "Stadelmann 2017): anchors 4b", 250e6, _dma(False, 1, 4096)),
    "dma read 16x16": ("MB/s", 690.0, "VPM DMA loads of 16 rows x 16 words, Pi 2 (Sugizaki, "
                       "blog QV52): anchors 4b", 250e6, _dma(False, 16, 1024)),
    "dma write 128 rows": ("MB/s", 1120.0, "VPM DMA stores of 128 vectors, Pi 2 (Sugizaki QV53 "
                           "via Stadelmann 2017): anchors 4b", 250e6, _dma(True, 128, 128)),
    "dma write 1 row": ("MB/s", 300.0, "VPM DMA stores of one vector, Pi 2 (same source): "
                        "anchors 4b", 250e6, _dma(True, 1, 4096)),
}


def run_calibration(size: str = "full", cases=tuple(CASES)) -> List[CalibrationResult]:
    """Run the named cases on fresh emu Drivers at their published clocks."""
    from hostside.driver import Driver

    results = []
    for name in cases:
        unit, published, source, clock_hz, run = CASES[name]
        with Driver(backend="emu", clock_hz=clock_hz) as drv:
            modelled = run(drv, size)
        results.append(CalibrationResult(name, unit, modelled, published, source, clock_hz))
    return results


def render(results: List[CalibrationResult]) -> str:
    """The table `vc4infer bench --calibration` prints."""
    lines = [f"{'case':<20} {'modelled':>12} {'published':>12} {'ratio':>7}  within +-"
             f"{TOLERANCE:.0%}  source"]
    for r in results:
        lines.append(f"{r.name:<20} {r.modelled:>8.2f} {r.unit:<3} {r.published:>8.2f} {r.unit:<3} "
                     f"{r.ratio:>7.2f}  {'pass' if r.passed else 'FAIL':<12}  {r.source} "
                     f"(at {r.clock_hz / 1e6:.0f} MHz)")
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} of {len(results)} cases within +-{TOLERANCE:.0%} (modelled figures: "
                 "the emulator's timing model, vc4infer.emu.timing)")
    return "\n".join(lines)
