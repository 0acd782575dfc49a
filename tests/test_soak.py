"""A long classification loop keeps its memory (issue 14): Model.classify on the NEON backend,
frame after frame from the demo photos; the resident set after warm-up may not grow by more than
5 MB. (The camera command's own soak figure, 3,000 frames, is in the README.)"""
import itertools
from pathlib import Path

import vc4infer

IMAGES = sorted(p for p in (Path(__file__).parents[1] / "demos" / "images").iterdir()
                if p.suffix in (".png", ".jpg"))


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_classify_in_a_loop_keeps_its_memory():
    model = vc4infer.load("mobilenet_v1", backend="neon")
    frames = itertools.cycle(IMAGES)
    for _ in range(20):                                  # warm-up: caches, allocator pools
        model.classify(str(next(frames)), top=3)
    before = _rss_kb()
    for _ in range(200):
        top = model.classify(str(next(frames)), top=3)
        assert len(top) == 3
    growth = _rss_kb() - before
    assert growth <= 5 * 1024, f"resident set grew {growth} kB over 200 frames"
