"""`vc4infer camera --record PATH`: the labelled frames written as a video, a GIF or JPEG files.

    out.mp4 / out.mkv  H.264 (MPEG-4 part 2 where the FFmpeg build has no H.264 encoder) through
                       PyAV, the FFmpeg bindings (`pip install av`; `sudo apt install python3-av`
                       on Raspberry Pi OS); each frame keeps its real time stamp
    out.gif            an animated GIF through Pillow; its frames stay in memory until the end,
                       so it is for short clips (at most GIF_MAX_FRAMES)
    DIR                one JPEG per frame, frame_000001.jpg ... (the bytes the web view serves)

Video frames all have the first frame's size: a frame of another size (files of a directory
source) is scaled into it, keeping its aspect, on black.
"""
from __future__ import annotations

import abc
import os
from typing import List, Optional

from PIL import Image

from vc4infer.errors import InputError, MissingPackageError

VIDEO_SUFFIXES = (".mp4", ".mkv")
GIF_MAX_FRAMES = 1000


class Recorder(abc.ABC):
    """Writes labelled frames to `path`; `frames` counts them. Use as a context manager."""

    def __init__(self, path: str):
        self.path = path
        self.frames = 0
        self._size: Optional[tuple] = None

    @abc.abstractmethod
    def write(self, frame: Image.Image, jpeg: bytes, seconds: float) -> None:
        """One frame: its Pillow image, its JPEG encoding and when it was taken (seconds from the
        first frame)."""

    def close(self) -> None:  # noqa: B027 - only the video and GIF files need finishing
        """Finish the file (idempotent)."""

    def _fit(self, frame: Image.Image) -> Image.Image:
        """`frame` at the first frame's size (scaled to fit, centred on black)."""
        if self._size is None:
            self._size = (frame.width - frame.width % 2, frame.height - frame.height % 2)  # even: yuv420p
        if frame.size == self._size:
            return frame
        scale = min(self._size[0] / frame.width, self._size[1] / frame.height)
        fitted = frame.resize((max(1, round(frame.width * scale)), max(1, round(frame.height * scale))))
        canvas = Image.new("RGB", self._size)
        canvas.paste(fitted, ((self._size[0] - fitted.width) // 2, (self._size[1] - fitted.height) // 2))
        return canvas

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class JpegDirRecorder(Recorder):
    def __init__(self, path: str):
        super().__init__(path)
        os.makedirs(path, exist_ok=True)

    def write(self, frame: Image.Image, jpeg: bytes, seconds: float) -> None:
        self.frames += 1
        with open(os.path.join(self.path, f"frame_{self.frames:06d}.jpg"), "wb") as f:
            f.write(jpeg)


class GifRecorder(Recorder):
    def __init__(self, path: str):
        super().__init__(path)
        self._images: List[Image.Image] = []
        self._times: List[float] = []

    def write(self, frame: Image.Image, jpeg: bytes, seconds: float) -> None:
        if self.frames >= GIF_MAX_FRAMES:
            raise InputError(f"{self.path}: a GIF holds its frames in memory; {GIF_MAX_FRAMES} are "
                             "recorded. For longer runs record to an .mp4 or a directory")
        self.frames += 1
        self._images.append(self._fit(frame).quantize(colors=256))   # a third of RGB's memory
        self._times.append(seconds)

    def close(self) -> None:
        if not self._images:
            return
        images, self._images = self._images, []
        gaps = [b - a for a, b in zip(self._times, self._times[1:])] or [0.1]
        durations_ms = [max(20, round(1000 * g)) for g in gaps + gaps[-1:]]
        images[0].save(self.path, save_all=True, append_images=images[1:], duration=durations_ms,
                       loop=0)


class VideoRecorder(Recorder):
    def __init__(self, path: str):
        super().__init__(path)
        try:
            import av
        except ImportError:
            raise MissingPackageError(
                f"recording {path} needs PyAV (FFmpeg): `pip install av`, or `sudo apt install "
                "python3-av` on Raspberry Pi OS; without it, record to a .gif or a directory of "
                "JPEG frames") from None
        self._av = av
        self._container = av.open(path, mode="w")
        self._stream = None
        self._last_ms = -1                                # pts of the latest frame

    def _open_stream(self, size: tuple) -> None:
        from fractions import Fraction
        codecs = self._av.codecs_available
        name = next((c for c in ("libx264", "h264", "mpeg4") if c in codecs), "mpeg4")
        self._stream = self._container.add_stream(name, rate=30)
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.time_base = Fraction(1, 1000)        # frames carry their own time, in ms

    def write(self, frame: Image.Image, jpeg: bytes, seconds: float) -> None:
        fitted = self._fit(frame)
        if self._stream is None:
            self._open_stream(fitted.size)
        video_frame = self._av.VideoFrame.from_image(fitted)
        self._last_ms = max(self._last_ms + 1, round(seconds * 1000))   # strictly increasing
        video_frame.pts = self._last_ms
        video_frame.time_base = self._stream.time_base
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        if self._stream is not None:
            for packet in self._stream.encode():             # flush
                self._container.mux(packet)
        self._container.close()
        self._container = None


def open_recorder(path: str) -> Recorder:
    """The recorder for `path`: a video (.mp4, .mkv), a GIF (.gif), else a directory."""
    suffix = os.path.splitext(path)[1].lower()
    folder = os.path.dirname(os.path.abspath(path))
    if suffix and not os.path.isdir(folder):
        raise InputError(f"--record {path}: {folder} does not exist")
    if suffix in VIDEO_SUFFIXES:
        return VideoRecorder(path)
    if suffix == ".gif":
        return GifRecorder(path)
    if suffix and not os.path.isdir(path):
        raise InputError(f"--record {path}: give a .mp4, .mkv or .gif file, or a directory for "
                         "JPEG frames")
    return JpegDirRecorder(path)
