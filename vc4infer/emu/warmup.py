"""Getting the compiled emulator loop ready in a process, and saying so while it takes long.

The first emulated launch after an install or an edit compiles the loop with numba (about two
minutes on one x86 core; numba reports no progress); every later process loads it from numba's
on-disk cache in well under a second. `ensure_compiled` does that step before the first launch:
- under a file lock beside the cache, so that two processes starting cold at once (two pytest-xdist
  workers, a user's second terminal) compile once: the second waits, then loads the first's work;
- announcing a real compile (not a cache load) on the `vc4infer.emu` logger and, when the CLI has
  set `progress_on_stderr`, as one line on stderr, with an elapsed-time counter on a terminal.

`VC4INFER_STARTUP_REPORT=FILE` makes the process write, when the loop is ready, one JSON line to
FILE: seconds since the process started, and whether it compiled (`vc4infer bench --startup`).
"""
from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import sys
import threading
import time
from typing import Iterator, Optional, Sequence, TextIO

log = logging.getLogger("vc4infer.emu")

#: the CLI sets this: announcements then also go to stderr as they happen
progress_on_stderr = False
#: seconds between two updates of the elapsed-time counter on a terminal
TICK_SECONDS = 1.0
LOCK_NAME = "vc4infer-emu.lock"
COMPILING = ("compiling the QPU emulator with numba: once after an install or upgrade, "
             "about 2 minutes on one x86 core; later runs load it from {cache}")
WAITING = "waiting for another process that is compiling the QPU emulator (lock {lock})"


def cache_dir(dispatcher) -> Optional[str]:
    """The folder of numba's on-disk cache for `dispatcher` (None without numba)."""
    cache = getattr(dispatcher, "_cache", None)
    return getattr(cache, "cache_path", None)


def is_cached(dispatcher) -> bool:
    """Whether numba's cache holds `dispatcher` compiled from today's emulator sources, so that
    the next process loads it instead of compiling (numba may still recompile for another CPU)."""
    from vc4infer.emu import jit

    folder = cache_dir(dispatcher)
    if folder is None:
        return False
    try:
        with open(os.path.join(folder, jit.STAMP_NAME)) as f:
            current = f.read() == jit.sources_digest()
    except OSError:
        return False
    name = dispatcher.py_func.__qualname__
    module = dispatcher.py_func.__module__.rsplit(".", 1)[-1]
    return current and bool(glob.glob(os.path.join(folder, f"{module}.{name}-*.nbi")))


def ensure_compiled(dispatcher, args: Sequence) -> None:
    """Make `dispatcher` (a `jit` function) ready for `args`: loaded from the cache or compiled,
    once per process. Returns at once when it is ready or when numba is off."""
    from vc4infer.emu import jit     # here: the CLI imports this module without paying for numba

    if not jit.NUMBA_ENABLED or dispatcher.signatures:
        _report_startup(compiled=False)
        return
    import numba
    from numba.core import event

    signature = tuple(numba.typeof(a) for a in args)
    announcer = _Announcer(cache_dir(dispatcher))
    try:
        with _cache_lock(cache_dir(dispatcher)), event.install_listener("numba:compile",
                                                                       _listener(announcer)):
            with jit.vectorizing():
                dispatcher.compile(signature)
    finally:
        announcer.finish()
    _report_startup(compiled=announcer.started is not None)


@contextlib.contextmanager
def _cache_lock(folder: Optional[str]) -> Iterator[None]:
    """An exclusive lock on a file in `folder` (none where the folder cannot be written)."""
    try:
        import fcntl
        os.makedirs(folder, exist_ok=True)
        handle = open(os.path.join(folder, LOCK_NAME), "a")
    except (ImportError, OSError, TypeError):
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            _say(WAITING.format(lock=handle.name))
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(message: str) -> None:
    log.info(message)
    if progress_on_stderr:
        sys.stderr.write(f"vc4infer: {message}\n")
        sys.stderr.flush()


def _listener(announcer: "_Announcer"):
    """A numba:compile event listener that starts `announcer` (cache loads send no event)."""
    from numba.core.event import Listener

    class OnCompile(Listener):
        def on_start(self, event) -> None:
            announcer.start()

        def on_end(self, event) -> None:
            pass
    return OnCompile()


class _Announcer:
    """Says once that a compile runs, with a counter on a terminal, and how long it took."""

    def __init__(self, cache: Optional[str]):
        self.message = COMPILING.format(cache=cache)
        self.started: Optional[float] = None
        self._done = threading.Event()
        self._ticker: Optional[threading.Thread] = None

    def start(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()
            stream = sys.stderr
            if progress_on_stderr and stream.isatty():
                log.info(self.message)
                self._ticker = threading.Thread(target=self._tick, args=(stream,), daemon=True)
                self._ticker.start()
            else:
                _say(self.message)

    def _tick(self, stream: TextIO) -> None:
        while True:
            elapsed = time.perf_counter() - self.started
            stream.write(f"\rvc4infer: {self.message} ... {elapsed:.0f} s")
            stream.flush()
            if self._done.wait(TICK_SECONDS):
                stream.write("\n")
                stream.flush()
                return

    def finish(self) -> None:
        if self.started is None:
            return
        self._done.set()
        if self._ticker is not None:
            self._ticker.join()
        _say(f"the QPU emulator compiled in {time.perf_counter() - self.started:.0f} s")


_reported = False


def _report_startup(compiled: bool) -> None:
    """Once per process: the VC4INFER_STARTUP_REPORT line (see the module docstring)."""
    global _reported
    path = os.environ.get("VC4INFER_STARTUP_REPORT")
    if _reported or not path:
        return
    _reported = True
    seconds = time.time() - _process_start_time()
    with open(path, "a") as f:
        f.write(json.dumps({"seconds_to_loop": round(seconds, 3), "compiled": compiled}) + "\n")


def _process_start_time() -> float:
    """Wall-clock time at which this process started (Linux: from /proc; else this module's import)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


_IMPORTED_AT = time.time()
