"""The `hw` backend: QPU programs on a Raspberry Pi's V3D through the firmware mailbox.

Launch path (spec §13.1-13.3): qpu_enable(1) once; GPU memory from vcsm-cma or from the firmware
(gpumem.py); per launch a control list of (uniforms, code) bus-address pairs in GPU memory and
execute_qpu(n, control, noflush=0, timeout_ms). noflush=0 makes the firmware flush the V3D caches
before the programs start, so uniforms and code written by the host are seen fresh.

Nothing leaks: every allocation is recorded the moment the firmware or kernel hands it out; close()
(also run from `with`, from atexit, and on SIGTERM turned into SystemExit) releases every block and
powers the QPUs down. Ctrl-C is held back while an allocation or release is half done.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import math
import os
import signal
import threading
import time
from typing import Dict, Iterator, Optional, Sequence, Set, Tuple, Union

import numpy as np

from vc4infer.qpu.isa import NUM_QPUS

from . import simboard
from .backend import PI_LAUNCH_LIMIT_SECONDS, Allocation, Backend, LaunchStats
from .board import BoardInfo, detect_board, hw_blocker, kms_fix
from .errors import (DriverClosedError, DriverError, LaunchTimeoutError, MailboxError,
                     QpuEnableRefusedError, QpuExecuteError, ThreadCountError)
from .gpumem import GpuMemory, MailboxMemory, VcsmCmaDevice, VcsmCmaMemory
from .mailbox import CLOCK_V3D, ENABLE_QPU_ALREADY_ON, EXECUTE_QPU_TIMEOUT, Mailbox

log = logging.getLogger(__name__)

#: execute_qpu takes at most one program instance per QPU
MAX_QPUS = NUM_QPUS

_LIVE: Set["HwBackend"] = set()       # strong references: an unclosed backend is closed at exit
_LIVE_LOCK = threading.Lock()


def _close_all_live() -> None:
    for backend in list(_LIVE):
        try:
            backend.close()
        except Exception as exc:  # at exit: report, keep releasing the others
            log.error("releasing GPU resources of %r at exit failed: %s", backend, exc)


atexit.register(_close_all_live)


def _sigterm_to_exit(signum, frame):
    raise SystemExit(128 + signum)


def _install_sigterm_handler() -> None:
    """Turn SIGTERM into SystemExit so that `with` blocks and atexit release GPU memory (firmware
    allocations outlive the process otherwise). Only when nobody else handles SIGTERM."""
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _sigterm_to_exit)


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold back Ctrl-C until the block ends, so that a handle is never lost between the firmware
    handing it out and this process recording it. Outside the main thread: no-op."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield               # not ours to change (another thread, or a handler installed from C)
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending and callable(previous):
            previous(signal.SIGINT, pending[0])
        elif pending and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


class HwBackend(Backend):
    """A Raspberry Pi Zero/1/2/3 V3D. Options: `memory` ("auto", "vcsm-cma", "mailbox"),
    `host_cached` (vcsm-cma only: cached ARM mapping with clean/invalidate per launch), `board`:
    a simulated board's name ("pi3", "pi2", "pi1", "pi-zero": hostside.driver.simboard; also from
    the VC4INFER_SIMULATED_BOARD environment variable) or SimulatedFirmware (one with a smaller
    gpu_mem, or a failure switched on), or, for tests, a BoardInfo; and for tests
    `root`, `mailbox`, `vcsm_device`, `mem_path`."""

    name = "hw"
    max_launch_seconds: Optional[float] = PI_LAUNCH_LIMIT_SECONDS

    def __init__(self, *, memory: str = "auto", host_cached: bool = False, root: str = "/",
                 board: Union[BoardInfo, str, "simboard.SimulatedFirmware", None] = None,
                 mailbox: Optional[Mailbox] = None,
                 vcsm_device: Optional[VcsmCmaDevice] = None, mem_path: Optional[str] = None):
        if memory not in ("auto", "vcsm-cma", "mailbox"):
            raise DriverError(f"memory={memory!r}: choose 'auto', 'vcsm-cma' or 'mailbox'")
        #: the simulated board's firmware when this backend runs on one (hostside.driver.simboard)
        self.simulated: Optional[simboard.SimulatedFirmware] = None
        asks = isinstance(board, str) or (board is None and mailbox is None)
        name = simboard.requested(board) if asks else None
        if name:
            self.simulated = simboard.firmware_for(name)
        elif isinstance(board, simboard.SimulatedFirmware):   # one set up by the caller
            self.simulated = board
        if self.simulated is not None:
            board = self.simulated.board_info()
            mailbox = Mailbox(self.simulated, pointer_size=self.simulated.pointer_size)
            mem_path = self.simulated.mem_path
            vcsm_device = self.simulated.vcsm_cma
        self.board = board if board is not None else detect_board(root)
        blocker = hw_blocker(self.board)
        if blocker is not None:
            raise blocker
        self.closed = False
        self._lock = threading.RLock()
        self._allocations: Dict[int, Allocation] = {}
        self._qpu_on = False
        self.memory: Optional[GpuMemory] = None
        self._control: Optional[Allocation] = None
        self.clock_hz: Optional[float] = None
        self.mailbox = mailbox if mailbox is not None else Mailbox()
        with _LIVE_LOCK:
            _LIVE.add(self)
        _install_sigterm_handler()
        try:
            with sigint_deferred():
                self._enable_qpus()
            try:
                self.clock_hz = float(self.mailbox.get_clock_rate(CLOCK_V3D))
            except MailboxError as exc:
                log.warning("cannot read the V3D clock: %s", exc)
            self.memory = self._open_memory(memory, host_cached, root, vcsm_device, mem_path)
            if host_cached and not isinstance(self.memory, VcsmCmaMemory):
                raise DriverError("host_cached=True needs GPU memory from /dev/vcsm-cma; the "
                                  "mailbox memory is always mapped uncached")
            if host_cached:
                # only a cached ARM mapping needs maintenance; otherwise the Backend's no-ops stay,
                # and the Driver skips the per-launch calls altogether
                self.sync_for_gpu = self.memory.sync_for_gpu
                self.sync_for_cpu = self.memory.sync_for_cpu
            with sigint_deferred():
                self._control = self.memory.alloc(8 * MAX_QPUS, 16, "execute_qpu control list")
        except BaseException:
            self.close()
            raise
        log.info("hw backend: %s%s (%s), V3D at %s MHz, memory via %s",
                 "simulated " if self.simulated else "", self.board.model,
                 self.board.soc, f"{self.clock_hz / 1e6:.0f}" if self.clock_hz else "?",
                 self.memory.name)

    @property
    def modelled(self) -> bool:
        """On a simulated board the emulator runs the programs: its times are modelled."""
        return self.simulated is not None

    def _enable_qpus(self) -> None:
        try:
            status = self.mailbox.enable_qpu(True)
        except (MailboxError, TimeoutError) as exc:
            raise QpuEnableRefusedError(self._enable_refused(str(exc))) from None
        if status not in (0, ENABLE_QPU_ALREADY_ON):
            raise QpuEnableRefusedError(self._enable_refused(f"status 0x{status:08x}"))
        self._qpu_on = True

    def _enable_refused(self, what: str) -> str:
        return (f"the firmware refused to power on the QPUs ({what}). It does so when the vc4 "
                f"DRM driver owns the V3D (fix: {kms_fix(self.board)}) or with gpu_mem=16 (fix: "
                "`gpu_mem=64` or more in config.txt); an old firmware may also lack the call "
                "(`sudo apt full-upgrade`).")

    def _open_memory(self, memory: str, host_cached: bool, root: str,
                     vcsm_device: Optional[VcsmCmaDevice], mem_path: Optional[str]) -> GpuMemory:
        use_vcsm = memory == "vcsm-cma" or (memory == "auto" and (
            vcsm_device is not None or (mem_path is None and self.board.device("vcsm-cma")[1])))
        if use_vcsm:
            device = vcsm_device or VcsmCmaDevice(os.path.join(root, "dev", "vcsm-cma"))
            return VcsmCmaMemory(device, host_cached=host_cached)
        return MailboxMemory(self.mailbox, self.board.soc or "",
                             mem_path or os.path.join(root, "dev", "mem"))

    def _check_open(self) -> None:
        if self.closed:
            raise DriverClosedError("the hw backend is closed: create a new Driver")

    # --- Backend interface -------------------------------------------------------------------------
    def alloc(self, nbytes: int, align: int = 4096, label: str = "") -> Allocation:
        with self._lock:
            self._check_open()
            with sigint_deferred():
                allocation = self.memory.alloc(nbytes, align, label)
                self._allocations[id(allocation)] = allocation
        return allocation

    def free(self, allocation: Allocation) -> None:
        with self._lock:
            if id(allocation) not in self._allocations:
                raise DriverError("free() of a block this backend does not hold (freed twice?)")
            with sigint_deferred():
                self.memory.free(allocation)
                # forgotten only once given back: a failed free is finished by close()
                del self._allocations[id(allocation)]

    def execute(self, control: Sequence[Tuple[int, int]], timeout_s: float) -> LaunchStats:
        n = len(control)
        if not 1 <= n <= MAX_QPUS:
            raise ThreadCountError(f"{n} program instances: execute_qpu takes 1 to {MAX_QPUS}")
        limit_s = min(timeout_s, self.max_launch_seconds)
        with self._lock:
            self._check_open()
            words = self._control.buffer.view(np.uint32)
            words[:2 * n] = np.asarray(control, dtype=np.uint64).reshape(-1).astype(np.uint32)
            self.memory.sync_for_gpu(self._control)
            start = time.perf_counter()
            try:
                status = self.mailbox.execute_qpu(n, self._control.bus_address, 0,
                                                  max(1, math.ceil(limit_s * 1000)))
            except TimeoutError:
                status = EXECUTE_QPU_TIMEOUT
            wall = time.perf_counter() - start
        if status == EXECUTE_QPU_TIMEOUT:
            raise LaunchTimeoutError(
                f"the QPU programs did not end within {limit_s:g} s (execute_qpu timed out after "
                f"{wall:.3f} s of wall time)")
        if status != 0:
            raise QpuExecuteError(f"execute_qpu answered 0x{status:08x} (neither success nor timeout)")
        if self.simulated is not None:       # the emulator's modelled figures, this host's wall time
            return dataclasses.replace(self.simulated.last_stats, backend="hw", wall_seconds=wall)
        return LaunchStats(backend="hw", n_threads=n, wall_seconds=wall, clock_hz=self.clock_hz)

    def _power_down(self) -> None:
        """qpu_enable(0), tried twice: a board left with its QPUs on draws power until reboot. An
        answer other than 0 or the reference-count answer (ENABLE_QPU_ALREADY_ON) is a failure."""
        if not self._qpu_on:
            return
        for attempt in range(2):
            try:
                status = self.mailbox.enable_qpu(False)
            except (MailboxError, TimeoutError):
                if attempt:
                    raise
                log.warning("qpu_enable(0) failed; trying once more")
                continue
            if status in (0, ENABLE_QPU_ALREADY_ON):
                return
            if attempt:
                raise MailboxError(f"qpu_enable(0) answered 0x{status:08x} twice: the QPUs may "
                                   "still be powered (a reboot powers them down)")
            log.warning("qpu_enable(0) answered 0x%08x; trying once more", status)

    def close(self) -> None:
        """Release every block, power the QPUs down, close the devices. Idempotent; keeps going
        past failures, tries a block whose release failed once more (a mailbox call that timed
        out may answer the next time), and reports the first failure at the end."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            errors = []
            with sigint_deferred():
                blocks = [a for a in list(self._allocations.values()) + [self._control]
                          if a is not None and self.memory is not None]
                for attempt in range(2):          # a call that timed out once may answer now
                    failed = []
                    for allocation in blocks:
                        try:
                            self.memory.free(allocation)
                        except Exception as exc:
                            failed.append(allocation)
                            if attempt == 0:
                                errors.append(exc)     # reported even when the retry succeeds
                    blocks = failed
                self._allocations.clear()
                self._control = None
                for step in (lambda: self.memory and self.memory.close(),
                             self._power_down, self.mailbox.close):
                    try:
                        step()
                    except Exception as exc:
                        errors.append(exc)
                self._qpu_on = False
            with _LIVE_LOCK:
                _LIVE.discard(self)
        if errors:
            raise DriverError(f"closing the hw backend: {errors[0]}") from errors[0]
