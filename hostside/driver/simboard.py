"""A simulated Raspberry Pi below the device boundary, for running the hw backend with no board.

    VC4INFER_SIMULATED_BOARD=pi3 vc4infer classify photo.png --backend hw
    Driver(backend="hw", board="pi-zero")

Everything above /dev/vcio and /dev/mem is the production code: the hw backend sends the same
property buffers, maps GPU memory through the same mmap of "/dev/mem" at the physical addresses the
firmware hands out, and builds the same control lists. Below them this module answers as the
firmware does (spec §13.2-13.5):

- SDRAM is one sparse memfd the size of the board's RAM; "/dev/mem" is that file, and the top
  `gpu_mem` bytes are the GPU's, from which mem_alloc allocates (handle 0 when used up);
- /dev/vcsm-cma (`SimulatedVcsmCma`) hands out blocks of the CMA pool below the GPU's share as
  dma-bufs (memfds) laid over the SDRAM pages they stand for, so host and QPUs share them. A block
  asked for host-cached is not: the QPUs see the host's writes only after the clean
  (DMA_BUF_IOCTL_SYNC end) and the host sees the QPUs' only after the invalidate (sync start), as
  on a board whose caches never happen to write back on their own (the pessimistic reading);
- mem_lock gives the bus address: the physical address with the alias bits of the SoC and the
  allocation's cache flags (§13.4; BCM2835 and BCM2836/7 differ);
- execute_qpu reads the control list from that memory and runs the programs on the emulator
  (vc4infer.emu), which reads and writes the same pages through bus addresses. The emulator sees
  the GPU memory at the uncached 0xC alias, the one the hw backend's flags give on every SoC: an
  address with other alias bits, or outside every allocation, faults as the emulator reports it;
- a launch whose modelled time at the board's V3D clock exceeds the requested timeout answers
  0x80000000 (timeout), as the firmware does when the kernel's 1 s mailbox limit runs out.
"""
from __future__ import annotations

import collections
import ctypes
import errno
import mmap
import os
import struct
import weakref
from dataclasses import dataclass, field
from typing import Deque, Dict, Optional, Tuple

import numpy as np

from vc4infer.device import DriverError, LaunchStats, OutOfGpuMemoryError
from vc4infer.emu.errors import ModelledTimeLimitError
from vc4infer.emu.memory import GpuMemory

from . import mailbox as mb
from .board import BoardInfo, decode_revision
from .gpumem import (DMA_BUF_IOCTL_SYNC, DMA_BUF_SYNC_END, VCSM_ALLOC_STRUCT, VCSM_IOCTL_MEM_ALLOC,
                     VcsmCmaDevice, bus_to_phys, map_shared_at)

#: the environment variable that makes every hw backend of the process use a simulated board
ENV_VAR = "VC4INFER_SIMULATED_BOARD"
#: the GPU's share of SDRAM (config.txt `gpu_mem=128`, the usual setting for camera work)
GPU_MEM_BYTES = 128 << 20
#: the CMA pool vcsm-cma allocates from, just below the GPU's share (`dtoverlay=cma,cma-256`)
CMA_BYTES = 256 << 20
#: the alias the emulator sees GPU memory at: uncached ("direct"), spec §13.4
EMULATOR_ALIAS = 0xC0000000
#: bus-address alias bits per mem_alloc cache flags (bits 3:2) as librpimemmgr observed them on
#: boards (spec §13.4-13.5): NORMAL 0x0, DIRECT 0xC (0x4 on BCM2835), COHERENT 0x8,
#: L1_NONALLOCATING 0xC on BCM2835 and 0x8 on BCM2836/7
ALIAS_BY_CACHE_FLAGS = {
    "BCM2835": (0x00000000, 0x40000000, 0x80000000, 0xC0000000),
    "BCM2836": (0x00000000, 0xC0000000, 0x80000000, 0x80000000),
    "BCM2837": (0x00000000, 0xC0000000, 0x80000000, 0x80000000),
}
#: property calls kept in `recent_calls`
RECENT_CALLS = 4096
FIRMWARE_REVISION = 0x5F6A2C4B        # an arbitrary date stamp: the simulation's firmware
#: what a garbage answer (fail_mode) holds in every value
GARBAGE_WORD = 0xDEADBEEF


