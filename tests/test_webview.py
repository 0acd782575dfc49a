"""`vc4infer camera --web`: the live view served to real HTTP clients (issue 16). The server runs
in a real `vc4infer camera` process on an ephemeral port with a directory source; frames must
decode as JPEG, /result.json must hold the classes that vc4infer.load(...).classify gives for
the same photo, viewers must not hold up the classifier, and SIGTERM must end it cleanly."""
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vc4infer
from vc4infer.webview import FrameHub, annotate, parse_address
from vc4infer.errors import InputError

ROOT = Path(__file__).parents[1]
IMAGES = ROOT / "demos" / "images"
MODEL = "mobilenet_v1"


def test_a_slow_viewer_gets_the_newest_frame_not_a_queue():
    hub = FrameHub()
    for i in range(3):
        hub.publish(bytes([i]), {"frame": i})
    seq, jpeg = hub.wait_newer(0, timeout_s=0.1)          # it saw nothing yet: frames 1-2 skipped
    assert (seq, jpeg) == (3, bytes([2]))
    assert hub.wait_newer(3, timeout_s=0.05) == (3, None)  # nothing newer: no repeat
    hub.close()
    assert hub.wait_newer(3, timeout_s=5.0) == (3, None)   # closed: returns at once


def test_addresses():
    from vc4infer.commands.camera import DEFAULT_WEB_PORT
    from vc4infer.webview import DEFAULT_PORT
    assert DEFAULT_WEB_PORT == DEFAULT_PORT
    assert parse_address("8000") == ("0.0.0.0", 8000)
    assert parse_address("127.0.0.1:0") == ("127.0.0.1", 0)
    for bad in ("web", "127.0.0.1:99999", ":x"):
        with pytest.raises(InputError, match=r"\[HOST:\]PORT"):
            parse_address(bad)


def test_labels_are_drawn_on_the_frame():
    image = np.full((240, 320, 3), 40, np.uint8)
    labelled = np.asarray(annotate(image, ["tabby 80.0%", "QPU 1.0 ms"]))
    assert labelled.shape == image.shape
    band, below = labelled[:30], labelled[60:]
    assert (band > 200).any() and np.array_equal(below, image[60:])   # text on top, photo intact


def _start():
    """A `vc4infer camera --web` process looping over the demo photos: (url, process)."""
    command = [sys.executable, "-m", "vc4infer.cli", "camera", "--source", str(IMAGES), "--loop",
               "--backend", "neon", "--model", MODEL, "--top", "3", "--web", "127.0.0.1:0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    url = None
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("web view: "):
            url = line.split()[2]
    if url is None:
        process.kill()
        pytest.fail("the camera command printed no web view address: " + process.stdout.read())
    return url, process


@pytest.fixture(scope="module")
def server():
    url, process = _start()
    yield url, process
    process.kill()
    process.communicate()


def _get(url: str, timeout: float = 30.0):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return answer.headers.get_content_type(), answer.read()


def _result(url: str) -> dict:
    import json
    for _ in range(200):                                     # the first frame may still be coming
        kind, body = _get(url + "result.json")
        result = json.loads(body)
        if result:
            assert kind == "application/json"
            return result
        time.sleep(0.1)
    pytest.fail("no result published")


def test_the_page_the_frames_and_the_result(server):
    url, _ = server
    kind, page = _get(url)
    assert kind == "text/html" and b"/stream.mjpg" in page and b"/result.json" in page
    result = _result(url)
    assert result["backend"] == "neon" and result["model"] == MODEL and result["fps"] > 0
    assert set(result["latency_ms"]) == {"capture", "preprocess", "qpu", "neon", "total"}
    # the classes of that photo, as the library gives them for the file itself
    expected = vc4infer.load(MODEL, backend="neon").classify(str(IMAGES / result["name"]), top=3)
    assert [c["index"] for c in result["top"]] == [i for i, _, _ in expected]
    np.testing.assert_allclose([c["probability"] for c in result["top"]], [p for _, _, p in expected],
                               atol=1e-4)
    kind, jpeg = _get(url + "frame.jpg")
    frame = Image.open(io.BytesIO(jpeg))
    assert kind == "image/jpeg" and frame.format == "JPEG"
    assert np.asarray(frame).std() > 10                      # a photo, not a blank frame


def _mjpeg_frames(url: str, count: int) -> list:
    """`count` JPEG parts read from the MJPEG stream."""
    frames = []
    with urllib.request.urlopen(url + "stream.mjpg", timeout=30) as stream:
        assert stream.headers.get_content_type() == "multipart/x-mixed-replace"
        while len(frames) < count:
            line = stream.readline()
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
                stream.readline()                            # the blank line before the data
                frames.append(Image.open(io.BytesIO(stream.read(length))))
    return frames


def test_the_mjpeg_stream_shows_new_frames_to_several_viewers(server):
    url, _ = server
    stuck = urllib.request.urlopen(url + "stream.mjpg", timeout=30)   # a viewer that never reads
    try:
        before = _result(url)["frame"]
        streams = [_mjpeg_frames(url, 3) for _ in range(2)]
        for frames in streams:
            assert all(f.format == "JPEG" and f.size[0] > 100 for f in frames)
        time.sleep(1.0)
        assert _result(url)["frame"] > before + 5            # the classifier kept going
    finally:
        stuck.close()


CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
                None)
#: headless, and without the background connections a closed network refuses
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=3000"]


def _chromium(tmp_path, *args) -> str:
    done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed: `sudo apt install "
                                               "chromium` (CI installs it)")
def test_the_page_in_headless_chromium_shows_the_frame_and_the_labels(server, tmp_path):
    url, _ = server
    _result(url)
    shot = tmp_path / "page.png"
    _chromium(tmp_path, "--window-size=900,800", f"--screenshot={shot}", url)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    frame_area = pixels[60:460, 15:615].astype(np.uint8)     # where the page puts the frame
    colours = len(np.unique(frame_area.reshape(-1, 3), axis=0))
    assert colours > 5000, f"the frame area holds {colours} colours: no photo there"
    dom = _chromium(tmp_path, "--dump-dom", url)
    width, height = map(int, re.search(r"\((\d+)x(\d+)\)", dom).groups())
    assert width > 100 and height > 100, "the browser decoded no frame of the stream"
    shown = re.search(r'<div id="top">([^<]*)', dom).group(1)
    # the labels the page's script put there: a class of one of the photos, with its share
    expected = {short for path in IMAGES.iterdir() if path.suffix in (".png", ".jpg")
                for short in [vc4infer.load(MODEL, backend="neon").classify(str(path), top=1)[0][1]]}
    best = shown.split(" | ")[0]
    assert re.fullmatch(r".+ \d+\.\d%", best), shown
    assert best.rsplit(" ", 1)[0] in {e.split(",")[0] for e in expected}, (shown, expected)


def test_sigterm_ends_the_loop_cleanly():
    url, process = _start()
    try:
        _result(url)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, output
    assert "stopped: SIGTERM" in output and "throughput:" in output
