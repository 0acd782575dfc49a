"""`vc4infer camera --record`: the labelled frames as an MP4 (PyAV), a GIF or JPEG files (issue
16). Each recording is read back with a decoder of its own format and held against the photos
the frames came from."""
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vc4infer.cli import main
from vc4infer.errors import InputError, MissingPackageError
from vc4infer.recording import open_recorder

IMAGES = Path(__file__).parents[1] / "demos" / "images"
COFFEE = IMAGES / "coffee.png"          # the directory's first photo: every frame's source below


def _record(out, frames: int = 3):
    # one photo, looped: every frame is the same picture with its labels drawn over the top
    folder = out.parent / "photos"
    folder.mkdir(exist_ok=True)
    (folder / COFFEE.name).write_bytes(COFFEE.read_bytes())
    result = CliRunner().invoke(main, ["camera", "--source", str(folder), "--loop", "--frames",
                                       str(frames), "--backend", "neon", "--record", str(out)])
    assert result.exit_code == 0, result.output
    assert f"recorded {frames} frames to {out}" in result.output
    return result


def _like_the_photo(frame: np.ndarray) -> None:
    """The lower part of a recorded frame is the photo (lossy codecs aside); the top band holds
    bright label text over a darkened photo."""
    photo = np.asarray(Image.open(COFFEE).convert("RGB").resize((frame.shape[1], frame.shape[0])))
    lower = slice(frame.shape[0] // 2, None)
    assert np.abs(frame[lower].astype(int) - photo[lower]).mean() < 12
    band = frame[:frame.shape[0] // 12]
    assert (band.max(axis=2) > 200).any() and band.mean() < photo[:frame.shape[0] // 12].mean()


def test_a_directory_of_jpeg_frames(tmp_path):
    out = tmp_path / "frames"
    _record(out)
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["frame_000001.jpg", "frame_000002.jpg", "frame_000003.jpg"]
    for f in files:
        image = Image.open(f)
        assert image.format == "JPEG"
        _like_the_photo(np.asarray(image.convert("RGB")))


def test_an_animated_gif(tmp_path):
    out = tmp_path / "run.gif"
    _record(out, frames=4)
    gif = Image.open(out)
    assert gif.format == "GIF" and gif.n_frames == 4 and gif.info.get("loop") == 0
    gif.seek(2)
    _like_the_photo(np.asarray(gif.convert("RGB")))


def test_an_mp4_video(tmp_path):
    av = pytest.importorskip("av", reason="PyAV is not installed (pip install av)")
    out = tmp_path / "run.mp4"
    _record(out, frames=5)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        times = [f.time for f in av.open(str(out)).decode(video=0)]
    photo = Image.open(COFFEE)
    assert len(frames) == 5 and frames[0].shape == (photo.height, photo.width, 3)
    assert all(b > a for a, b in zip(times, times[1:]))            # real, increasing time stamps
    _like_the_photo(frames[-1])


def test_frames_of_other_sizes_are_fitted_into_the_first(tmp_path):
    recorder = open_recorder(str(tmp_path / "mixed.gif"))
    wide = Image.new("RGB", (200, 100), (255, 0, 0))
    tall = Image.new("RGB", (50, 100), (0, 255, 0))
    with recorder:
        recorder.write(wide, b"", 0.0)
        recorder.write(tall, b"", 0.1)
    gif = Image.open(tmp_path / "mixed.gif")
    gif.seek(1)
    second = np.asarray(gif.convert("RGB"))
    assert second.shape == (100, 200, 3)
    assert (second[50, 100] == [0, 255, 0]).all() and (second[50, 10] == 0).all()   # centred on black


def test_bad_record_paths(tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"\.mp4, \.mkv or \.gif"):
        open_recorder(str(tmp_path / "run.avi"))
    with pytest.raises(InputError, match="does not exist"):
        open_recorder("/no/such/dir/run.gif")
    monkeypatch.setitem(sys.modules, "av", None)                   # PyAV not installed
    with pytest.raises(MissingPackageError, match="pip install av"):
        open_recorder(str(tmp_path / "run.mp4"))
    result = CliRunner().invoke(main, ["camera", "--source", str(IMAGES), "--frames", "1", "--backend",
                                       "neon", "--record", str(tmp_path / "run.mp4")])
    assert result.exit_code == 5 and "python3-av" in result.output      # this machine lacks it
