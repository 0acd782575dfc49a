"""`vc4infer camera --model NAME`: classify live Pi camera frames (or a directory of images) and
print, per frame, the top classes, the capture / preprocess / inference latency and the running
frame rate; Ctrl-C (or the end of --frames / of the images) prints a summary."""
from __future__ import annotations

import collections
import contextlib
import signal
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import click

from vc4infer.commands.classify import BACKEND_CHOICES

PHASES = ("capture", "preprocess", "inference")
#: `--web` without an address (vc4infer.webview.DEFAULT_PORT, without importing it)
DEFAULT_WEB_PORT = 8000


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
    """(top classes as Model.classify gives them, preprocess seconds, inference seconds, the
    inference's profile rows: Model.run_profiled)."""
    from vc4infer.graph.preprocess import preprocess
    start = time.perf_counter()
    x = preprocess(image, model)
    prepared = time.perf_counter()
    y, rows = model.run_profiled(x)
    done = time.perf_counter()
    results = model.top_classes(y, top)
    return results, prepared - start, done - prepared, rows


def pi_latency(model, capture: float, prep: float, rows: list) -> Tuple[dict, dict]:
    """A frame's latency split as the Pi sees it: ({phase: ms}, {phase: how it was obtained}).
    QPU and NEON are the steps' modelled Pi times when the QPUs are emulated, else measured."""
    measured = "measured on this machine"
    if model.modelled:
        kinds = {"qpu": f"modelled (timing model, V3D at {model.clock_hz / 1e6:.0f} MHz)",
                 "neon": "modelled (Cortex-A53 estimate)"}
    else:
        kinds = {"qpu": measured, "neon": measured}

    def seconds(row):
        return row.modelled_seconds if model.modelled and row.modelled_seconds is not None \
            else row.wall_seconds
    qpu = sum(seconds(r) for r in rows if r.where.startswith("qpu"))
    neon = sum(seconds(r) for r in rows if not r.where.startswith("qpu"))
    ms = {"capture": capture * 1e3, "preprocess": prep * 1e3, "qpu": qpu * 1e3, "neon": neon * 1e3}
    ms["total"] = sum(ms.values())
    kinds = dict(kinds, capture=measured, preprocess=measured,
                 total="QPU and NEON modelled, the rest measured" if model.modelled else measured)
    return ms, kinds


def frame_result(frame, results, model, model_name: str, prep: float, rows: list, fps: float) -> dict:
    """What /result.json serves for a frame classified by `model` (`rows`: its profile)."""
    from vc4infer.graph.labels import short_name
    ms, kinds = pi_latency(model, frame.capture_seconds, prep, rows)
    fps_kind = "this machine's, emulating the QPUs" if model.modelled else "measured on this machine"
    return {"frame": frame.index, "name": frame.name, "model": model_name, "backend": model.backend,
            "modelled": model.modelled, "fps": fps, "fps_kind": fps_kind, "latency_ms": ms,
            "latency_kind": kinds,
            "top": [{"index": int(i), "label": label, "probability": float(p),
                     "name": short_name(label) if label is not None else f"class {i}"}
                    for i, label, p in results]}


def frame_labels(result: dict) -> List[str]:
    """The lines drawn on a frame: the classes, then speed and where it ran."""
    lines = [f"{c['name']} {c['probability'] * 100:.1f}%" for c in result["top"]]
    ms = result["latency_ms"]
    note, host = (" (modelled)", " on this host") if result["modelled"] else ("", "")
    lines.append(f"QPU {ms['qpu']:.1f} ms{note}, NEON {ms['neon']:.1f} ms | {result['fps']:.1f} fps"
                 f"{host} | {result['backend']}")
    return lines


class _Terminated(Exception):
    """SIGTERM arrived: stop as Ctrl-C stops (the camera released, the summary printed)."""