@dataclass(frozen=True)
class BoardSpec:
    """What a simulated board is: its revision code (model, SoC and RAM follow from it, as on a
    Pi), the name /proc/device-tree gives, its default V3D and ARM clocks (spec §1.2)."""
    revision: int
    model: str
    compatible: Tuple[str, ...]
    v3d_hz: int
    arm_hz: int

    @property
    def soc(self) -> str:
        return decode_revision(self.revision)[1]

    @property
    def ram_bytes(self) -> int:
        return decode_revision(self.revision)[2]


#: the boards the simulation offers; revision codes from the Raspberry Pi documentation's table
BOARDS: Dict[str, BoardSpec] = {
    "pi3": BoardSpec(0xA02082, "Raspberry Pi 3 Model B Rev 1.2",
                     ("raspberrypi,3-model-b", "brcm,bcm2837"), 400_000_000, 1_200_000_000),
    "pi2": BoardSpec(0xA01041, "Raspberry Pi 2 Model B Rev 1.1",
                     ("raspberrypi,2-model-b", "brcm,bcm2836"), 250_000_000, 900_000_000),
    "pi1": BoardSpec(0x0010, "Raspberry Pi Model B Plus Rev 1.2",
                     ("raspberrypi,model-b-plus", "brcm,bcm2835"), 250_000_000, 700_000_000),
    "pi-zero": BoardSpec(0x900092, "Raspberry Pi Zero Rev 1.2",
                         ("raspberrypi,model-zero", "brcm,bcm2835"), 300_000_000, 1_000_000_000),
}


class SimulatedBoardError(DriverError, ValueError):
    """An unknown simulated board name or option."""


def requested(board: object = None) -> Optional[str]:
    """The name of the simulated board asked for: `board` when it is a name, else the
    VC4INFER_SIMULATED_BOARD environment variable; None for a real board."""
    return board if isinstance(board, str) and board else (os.environ.get(ENV_VAR) or None)


#: kernel architecture option -> the pointer size of its ioctl numbers (32-bit Raspberry Pi OS
#: by default; ":arm64" for the 64-bit one)
POINTER_SIZES = {"armhf": 4, "arm64": 8}
BOARD_OPTIONS = ("':arm64' (a 64-bit kernel), ':gpu_mem=MB', ':cma=MB', ':kms' (the vc4 DRM "
                 "driver holds the V3D), ':no-vcsm' (no /dev/vcsm-cma: GPU memory from gpu_mem)")


def firmware_for(name: str) -> "SimulatedFirmware":
    """The simulated board a name describes: "pi3", "pi-zero:arm64", "pi1:gpu_mem=32",
    "pi3:kms"; SimulatedBoardError names the choices."""
    board, *options = name.strip().split(":")
    settings: dict = {}
    for option in options:
        key, _, value = option.partition("=")
        if key in POINTER_SIZES and not value:
            settings["pointer_size"] = POINTER_SIZES[key]
        elif key == "gpu_mem" and value.isdigit() and 16 <= int(value) <= 256:
            settings["gpu_mem_bytes"] = int(value) << 20
        elif key == "cma" and value.isdigit() and 1 <= int(value) <= 256:
            settings["cma_bytes"] = int(value) << 20
        elif key == "kms" and not value:
            settings["refuse_qpu_enable"] = True
        elif key == "no-vcsm" and not value:
            settings["has_vcsm_cma"] = False
        else:
            board = ""                          # reported below, with the choices
    if board not in BOARDS:
        raise SimulatedBoardError(
            f"simulated board {name!r}: give one of {', '.join(BOARDS)}, optionally with "
            f"{BOARD_OPTIONS} (in {ENV_VAR} or Driver(board=...))")
    return SimulatedFirmware(BOARDS[board], **settings)


