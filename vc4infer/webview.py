"""A live web view of camera classification (`vc4infer camera --web [HOST:]PORT`).

The classifier publishes each frame once, labels drawn on it and JPEG-encoded, to a `FrameHub`;
an HTTP server (the standard library's, one thread per viewer) serves

    /             a page: the live frames and the latest result, refreshed by the browser
    /stream.mjpg  the frames as MJPEG (multipart/x-mixed-replace), which browsers show as video
    /frame.jpg    the latest frame
    /result.json  the latest result: top classes, latencies, frame rate, backend, model

Viewers share the one encoded frame and each takes the newest when it is ready for one: a slow
viewer skips frames instead of queueing them, and no viewer holds up the classifier.
"""
from __future__ import annotations

import functools
import html
import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vc4infer.errors import InputError

BOUNDARY = "vc4inferframe"
JPEG_QUALITY = 80
DEFAULT_PORT = 8000


class FrameHub:
    """The latest published frame (JPEG bytes) and result, and a condition viewers wait on."""

    def __init__(self):
        self._changed = threading.Condition()
        self.jpeg: Optional[bytes] = None
        self.result: dict = {}
        self.sequence = 0            # frames published so far
        self.closed = False

    def publish(self, jpeg: bytes, result: dict) -> None:
        with self._changed:
            self.jpeg, self.result = jpeg, result
            self.sequence += 1
            self._changed.notify_all()

    def close(self) -> None:
        """Wake every viewer for the last time: the stream has ended."""
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_newer(self, seen: int, timeout_s: float) -> Tuple[int, Optional[bytes]]:
        """(sequence, JPEG) of a frame newer than `seen`, waiting up to `timeout_s`; (seen, None)
        when none came or the hub closed."""
        with self._changed:
            self._changed.wait_for(lambda: self.sequence > seen or self.closed, timeout=timeout_s)
            if self.sequence > seen:
                return self.sequence, self.jpeg
            return seen, None


def annotate(image: np.ndarray, lines: List[str]) -> Image.Image:
    """The frame with `lines` (best class first) on a dark band across its top."""
    frame = Image.fromarray(image)
    draw = ImageDraw.Draw(frame, "RGBA")
    font = _font(max(11, min(frame.height // 30, frame.width // 42)))
    line_px = 4 + draw.textbbox((0, 0), "Ag", font=font)[3]
    draw.rectangle((0, 0, frame.width, 4 + line_px * len(lines)), fill=(0, 0, 0, 160))
    for i, text in enumerate(lines):
        draw.text((4, 2 + i * line_px), text, fill=(255, 255, 255) if i else (255, 230, 0), font=font)
    return frame


@functools.lru_cache(maxsize=8)
def _font(size_px: int):
    """Pillow's own font at `size_px` (Pillow >= 10.1 scales it; older ones have one size)."""
    try:
        return ImageFont.load_default(size=size_px)
    except TypeError:
        return ImageFont.load_default()


def encode_jpeg(frame: Image.Image) -> bytes:
    out = io.BytesIO()
    frame.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def parse_address(text: str) -> Tuple[str, int]:
    """"8000" -> ("0.0.0.0", 8000); "127.0.0.1:0" -> ("127.0.0.1", 0) (0: any free port)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise InputError(f"--web {text!r}: give [HOST:]PORT, e.g. 8000 or 127.0.0.1:8080")
    return host or "0.0.0.0", number


def reachable_host() -> str:
    """This machine's address on its network (what another machine would type), else localhost.
    Connecting a UDP socket sends nothing; it only picks the outgoing interface."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))              # TEST-NET-1: never routed anywhere
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>vc4infer: {title}</title>
<style>
body {{ background: #111; color: #eee; font: 15px sans-serif; margin: 1em; }}
img {{ max-width: 100%; image-rendering: auto; border: 1px solid #333; }}
#top {{ font-size: 1.3em; margin: .4em 0; }} td {{ padding: 0 .8em 0 0; }} .note {{ color: #999; }}
</style></head>
<body><h2>vc4infer: {title}</h2>
<img id="frame" src="/stream.mjpg" alt="live frames">
<div id="top">waiting for the first frame</div>
<table id="times"></table>
<p class="note" id="about"></p>
<script>
async function refresh() {{
  try {{
    const r = await (await fetch("/result.json", {{cache: "no-store"}})).json();
    if (r.top) {{
      document.getElementById("top").textContent = r.top.map(
        c => c.name + " " + (100 * c.probability).toFixed(1) + "%").join(" | ");
      const t = r.latency_ms;
      document.getElementById("times").innerHTML = Object.keys(t).map(
        k => "<tr><td>" + k + "</td><td>" + t[k].toFixed(1) + " ms</td><td class=note>" +
             (r.latency_kind[k] || "") + "</td></tr>").join("");
      const img = document.getElementById("frame");
      document.getElementById("about").textContent = "frame " + r.frame + " (" +
        img.naturalWidth + "x" + img.naturalHeight + "), " + r.fps.toFixed(2) + " fps (" +
        r.fps_kind + "), model " + r.model + " on " + r.backend;
    }}
  }} catch (e) {{}}
  setTimeout(refresh, 500);
}}
refresh();
</script></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    hub: FrameHub
    title: str

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, "text/html; charset=utf-8", PAGE.format(title=html.escape(self.title)).encode())
        elif path == "/result.json":
            self._send(200, "application/json", json.dumps(self.hub.result).encode())
        elif path == "/frame.jpg":
            jpeg = self.hub.jpeg
            if jpeg is None:
                self._send(503, "text/plain", b"no frame yet\n")
            else:
                self._send(200, "image/jpeg", jpeg)
        elif path == "/stream.mjpg":
            self._stream()
        else:
            self._send(404, "text/plain", b"not found: try / or /result.json\n")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = 0
        try:
            while not self.hub.closed:
                seen, jpeg = self.hub.wait_newer(seen, timeout_s=1.0)
                if jpeg is None:
                    continue
                self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                 f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass                                     # the viewer went away

    def log_message(self, *args) -> None:
        pass                                         # the camera's own lines are the log


class WebView:
    """An HTTP server for `hub` on (host, port) in a daemon thread; `url` says where it is."""

    def __init__(self, hub: FrameHub, host: str, port: int, title: str):
        handler = type("Handler", (_Handler,), {"hub": hub, "title": title})
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise InputError(f"--web {host}:{port}: cannot serve there ({exc.strerror}); pick "
                             "another port") from None
        self.server.daemon_threads = True
        self.hub = hub
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(target=self.server.serve_forever, name="vc4infer-web",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = reachable_host() if self.host == "0.0.0.0" else self.host
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        self.hub.close()
        self.server.shutdown()
        self.server.server_close()
