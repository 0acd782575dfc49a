"""Getting the compiled emulator ready (vc4infer.emu.warmup): a cold compile is announced, a cache
load is not, two processes starting cold compile once, and every entry point shares one cache.

The compile tests use a one-line numba function in a temporary module and a temporary
NUMBA_CACHE_DIR, so they take seconds and leave the emulator's own cache alone."""
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from requires import require

require("numba")

REPO = Path(__file__).resolve().parents[2]

TOY_MODULE = """
import numba

@numba.njit(cache=True)
def add_one(x):
    return x + 1
"""

# Compiles (or loads) toy.add_one through ensure_compiled as the CLI does, then prints
# what the process saw as JSON on stdout.
PROBE = """
import json, sys
import numpy as np
from vc4infer.emu import warmup
import toy
warmup.progress_on_stderr = True
warmup.ensure_compiled(toy.add_one, (np.int64(41),))
print(json.dumps({"signatures": len(toy.add_one.signatures), "result": int(toy.add_one(np.int64(41))),
                  "cache": warmup.cache_dir(toy.add_one)}))
"""

# Holds the warm-up lock of toy.add_one's cache until a line arrives on stdin.
HOLDER = """
import fcntl, os, sys
from vc4infer.emu import warmup
import toy
with open(os.path.join(warmup.cache_dir(toy.add_one), warmup.LOCK_NAME), "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def toy_env(tmp_path):
    (tmp_path / "toy.py").write_text(TOY_MODULE)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               VC4INFER_STARTUP_REPORT=str(tmp_path / "report.jsonl"),
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    env.pop("VC4INFER_NO_NUMBA", None)
    return tmp_path, env


def _probe(tmp_path, env, timeout=120):
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def _reports(tmp_path):
    return [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]


def test_cold_compile_is_announced_and_a_cache_load_is_not(toy_env):
    tmp_path, env = toy_env
    first, first_err = _probe(tmp_path, env)
    assert first == {"signatures": 1, "result": 42, "cache": first["cache"]}
    assert "vc4infer: compiling the QPU emulator with numba" in first_err
    assert "vc4infer: the QPU emulator compiled in" in first_err
    assert first["cache"].startswith(str(tmp_path / "cache"))

    second, second_err = _probe(tmp_path, env)
    assert second["signatures"] == 1 and second["result"] == 42
    assert "compiling" not in second_err, second_err
    assert [r["compiled"] for r in _reports(tmp_path)] == [True, False]
    assert all(0 < r["seconds_to_loop"] < 120 for r in _reports(tmp_path))


def test_a_second_process_waits_for_the_first_ones_compile(toy_env):
    tmp_path, env = toy_env
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=tmp_path, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        waiter = subprocess.Popen([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        seen = ""
        while "waiting for another process" not in seen and time.monotonic() < deadline:
            seen += waiter.stderr.readline()
        assert "waiting for another process that is compiling the QPU emulator" in seen
        time.sleep(0.5)
        assert waiter.poll() is None, "the second process went on while the lock was held"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0, err
        assert json.loads(out)["result"] == 42
    finally:
        holder.kill()
        holder.wait()


def test_on_a_terminal_the_line_counts_seconds(monkeypatch):
    from vc4infer.emu import warmup

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(warmup, "progress_on_stderr", True)
    monkeypatch.setattr(warmup, "TICK_SECONDS", 0.05)
    announcer = warmup._Announcer("/some/cache")
    announcer.start()
    time.sleep(0.3)
    announcer.finish()
    text = terminal.getvalue()
    ticks = text.count("\rvc4infer: compiling the QPU emulator")
    assert ticks >= 3, text
    assert "/some/cache ... 0 s" in text
    assert text.endswith("s\n") and "\nvc4infer: the QPU emulator compiled in 0 s\n" in text


def test_a_library_user_sees_it_in_the_log(caplog, monkeypatch):
    from vc4infer.emu import warmup

    monkeypatch.setattr(warmup, "progress_on_stderr", False)
    with caplog.at_level("INFO", logger="vc4infer.emu"):
        announcer = warmup._Announcer("/some/cache")
        announcer.start()
        announcer.finish()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("compiling the QPU emulator with numba")
    assert messages[1].startswith("the QPU emulator compiled in")


ENTRY_POINTS = {
    "library": [sys.executable, "-c",
                "from vc4infer.emu import core, warmup; print(warmup.cache_dir(core._run))"],
    "python -m": [sys.executable, "-m", "vc4infer.cli", "info"],
    "console script": [str(Path(sys.executable).parent / "vc4infer"), "info"],
}


def test_every_entry_point_uses_the_same_cache(tmp_path):
    """The test process (a pytest-xdist worker under `make test`), the library imported from another
    folder, `python -m vc4infer.cli` and the console script all find one cache folder, and `vc4infer
    info` shows it."""
    from vc4infer.emu import core, warmup

    if "NUMBA_CACHE_DIR" in os.environ:
        pytest.skip("this run sets NUMBA_CACHE_DIR for every process")
    here = warmup.cache_dir(core._run)
    assert here and os.path.isdir(here)
    for name, command in ENTRY_POINTS.items():
        if not os.path.exists(command[0]):
            pytest.skip(f"no {command[0]}: vc4infer is not installed in this environment")
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{name}: {done.stderr}"
        assert here in "".join(done.stdout.split()), f"{name}: {done.stdout}"


def test_info_says_whether_the_next_run_compiles(tmp_path):
    """In an empty cache `vc4infer info` warns of the compile; after a compile it says it loads."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    info = [sys.executable, "-m", "vc4infer.cli", "info"]
    before = subprocess.run(info, env=env, capture_output=True, text=True, timeout=120)
    assert before.returncode == 0, before.stderr
    flat = " ".join(before.stdout.split())
    assert "Emu cache:" in flat and "the next emulated run compiles the emulator" in flat
    assert str(tmp_path / "cache") in "".join(before.stdout.split())


def test_after_a_launch_info_says_the_cache_is_compiled():
    from click.testing import CliRunner

    from hostside.driver import Driver
    from vc4infer.cli import main
    from vc4infer.emu import core, warmup
    from vc4infer.qpu import qpu

    @qpu
    def end(asm):
        exit()  # noqa: F821 (a DSL name)

    with Driver(backend="emu") as drv:
        drv.execute(1, drv.program(end), uniforms=None)
    assert warmup.is_cached(core._run)
    result = CliRunner().invoke(main, ["info"])
    assert "compiled: loads in about a second" in " ".join(result.output.split())
