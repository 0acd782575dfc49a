"""`vc4infer camera --model NAME`: classify live Pi camera frames (or a directory of images) and
print, per frame, the top classes, the capture / preprocess / inference latency and the running
frame rate; Ctrl-C (or the end of --frames / of the images) prints a summary."""
from __future__ import annotations

import collections
import statistics
import time
from dataclasses import dataclass, field
from typing import List, Optional

import click

from vc4infer.commands.classify import BACKEND_CHOICES

PHASES = ("capture", "preprocess", "inference")


#: frames whose latencies the summary's median is taken over (the mean covers every frame):
#: a bounded window keeps memory flat over runs of any length
MEDIAN_WINDOW = 1024


@dataclass
class Timings:
    """Per-phase latency statistics: the count and sums of every frame, and the last
    MEDIAN_WINDOW frames' seconds (for the median)."""
    frames: int = 0
    sums: dict = field(default_factory=lambda: {p: 0.0 for p in PHASES + ("total",)})
    recent: dict = field(default_factory=lambda: {p: collections.deque(maxlen=MEDIAN_WINDOW)
                                                  for p in PHASES + ("total",)})

    def add(self, **seconds: float) -> None:
        seconds = dict(seconds, total=sum(seconds[p] for p in PHASES))
        self.frames += 1
        for phase in PHASES + ("total",):
            self.sums[phase] += seconds[phase]
            self.recent[phase].append(seconds[phase])

    def mean(self, phase: str) -> float:
        return self.sums[phase] / self.frames

    def median(self, phase: str) -> float:
        return statistics.median(self.recent[phase])


def classify_frame(model, image, top: int):
    """(top classes as Model.classify gives them, preprocess seconds, inference seconds)."""
    from vc4infer.graph.preprocess import preprocess
    start = time.perf_counter()
    x = preprocess(image, model)
    prepared = time.perf_counter()
    y = model.run(x)
    done = time.perf_counter()
    results = model.top_classes(y, top)
    return results, prepared - start, done - prepared


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def _frame_line(frame, results, capture: float, prep: float, infer: float, fps: float) -> str:
    from vc4infer.graph.labels import short_name
    best = ", ".join(f"{short_name(label) if label is not None else f'class {i}'} {p * 100:.1f}%"
                     for i, label, p in results)
    name = f" {frame.name}" if frame.name else ""
    return (f"frame {frame.index}{name}: {best} | capture {_ms(capture)} ms, preprocess "
            f"{_ms(prep)} ms, inference {_ms(infer)} ms | {fps:.2f} fps")


def _summary(timings: Timings, elapsed: float, why: str, backend: str, description: str,
             dropped: int) -> List[str]:
    lines = [f"stopped: {why}",
             f"frames: {timings.frames}; source: {description}"
             + (f" ({dropped} newer camera frames replaced older ones unseen)" if dropped else ""),
             f"backend: {backend}"]
    if timings.frames:
        window = "" if timings.frames <= MEDIAN_WINDOW else f" (median of the last {MEDIAN_WINDOW})"
        lines.append(f"{'latency (ms)':<14}{'mean':>9}{'median':>9}{window}")
        for name in PHASES + ("total",):
            lines.append(f"{name:<14}{_ms(timings.mean(name)):>9}{_ms(timings.median(name)):>9}")
        lines.append(f"throughput: {timings.frames / elapsed:.2f} fps over {elapsed:.1f} s")
    return lines


@click.command()
@click.option("--model", "-m", default="mobilenet_v1", show_default=True,
              help="zoo name (see `vc4infer models list`) or model file (.tflite, .onnx, .pb, .pth)")
@click.option("--backend", "-b", type=click.Choice(BACKEND_CHOICES), default="auto",
              show_default=True, help="where the network runs")
@click.option("--top", "-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="classes printed per frame")
@click.option("--frames", "-n", type=click.IntRange(min=1), default=None,
              help="stop after N frames (default: until Ctrl-C or the end of the images)")
@click.option("--source", "-s", default="picamera", show_default=True, metavar="picamera|PATH",
              help="the Pi camera, or a directory of images / a multi-frame GIF or TIFF")
@click.option("--resolution", "-r", default="320x240", show_default=True, metavar="WxH",
              help="camera capture size (files are used at their own size)")
@click.option("--loop", is_flag=True, help="with a PATH source: start over at the end")
def camera(model: str, backend: str, top: int, frames: Optional[int], source: str,
           resolution: str, loop: bool) -> None:
    """Classify camera frames live: top classes, per-frame latency and frame rate."""
    from vc4infer.camera import open_source, parse_resolution
    from vc4infer.commands.classify import _load
    from vc4infer.cli import fail
    from vc4infer.errors import Vc4InferError
    try:
        size = parse_resolution(resolution)
        stream = open_source(source, resolution=size, loop=loop)
    except Vc4InferError as exc:                 # a source that cannot be read, no camera
        fail(exc)
    try:
        loaded = _load(model, backend, None, None)
    except click.ClickException:
        stream.source.close()                    # release the camera opened above
        raise
    click.echo(f"model {model} on backend {loaded.backend}; source: {stream.description}; "
               f"Ctrl-C to stop")
    timings = Timings()
    why = "end of the images"
    start = time.perf_counter()
    try:
        with stream:
            start = time.perf_counter()          # the frame rate leaves out the camera start-up
            while frames is None or timings.frames < frames:
                frame = stream.next_frame()
                if frame is None:
                    break
                results, prep, infer = classify_frame(loaded, frame.image, top)
                timings.add(capture=frame.capture_seconds, preprocess=prep, inference=infer)
                fps = timings.frames / (time.perf_counter() - start)
                click.echo(_frame_line(frame, results, frame.capture_seconds, prep, infer, fps))
            else:
                why = f"{frames} frames done"
    except KeyboardInterrupt:
        why = "Ctrl-C"
    except Vc4InferError as exc:                 # a frame that cannot be read, the model failing
        fail(exc)
    elapsed = time.perf_counter() - start
    for line in _summary(timings, elapsed, why, loaded.backend, stream.description,
                         stream.dropped):
        click.echo(line)
