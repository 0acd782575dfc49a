"""Frame sources for live classification: the Raspberry Pi camera through picamera2 (libcamera,
current Raspberry Pi OS) or the legacy picamera (MMAL, 32-bit Raspberry Pi OS up to Buster), and,
for testing and for machines without a camera, a directory of images or a multi-frame image file
(an animated GIF or TIFF: a video-like sequence).

Every source yields `Frame`s holding an HxWx3 uint8 RGB array. Live cameras run in a background
thread that keeps only the newest frame (`LatestFrame`): a slow consumer never works through a
backlog of stale frames. File sources are not live: they hand out every image in order.

    with open_source("picamera", resolution=(320, 240)) as frames:
        frame = frames.next_frame()
"""
from __future__ import annotations

import abc
import errno
import glob
import os
import threading
import time
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from .errors import Vc4InferError

#: what the CLI calls the Pi camera (`--source picamera`)
PICAMERA = "picamera"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
#: picamera2 format whose arrays are in R, G, B byte order (its "RGB888" is B, G, R)
PICAMERA2_RGB_FORMAT = "BGR888"
#: legacy picamera pads raw captures to a multiple of 32 columns and 16 rows
LEGACY_ALIGN_COLUMNS, LEGACY_ALIGN_ROWS = 32, 16
#: how long to wait for a live frame before declaring the camera stalled
FRAME_TIMEOUT_SECONDS = 10.0


class CameraError(Vc4InferError):
    """A frame source cannot be opened or stopped delivering frames."""


class NoCameraError(CameraError):
    """No camera could be opened; the message lists what was tried and how to fix it."""


class CameraDeviceError(CameraError):
    """The camera stopped delivering frames: it stalled, or its driver failed (unplugged)."""


class CameraBusyError(CameraDeviceError):
    """Another program holds the camera."""


#: what libcamera (EBUSY) and legacy MMAL ("Out of resources") say when another program holds it
BUSY_SIGNS = ("busy", "out of resources")


def _busy(library: str, exc: BaseException) -> Optional[CameraBusyError]:
    """A CameraBusyError when `exc`, raised by `library` opening the camera, says it is held."""
    if getattr(exc, "errno", None) != errno.EBUSY and \
            not any(sign in str(exc).lower() for sign in BUSY_SIGNS):
        return None
    return CameraBusyError(f"the camera is busy: another program holds it ({library}: "
                           f"{type(exc).__name__}: {exc}); stop that program (`sudo fuser -v "
                           "/dev/video* /dev/media*` names it) and try again")


@dataclass
class Frame:
    """One captured image: `image` HxWx3 uint8 RGB; `index` counts frames the source produced
    (gaps show frames dropped in favour of newer ones); `name` is the file for file sources;
    `capture_seconds` how long the consumer waited for (or read) this frame."""
    image: np.ndarray
    index: int
    captured_at: float
    name: Optional[str] = None
    capture_seconds: float = 0.0


def parse_resolution(text: str) -> Tuple[int, int]:
    """"320x240" -> (320, 240)."""
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise CameraError(f"resolution {text!r}: give WIDTHxHEIGHT, e.g. 320x240") from None
    if not (16 <= width <= 4056 and 16 <= height <= 3040):
        raise CameraError(f"resolution {text!r}: width and height must be 16..4056 and 16..3040")
    return width, height


class FrameSource(abc.ABC):
    """Base of the sources: `read()` returns the next Frame or None at the end; `live` sources
    produce frames on their own clock (cameras), the others on demand (files)."""
    live = False
    description = "frames"

    def open(self) -> None:  # noqa: B027 - optional hook: most sources need no opening
        """Acquire the device or list the files."""

    @abc.abstractmethod
    def read(self) -> Optional[Frame]:
        """The next frame (blocking until there is one), or None when the source has ended."""

    def close(self) -> None:  # noqa: B027 - optional hook: file sources hold nothing
        """Release the device."""


# -- cameras -----------------------------------------------------------------------------------

class Picamera2Source(FrameSource):
    """The Pi camera through picamera2 (libcamera)."""
    live = True

    def __init__(self, camera, resolution: Tuple[int, int]):
        self._camera = camera
        self.resolution = resolution
        self._count = 0
        self.description = f"Pi camera via picamera2, {resolution[0]}x{resolution[1]}"

    def open(self) -> None:
        # two buffers: the camera fills one while we copy the other; more would only hold
        # older frames
        config = self._camera.create_preview_configuration(
            main={"size": self.resolution, "format": PICAMERA2_RGB_FORMAT}, buffer_count=2)
        self._camera.configure(config)
        self._camera.start()

    def read(self) -> Frame:
        image = np.ascontiguousarray(self._camera.capture_array("main")[..., :3])
        self._count += 1
        return Frame(image, self._count, time.perf_counter())

    def close(self) -> None:
        try:
            self._camera.stop()
        finally:
            self._camera.close()