@dataclass
class _Handle:
    size: int
    flags: int
    bus: int                    # at EMULATOR_ALIAS: where the emulator's allocation table has it
    locked: bool = False


@dataclass
class SimulatedFirmware:
    """The VideoCore firmware's mailbox property interface of a simulated board: the hw backend's
    Mailbox talks to it in place of /dev/vcio (ioctl(request, buf), close())."""
    spec: BoardSpec
    pointer_size: int = 4
    gpu_mem_bytes: int = GPU_MEM_BYTES
    #: failure modes a test or a demonstration can switch on
    refuse_qpu_enable: bool = False       # what the firmware does when the vc4 DRM driver owns the V3D
    has_vcsm_cma: bool = True             # the kernel has /dev/vcsm-cma (Raspberry Pi OS since 2020)
    #: fault injection: the property call with this number (0, 1, ... in the order they come)
    #: fails as `fail_mode` says: "timeout", as the kernel fails a call whose answer does not come
    #: (ETIMEDOUT); "garbage", a well-formed answer whose every value is GARBAGE_WORD, the call
    #: not carried out (a firmware that answers something else than what was asked)
    fail_call: Optional[int] = None
    fail_mode: str = "timeout"
    cma_bytes: int = CMA_BYTES
    handles: Dict[int, _Handle] = field(default_factory=dict)
    last_stats: Optional[LaunchStats] = None

    def __post_init__(self) -> None:
        if self.pointer_size not in (4, 8):
            raise SimulatedBoardError(f"pointer_size={self.pointer_size}: a Pi's kernel is 32-bit "
                                      "(4) or 64-bit (8)")
        ram = self.spec.ram_bytes
        self.vc_base = ram - self.gpu_mem_bytes
        self.sdram_fd = os.memfd_create("vc4infer-simulated-sdram")
        os.ftruncate(self.sdram_fd, ram)                 # sparse: untouched pages cost nothing
        weakref.finalize(self, os.close, self.sdram_fd)
        #: what the hw backend opens as /dev/mem
        self.mem_path = f"/proc/{os.getpid()}/fd/{self.sdram_fd}"
        # the emulator sees all of SDRAM; mem_alloc places in the GPU's share, vcsm-cma below it
        self._sdram_view = mmap.mmap(self.sdram_fd, ram)
        self.memory = GpuMemory(ram, base=EMULATOR_ALIAS,
                                data=np.frombuffer(self._sdram_view, dtype=np.uint8))
        self.gpu_window = (EMULATOR_ALIAS + self.vc_base, EMULATOR_ALIAS + ram)
        self.cma_window = (EMULATOR_ALIAS + max(0, self.vc_base - self.cma_bytes), self.gpu_window[0])
        self.vcsm_cma = SimulatedVcsmCma(self) if self.has_vcsm_cma else None
        from vc4infer.emu.machine import Machine    # the emulator only where a board is simulated

        from .emu import _disassembled
        self.machine = Machine(self.memory, clock_hz=self.spec.v3d_hz,
                               describe_instruction=_disassembled)
        self.qpu_enabled = False
        self.calls_made = 0
        #: the latest property calls as (tag, request values), for inspection
        self.recent_calls: Deque[Tuple[int, Tuple[int, ...]]] = collections.deque(maxlen=RECENT_CALLS)
        self.next_handle = 1
        self.closed = False

    def __repr__(self) -> str:
        return f"<SimulatedFirmware of a {self.spec.model}>"

    # --- the device --------------------------------------------------------------------------
    def ioctl(self, request: int, buf: bytearray) -> None:
        """One property call: parse the buffer (spec §13.2), answer every tag in place."""
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor (the simulated /dev/vcio was closed)")
        self.calls_made += 1
        garbage = self.fail_call == self.calls_made - 1 and self.fail_mode == "garbage"
        if self.fail_call == self.calls_made - 1 and not garbage:
            raise OSError(errno.ETIMEDOUT, "Connection timed out (fault injected)")
        if request != mb.mbox_property_ioctl_number(self.pointer_size):
            raise OSError(errno.ENOTTY, f"ioctl 0x{request:08x} is not this kernel's "
                                        "IOCTL_MBOX_PROPERTY (pointer size mismatch?)")
        words = list(struct.unpack(f"<{len(buf) // 4}I", bytes(buf[:len(buf) // 4 * 4])))
        if len(buf) % 4 or len(words) < 3 or words[0] != len(buf) or words[1] != mb.PROCESS_REQUEST:
            raise OSError(errno.EINVAL, "malformed mailbox property buffer")
        i, status = 2, mb.REQUEST_SUCCESS
        while i < len(words) and words[i] != 0:
            tag, value_bytes, request_bytes = words[i:i + 3]
            values = words[i + 3:i + 3 + value_bytes // 4]
            self.recent_calls.append((tag, tuple(values[:request_bytes // 4])))
            answer = ([GARBAGE_WORD] * (value_bytes // 4) if garbage
                      else self._answer(tag, values[:request_bytes // 4]))
            if answer is None or 4 * len(answer) > value_bytes:
                status = mb.PARSE_ERROR
            else:
                words[i + 3:i + 3 + len(answer)] = answer
                words[i + 2] = mb.RESPONSE_BIT | 4 * len(answer)
            i += 3 + value_bytes // 4
        if i >= len(words):
            status = mb.PARSE_ERROR                      # no end tag
        words[1] = status
        buf[:4 * len(words)] = struct.pack(f"<{len(words)}I", *words)

    def close(self) -> None:
        """Close the device (/dev/vcio). The SDRAM lives on while this object or a mapping of it
        does (its memfd is closed when the object is collected)."""
        self.closed = True

    def sdram_address(self, bus: int) -> int:
        """This process's address of the emulator's view of the byte at bus address `bus`."""
        base = ctypes.addressof(ctypes.c_char.from_buffer(self._sdram_view))
        return base + bus - self.memory.base

    # --- the firmware's side -----------------------------------------------------------------
    def _answer(self, tag: int, v: list) -> Optional[list]:
        if tag == mb.TAG_ENABLE_QPU and len(v) == 1:
            if self.refuse_qpu_enable and v[0]:
                return [1]
            self.qpu_enabled = bool(v[0])
            return [0]
        if tag == mb.TAG_MEM_ALLOC and len(v) == 3:
            return [self._mem_alloc(*v)]
        if tag in (mb.TAG_MEM_LOCK, mb.TAG_MEM_UNLOCK, mb.TAG_MEM_FREE) and len(v) == 1:
            return [self._memory_call(tag, self.handles.get(v[0]), v[0])]
        if tag == mb.TAG_EXECUTE_QPU and len(v) == 4:
            return [self._execute_qpu(*v)]
        if tag in (mb.TAG_GET_CLOCK_RATE, mb.TAG_GET_MAX_CLOCK_RATE) and len(v) == 1:
            rates = {mb.CLOCK_V3D: self.spec.v3d_hz, mb.CLOCK_ARM: self.spec.arm_hz}
            return [v[0], rates.get(v[0], 250_000_000)]
        if tag == mb.TAG_GET_VC_MEMORY:
            return [self.vc_base, self.gpu_mem_bytes]
        if tag == mb.TAG_GET_ARM_MEMORY:
            return [0, self.vc_base]
        if tag == mb.TAG_GET_BOARD_REVISION:
            return [self.spec.revision]
        if tag == mb.TAG_GET_FIRMWARE_REVISION:
            return [FIRMWARE_REVISION]
        return None

    def _mem_alloc(self, size: int, align: int, flags: int) -> int:
        if size == 0 or align == 0 or align & (align - 1):
            return 0
        try:
            bus, _ = self.memory.alloc(size, align, f"mem_alloc handle {self.next_handle}",
                                       window=self.gpu_window)
        except OutOfGpuMemoryError:
            return 0                                     # gpu_mem used up: handle 0
        handle, self.next_handle = self.next_handle, self.next_handle + 1
        self.handles[handle] = _Handle(size, flags, bus)
        return handle

    def _memory_call(self, tag: int, h: Optional[_Handle], handle: int) -> int:
        if h is None:
            return 0 if tag == mb.TAG_MEM_LOCK else 1
        if tag == mb.TAG_MEM_LOCK:
            h.locked = True
            return bus_to_phys(h.bus) | ALIAS_BY_CACHE_FLAGS[self.spec.soc][(h.flags >> 2) & 3]
        if tag == mb.TAG_MEM_UNLOCK:
            h.locked = False
            return 0
        self.memory.free(h.bus)
        del self.handles[handle]
        return 0

    def _execute_qpu(self, n: int, control: int, noflush: int, timeout_ms: int) -> int:
        if not self.qpu_enabled or not 1 <= n <= 12:
            return mb.EXECUTE_QPU_TIMEOUT
        if self.vcsm_cma is not None:
            self.vcsm_cma.collect()                      # blocks whose last fd was closed
        offset = control - self.memory.base
        if not self.memory.find(control, 8 * n):
            return mb.EXECUTE_QPU_TIMEOUT                # the V3D would read garbage and hang
        words = self.memory.data[offset:offset + 8 * n].view(np.uint32)
        limit_s = timeout_ms / 1000                      # of V3D time, here modelled
        try:
            self.last_stats = self.machine.run(list(zip(words[0::2].tolist(), words[1::2].tolist())),
                                               max_modelled_s=limit_s)
        except ModelledTimeLimitError:
            return mb.EXECUTE_QPU_TIMEOUT
        if self.last_stats.modelled_seconds > limit_s:  # ended after the limit, between checks
            return mb.EXECUTE_QPU_TIMEOUT
        return 0

    # --- what the simulation shows its user ----------------------------------------------------
    def board_info(self) -> BoardInfo:
        """The BoardInfo that detect_board would read on this board (no KMS, gpu_mem=128)."""
        board_type, soc, ram = decode_revision(self.spec.revision)
        return BoardInfo(root="(simulated)", is_raspberry_pi=True, model=self.spec.model,
                         board_type=board_type, soc=soc, revision=self.spec.revision,
                         ram_bytes=ram, compatible=self.spec.compatible,
                         machine="ARMv7 Processor (simulated)",
                         gpu_mem_mb=self.gpu_mem_bytes >> 20, config_path="/boot/config.txt",
                         cma_total_bytes=self.cma_bytes, cma_free_bytes=self.cma_bytes - sum(
                             b.size for b in (self.vcsm_cma.blocks.values() if self.vcsm_cma else ())),
                         devices={"vcio": (True, True), "mem": (True, True),
                                  "vcsm-cma": (self.has_vcsm_cma, self.has_vcsm_cma)})

    def live_handles(self) -> Dict[int, _Handle]:
        """Handles the firmware holds (what a process leaks if it exits without freeing)."""
        return dict(self.handles)

    def live_cma_blocks(self) -> int:
        """vcsm-cma blocks some process still holds a reference to."""
        if self.vcsm_cma is None:
            return 0
        self.vcsm_cma.collect()
        return len(self.vcsm_cma.blocks)


@dataclass
class _CmaBlock:
    fd: int                     # the dma-buf (a memfd) the process holds
    inode: int                  # to tell it from a later file that reuses the fd number
    bus: int
    size: int
    cached: bool


class SimulatedVcsmCma(VcsmCmaDevice):
    """/dev/vcsm-cma of a simulated board: CMA blocks as dma-bufs (memfds). An uncached block is
    laid over the SDRAM pages of its bus address (host and QPUs share them); a host-cached one is
    copied to them by the clean and back by the invalidate (DMA_BUF_IOCTL_SYNC)."""

    def __init__(self, firmware: SimulatedFirmware):
        self.firmware = firmware
        self.blocks: Dict[int, _CmaBlock] = {}          # bus address -> block
        #: fault injection: the ioctl with this number (0, 1, ...) fails with EIO ("error"), or
        #: ("garbage") an allocation hands out its block but answers GARBAGE_WORD for the bus
        #: address (a sync answers nothing: it runs as usual)
        self.fail_call: Optional[int] = None
        self.fail_mode = "error"
        self.calls_made = 0
        super().__init__(path="/dev/vcsm-cma (simulated)")

    def open_path(self, path: str) -> int:
        return os.open(os.devnull, os.O_RDWR)

    def ioctl(self, fd: int, request: int, buf: bytearray) -> None:
        self.collect()
        self.calls_made += 1
        faulty = self.fail_call == self.calls_made - 1
        if faulty and self.fail_mode != "garbage":
            raise OSError(errno.EIO, "Input/output error (fault injected)")
        if request == VCSM_IOCTL_MEM_ALLOC and fd == self.fd:
            size, num, cached, _, name = VCSM_ALLOC_STRUCT.unpack(bytes(buf))[:5]
            block = self._alloc(size, cached, name.rstrip(b"\0").decode(errors="replace"))
            buf[:] = VCSM_ALLOC_STRUCT.pack(size, num, cached, 0, name, block.fd, len(self.blocks),
                                            GARBAGE_WORD if faulty else block.bus)
        elif request == DMA_BUF_IOCTL_SYNC:
            self._sync(fd, struct.unpack("<Q", bytes(buf))[0])
        else:
            raise OSError(errno.ENOTTY, "Inappropriate ioctl for device")

    def _alloc(self, size: int, cached: int, name: str) -> _CmaBlock:
        if size == 0 or size % mmap.PAGESIZE:
            raise OSError(errno.EINVAL, "Invalid argument")
        memory = self.firmware.memory
        try:
            bus, _ = memory.alloc(size, mmap.PAGESIZE, name, window=self.firmware.cma_window)
        except OutOfGpuMemoryError:
            raise OSError(errno.ENOMEM, "Cannot allocate memory") from None
        fd = os.memfd_create("vcsm-cma dma-buf")
        os.ftruncate(fd, size)
        block = _CmaBlock(fd, os.fstat(fd).st_ino, bus, size, cached != 0)
        if not block.cached:                             # one set of pages for host and QPUs
            map_shared_at(self.firmware.sdram_address(bus), size, fd, 0)
        self.blocks[bus] = block
        return block

    def _sync(self, fd: int, flags: int) -> None:
        block = next((b for b in self.blocks.values() if b.fd == fd), None)
        if block is None or not block.cached:
            return
        gpu = self.firmware.memory.data
        offset = block.bus - self.firmware.memory.base
        if flags & DMA_BUF_SYNC_END:                      # clean: the host's writes reach SDRAM
            gpu[offset:offset + block.size] = np.frombuffer(os.pread(fd, block.size, 0), np.uint8)
        else:                                             # invalidate: the host sees SDRAM
            os.pwrite(fd, gpu[offset:offset + block.size].tobytes(), 0)

    def collect(self) -> None:
        """Free the blocks whose dma-buf the process has closed (the kernel frees a CMA block
        when its last reference goes): give the SDRAM pages back to the emulator's view."""
        for bus, block in list(self.blocks.items()):
            try:
                alive = os.fstat(block.fd).st_ino == block.inode
            except OSError:
                alive = False
            if not alive:
                if not block.cached:
                    map_shared_at(self.firmware.sdram_address(bus), block.size,
                                  self.firmware.sdram_fd, bus - self.firmware.memory.base)
                self.firmware.memory.free(bus)
                del self.blocks[bus]