@contextlib.contextmanager
def _sigterm_stops():
    """While the loop runs, SIGTERM (systemd, `kill`) ends it cleanly instead of killing the
    process with the camera open. Only the main thread can take signals: elsewhere, nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Terminated()
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
@click.option("--web", default=None, is_flag=False, flag_value=str(DEFAULT_WEB_PORT),
              metavar="[HOST:]PORT",
              help=f"serve a live view: the labelled frames (MJPEG) and /result.json; --web alone "
                   f"serves on port {DEFAULT_WEB_PORT} of every address, 0 picks a free port")
@click.option("--record", default=None, metavar="OUT.mp4|OUT.gif|DIR",
              help="write the labelled frames: a video (needs PyAV), a GIF, or JPEG files in DIR")
def camera(model: str, backend: str, top: int, frames: Optional[int], source: str,
           resolution: str, loop: bool, web: Optional[str], record: Optional[str]) -> None:
    """Classify camera frames live: top classes, per-frame latency and frame rate."""
    from vc4infer.camera import open_source, parse_resolution
    from vc4infer.commands.classify import _load
    from vc4infer.cli import fail
    from vc4infer.errors import Vc4InferError
    from vc4infer import recording, webview
    try:
        address = webview.parse_address(web) if web is not None else None
        size = parse_resolution(resolution)
        stream = open_source(source, resolution=size, loop=loop)
    except Vc4InferError as exc:                 # a source that cannot be read, no camera
        fail(exc)
    loaded = view = None
    try:
        loaded = _load(model, backend, None, None)
        view = (webview.WebView(webview.FrameHub(), *address, title=f"{model} on {loaded.backend}")
                if address is not None else None)
        recorder = recording.open_recorder(record) if record is not None else None
    except (click.ClickException, Vc4InferError) as exc:
        stream.source.close()                    # release the camera opened above
        if view is not None:
            view.close()
        if loaded is not None:                   # and the GPU memory of a model already loaded
            loaded.close()
        if isinstance(exc, Vc4InferError):
            fail(exc)
        raise
    click.echo(f"model {model} on backend {loaded.backend}; source: {stream.description}; "
               f"Ctrl-C to stop")
    if view is not None:
        click.echo(f"web view: {view.url} (latest result: {view.url}result.json)")
    timings = Timings()
    why = "end of the images"
    start = time.perf_counter()
    try:
        with stream, _sigterm_stops():
            start = time.perf_counter()          # the frame rate leaves out the camera start-up
            while frames is None or timings.frames < frames:
                frame = stream.next_frame()
                if frame is None:
                    break
                results, prep, infer, rows = classify_frame(loaded, frame.image, top)
                timings.add(capture=frame.capture_seconds, preprocess=prep, inference=infer)
                fps = timings.frames / (time.perf_counter() - start)
                click.echo(_frame_line(frame, results, frame.capture_seconds, prep, infer, fps))
                if view is not None or recorder is not None:   # labelled and encoded once
                    result = frame_result(frame, results, loaded, model, prep, rows, fps)
                    labelled = webview.annotate(frame.image, frame_labels(result))
                    jpeg = webview.encode_jpeg(labelled)
                    if view is not None:
                        view.hub.publish(jpeg, result)
                    if recorder is not None:
                        recorder.write(labelled, jpeg, time.perf_counter() - start)
            else:
                why = f"{frames} frames done"
    except KeyboardInterrupt:
        why = "Ctrl-C"
    except _Terminated:
        why = "SIGTERM"
    except Vc4InferError as exc:                 # a frame that cannot be read, the model failing
        fail(exc)
    finally:
        if view is not None:
            view.close()
        if recorder is not None:
            recorder.close()
            click.echo(f"recorded {recorder.frames} frames to {record}")
        loaded.close()                           # on a Pi: GPU memory back, QPUs off, now
    elapsed = time.perf_counter() - start
    for line in _summary(timings, elapsed, why, loaded.backend, stream.description,
                         stream.dropped):
        click.echo(line)