class LegacyPicameraSource(FrameSource):
    """The Pi camera through the legacy picamera package (MMAL firmware camera stack)."""
    live = True

    def __init__(self, camera, resolution: Tuple[int, int]):
        self._camera = camera
        self.resolution = resolution
        width, height = resolution
        self._padded = (-(-height // LEGACY_ALIGN_ROWS) * LEGACY_ALIGN_ROWS,
                        -(-width // LEGACY_ALIGN_COLUMNS) * LEGACY_ALIGN_COLUMNS)
        self._buffer = np.empty(self._padded[0] * self._padded[1] * 3, np.uint8)
        self._count = 0
        self.description = f"Pi camera via legacy picamera, {width}x{height}"

    def open(self) -> None:
        self._camera.resolution = self.resolution

    def read(self) -> Frame:
        # the video port captures without re-metering for every still: one frame period
        self._camera.capture(self._buffer, format="rgb", use_video_port=True)
        width, height = self.resolution
        image = self._buffer.reshape(self._padded[0], self._padded[1], 3)[:height, :width].copy()
        self._count += 1
        return Frame(image, self._count, time.perf_counter())

    def close(self) -> None:
        self._camera.close()


def _video_devices(dev: str = "/dev") -> List[str]:
    return sorted(glob.glob(os.path.join(dev, "video*")))


def open_camera(resolution: Tuple[int, int], dev: str = "/dev") -> FrameSource:
    """The Pi camera: picamera2 if it imports and finds a camera, else legacy picamera. Raises
    NoCameraError naming every attempt and the fixes."""
    attempts = []
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        attempts.append(f"picamera2: not importable ({exc})")
    else:
        try:
            return Picamera2Source(Picamera2(), resolution)
        except Exception as exc:  # noqa: BLE001 - libcamera raises IndexError/RuntimeError
            busy = _busy("picamera2", exc)
            if busy is not None:
                raise busy from None
            attempts.append(f"picamera2: installed, but it found no camera "
                            f"({type(exc).__name__}: {exc})")
    try:
        import picamera
    except ImportError as exc:
        attempts.append(f"picamera (legacy): not importable ({exc})")
    else:
        try:
            return LegacyPicameraSource(picamera.PiCamera(), resolution)
        except Exception as exc:  # noqa: BLE001 - PiCameraError and MMAL errors
            busy = _busy("picamera (legacy)", exc)
            if busy is not None:
                raise busy from None
            attempts.append(f"picamera (legacy): installed, but the camera did not open "
                            f"({type(exc).__name__}: {exc})")
    devices = _video_devices(dev)
    attempts.append(f"video devices: {', '.join(devices)}" if devices
                    else f"video devices: none ({dev}/video* does not exist)")
    raise NoCameraError(
        "no camera found (" + "; ".join(attempts) + "). "
        "Fix: connect the camera and enable it (Raspberry Pi OS Bullseye and later: "
        "`sudo apt install python3-picamera2`, and camera_auto_detect=1 in /boot/config.txt; "
        "Buster and older: `sudo raspi-config` > Interface Options > Camera, then `pip install "
        "picamera`), or classify files instead with --source DIR (a directory of images or a "
        "multi-frame GIF/TIFF).")


# -- files ------------------------------------------------------------------------------------

def _to_rgb_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


class ImageFilesSource(FrameSource):
    """A directory of images (sorted by name) or one multi-frame image file, as a sequence of
    frames; `loop` starts over at the end."""

    def __init__(self, path: str, loop: bool = False):
        self.path = os.fspath(path)
        self.loop = loop
        self._frames: Optional[Iterator[Tuple[str, np.ndarray]]] = None
        self._count = 0
        self.description = f"images from {self.path}" + (" (looping)" if loop else "")

    def _files(self) -> List[str]:
        names = sorted(n for n in os.listdir(self.path)
                       if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES)
        if not names:
            raise CameraError(f"{self.path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return [os.path.join(self.path, n) for n in names]

    def _iterate(self) -> Iterator[Tuple[str, np.ndarray]]:
        while True:
            if os.path.isdir(self.path):
                for file in self._files():
                    try:
                        with Image.open(file) as img:
                            yield os.path.basename(file), _to_rgb_array(img)
                    except (UnidentifiedImageError, OSError) as exc:
                        raise CameraError(f"{file} is not an image Pillow can read: {exc}") from exc
            else:
                try:
                    with Image.open(self.path) as img:
                        for i, page in enumerate(ImageSequence.Iterator(img)):
                            yield f"{os.path.basename(self.path)}#{i}", _to_rgb_array(page)
                except (UnidentifiedImageError, OSError) as exc:
                    raise CameraError(f"{self.path} is not an image Pillow can read: {exc}") from exc
            if not self.loop:
                return

    def open(self) -> None:
        if not os.path.exists(self.path):
            raise CameraError(f"--source {self.path}: no such directory or file")
        if os.path.isdir(self.path):
            self._files()                       # fail now on an empty directory
        self._frames = self._iterate()

    def read(self) -> Optional[Frame]:
        start = time.perf_counter()
        item = next(self._frames, None)
        if item is None:
            return None
        self._count += 1
        now = time.perf_counter()
        return Frame(item[1], self._count, now, name=item[0], capture_seconds=now - start)


# -- latest frame wins --------------------------------------------------------------------------

class LatestFrame:
    """Reads a live source in a background thread and keeps only the newest frame: `take()`
    returns a frame newer than the previous one, waiting if there is none yet. `dropped` counts
    frames replaced before anyone took them."""

    def __init__(self, source: FrameSource, timeout_seconds: Optional[float] = None):
        self.source = source
        self.timeout_seconds = FRAME_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
        self.dropped = 0
        self._slot: Optional[Frame] = None
        self._error: Optional[BaseException] = None
        self._ended = False
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._grab, name="vc4infer-camera", daemon=True)
        self._thread.start()

    def _grab(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                with self._ready:
                    if frame is None:
                        self._ended = True
                    else:
                        self.dropped += self._slot is not None
                        self._slot = frame
                    self._ready.notify_all()
                if frame is None:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            with self._ready:
                self._error = exc
                self._ready.notify_all()

    def take(self) -> Optional[Frame]:
        """The newest frame not taken yet; None when the source has ended."""
        start = time.perf_counter()
        with self._ready:
            if not self._ready.wait_for(lambda: self._slot is not None or self._error is not None
                                        or self._ended, timeout=self.timeout_seconds):
                raise CameraDeviceError(f"{self.source.description}: no frame for "
                                        f"{self.timeout_seconds:g} s; the camera stalled")
            if self._slot is None and self._error is not None:
                if isinstance(self._error, CameraError):     # a file of an image source: as it is
                    raise self._error
                raise CameraDeviceError(f"{self.source.description} failed: {self._error}") \
                    from self._error
            frame, self._slot = self._slot, None
        if frame is not None:
            frame.capture_seconds = time.perf_counter() - start
        return frame

    def stop(self) -> None:
        """Ask the grabber to end and wait for it (at most one frame period plus the timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_seconds)


class FrameStream:
    """A source opened for use: `next_frame()` gives frames (latest-wins for live sources, in
    order for files) and None at the end; a context manager that releases the source."""

    def __init__(self, source: FrameSource):
        self.source = source
        self._latest: Optional[LatestFrame] = None

    @property
    def description(self) -> str:
        return self.source.description

    @property
    def dropped(self) -> int:
        """Frames a live camera produced that were replaced by newer ones before use."""
        return self._latest.dropped if self._latest is not None else 0

    def __enter__(self) -> "FrameStream":
        self.source.open()
        if self.source.live:
            self._latest = LatestFrame(self.source)
            self._latest.start()
        return self

    def next_frame(self) -> Optional[Frame]:
        if self._latest is not None:
            return self._latest.take()
        return self.source.read()

    def __exit__(self, *exc) -> None:
        try:
            if self._latest is not None:
                self._latest.stop()
        finally:
            self.source.close()


def open_source(source: str, resolution: Tuple[int, int] = (320, 240), loop: bool = False,
                dev: str = "/dev") -> FrameStream:
    """`source` "picamera" (the Pi camera, see `open_camera`) or a path (directory of images or
    multi-frame image file). Use the result as a context manager."""
    if source == PICAMERA:
        return FrameStream(open_camera(resolution, dev))
    return FrameStream(ImageFilesSource(source, loop=loop))
