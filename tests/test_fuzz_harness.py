"""tests/fuzz_readers.py, the `make fuzz` harness, at a small size: every format's mutants are
tried and none crashes or hangs; and the harness counts a crash when a reader raises something
other than a vc4infer error (a harness that cannot fail would prove nothing)."""
import subprocess
import sys
from pathlib import Path

HARNESS = Path(__file__).with_name("fuzz_readers.py")


def test_a_short_run_of_every_format_is_clean():
    done = subprocess.run([sys.executable, str(HARNESS), "--mutants", "40"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()[1:]}
    assert set(rows) == {"tflite", "onnx", "tf", "torch", "image"}
    for fmt, (tried, loaded, clean, crashes, hangs) in rows.items():
        assert int(tried) == 40 and int(crashes) == 0 and int(hangs) == 0, (fmt, rows[fmt])
        assert int(loaded) + int(clean) == 40


def test_a_reader_that_raises_another_exception_counts_as_a_crash(monkeypatch, tmp_path):
    sys.path.insert(0, str(HARNESS.parent))
    import fuzz_readers

    real = fuzz_readers._base_files

    def broken(workdir):
        files = real(workdir)
        name, data, _ = files["tf"][0]
        files["tf"] = [(name, data, lambda path: {}["missing"])]      # a KeyError escapes
        return files

    monkeypatch.setattr(fuzz_readers, "_base_files", broken)
    results = fuzz_readers.fuzz(["tf"], 5, 0, 10.0, str(tmp_path))
    assert results["tf"]["crashes"] == 5
