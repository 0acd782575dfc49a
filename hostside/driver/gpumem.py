"""GPU-visible memory mapped into this process, for the `hw` backend.

Two ways to get it (spec §13.4-13.5):
- MailboxMemory: the firmware allocates from the gpu_mem split (mailbox mem_alloc + mem_lock) and
  the process maps it through /dev/mem (root) at the physical address of the bus address.
  mem_alloc flags per SoC follow hello_fft: BCM2835 takes MEM_FLAG_L1_NONALLOCATING (GPU accesses
  allocate in the VideoCore L2, which the ARM also goes through on that SoC); BCM2836/7 take
  MEM_FLAG_DIRECT (uncached), because their ARM cannot see the VideoCore L2. The ARM mapping is
  opened with O_SYNC (uncached), so there are no dirty ARM cache lines to clean: mixing cached and
  uncached views is what made launches time out for others (firmware#1633).
- VcsmCmaMemory: the kernel's vcsm-cma driver allocates from the CMA pool and hands back a
  dma-buf fd and the bus address (its dma_addr already carries the VideoCore alias); group video
  suffices. Used through its ioctls, so no libvcsm is needed (64-bit Raspberry Pi OS has none).

Freed mappings are not simply unmapped: numpy arrays may still point into them. They are replaced
in place by anonymous memory (MAP_FIXED), so a stale array reads zeros instead of crashing or
touching memory the firmware has handed to someone else, and unmapped when the last view dies.
"""
from __future__ import annotations

import abc
import ctypes
import errno
import logging
import mmap
import os
import struct
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from .backend import Allocation
from .errors import DriverError, GpuMemoryTooSmallError, HwPermissionError
from .mailbox import MEM_FLAG_DIRECT, MEM_FLAG_L1_NONALLOCATING, VC_ADDRESS_SPACE_BYTES, Mailbox

log = logging.getLogger(__name__)
PAGE_BYTES = mmap.PAGESIZE
_MAP_FIXED = 0x10          # same value on Linux ARM, ARM64 and x86
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long)
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_MAP_FAILED = ctypes.c_void_p(-1).value

#: mem_alloc flag per SoC (hello_fft's choice; librpimemmgr's rule table, spec §13.5)
MEM_FLAGS_BY_SOC = {"BCM2835": MEM_FLAG_L1_NONALLOCATING, "BCM2836": MEM_FLAG_DIRECT,
                    "BCM2837": MEM_FLAG_DIRECT}


def bus_to_phys(bus_address: int) -> int:
    """ARM physical address of a mailbox bus address allocated with MEM_FLAGS_BY_SOC: the top two
    bits select the VideoCore cache alias and are dropped (hello_fft, VC4CL)."""
    return bus_address & ~0xC0000000


def round_up(n: int, multiple: int) -> int:
    """n rounded up to a multiple of `multiple`."""
    return (n + multiple - 1) // multiple * multiple


def map_shared_at(address: int, nbytes: int, fd: int, offset: int) -> None:
    """Map `nbytes` of file `fd` from `offset` over this process's pages at `address` (MAP_FIXED,
    shared), replacing what was mapped there: a simulated board lays a dma-buf over its SDRAM."""
    ptr = _libc.mmap(address, nbytes, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED | _MAP_FIXED,
                     fd, offset)
    if ptr != address:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap at 0x{address:x}: {os.strerror(err)}")


def _unmap(ptr: int, nbytes: int) -> None:
    _libc.munmap(ptr, nbytes)


class HostMapping:
    """`nbytes` of this process's address space at `ptr`, mapped onto GPU memory."""

    def __init__(self, fd: int, nbytes: int, offset: int):
        ptr = _libc.mmap(None, nbytes, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, offset)
        if ptr in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            raise OSError(err, f"mmap of {nbytes} bytes at offset 0x{offset:x}: {os.strerror(err)}")
        self.ptr, self.nbytes = ptr, nbytes
        self.buffer: Optional[Any] = (ctypes.c_ubyte * nbytes).from_address(ptr)
        # unmap once nothing refers to the memory any more; never at interpreter exit, where numpy
        # arrays may outlive the finaliser
        fin = weakref.finalize(self.buffer, _unmap, ptr, nbytes)
        fin.atexit = False

    def retire(self) -> None:
        """Detach from the GPU memory: the range becomes private zero-filled memory."""
        if self.buffer is None:
            return
        ptr = _libc.mmap(self.ptr, self.nbytes, mmap.PROT_READ | mmap.PROT_WRITE,
                         mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED, -1, 0)
        if ptr != self.ptr:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot detach a GPU memory mapping: {os.strerror(err)}")
        self.buffer = None


@dataclass
class _Block:
    mapping: HostMapping
    key: Any                   # mailbox handle or dma-buf fd; None once given back
    offset: int = 0            # of the aligned start inside the mapping
    locked: bool = True        # mailbox blocks: still locked


def _release_steps(steps) -> None:
    """Run every release step even when one fails; raise the first failure at the end (a block
    whose release failed half-way keeps what is left to do, and can be freed again)."""
    first: Optional[BaseException] = None
    for step in steps:
        try:
            step()
        except Exception as exc:         # noqa: BLE001 - collected and re-raised below
            first = first or exc
    if first is not None:
        raise first


def _allocation(block: _Block, bus: int, nbytes: int) -> Allocation:
    import numpy as np
    view = np.frombuffer(block.mapping.buffer, dtype=np.uint8, count=nbytes, offset=block.offset)
    return Allocation(bus_address=bus, nbytes=nbytes, buffer=view, handle=block)


class GpuMemory(abc.ABC):
    """A source of GPU memory blocks that the host can read and write."""

    name = "?"

    @abc.abstractmethod
    def alloc(self, nbytes: int, align: int, label: str) -> Allocation:
        """A block of at least `nbytes` whose bus address is a multiple of `align`."""

    @abc.abstractmethod
    def free(self, allocation: Allocation) -> None:
        """Give the block back."""

    def sync_for_gpu(self, allocation: Allocation) -> None:
        """Clean host caches of the block before the GPU reads it (nothing on uncached maps)."""
        return None

    def sync_for_cpu(self, allocation: Allocation) -> None:
        """Invalidate host caches of the block after the GPU wrote it (nothing on uncached maps)."""
        return None

    def close(self) -> None:
        """Release what the source itself holds (not the blocks)."""
        return None


class MailboxMemory(GpuMemory):
    """Firmware allocations (gpu_mem) mapped through /dev/mem."""

    name = "mailbox+/dev/mem"

    def __init__(self, mailbox: Mailbox, soc: str, mem_path: str = "/dev/mem"):
        if soc not in MEM_FLAGS_BY_SOC:
            raise DriverError(f"no mem_alloc flags known for {soc}")
        self.mailbox, self.soc, self.flags = mailbox, soc, MEM_FLAGS_BY_SOC[soc]
        try:
            self.vc_memory: Optional[Tuple[int, int]] = mailbox.get_vc_memory()
        except (DriverError, TimeoutError) as exc:    # locked addresses go unchecked then
            log.warning("cannot read the GPU's memory split: %s", exc)
            self.vc_memory = None
        try:
            self.fd: Optional[int] = os.open(mem_path, os.O_RDWR | os.O_SYNC)
        except (PermissionError, FileNotFoundError) as exc:
            raise HwPermissionError(
                f"cannot open {mem_path} ({exc.strerror}): mapping firmware GPU memory through "
                f"{mem_path} needs root. Run as root (sudo), or use a kernel with /dev/vcsm-cma "
                "and the video group.") from None

    def alloc(self, nbytes: int, align: int, label: str) -> Allocation:
        size = round_up(max(nbytes, 1), PAGE_BYTES)
        handle = self.mailbox.mem_alloc(size, max(align, PAGE_BYTES), self.flags)
        if handle == 0:
            vc = (f" (the GPU has {self.vc_memory[1] >> 20} MB in all)" if self.vc_memory else "")
            raise GpuMemoryTooSmallError(
                f"the firmware cannot allocate {size} bytes for {label or 'a buffer'}{vc}: gpu_mem "
                "is too small or used up. Fix: raise `gpu_mem=` in /boot/firmware/config.txt (or "
                "/boot/config.txt), e.g. `gpu_mem=128`, then `sudo reboot`; or ask the Driver for "
                "less (data_area_size=).")
        try:
            bus = self.mailbox.mem_lock(handle)
            if bus == 0:
                raise DriverError(f"the firmware could not lock GPU memory handle {handle}")
            phys = bus_to_phys(bus)
            if self.vc_memory is not None:
                base, vc_size = bus_to_phys(self.vc_memory[0]), self.vc_memory[1]
                if not (base <= phys and phys + size <= base + vc_size):
                    raise DriverError(
                        f"bus address 0x{bus:08x} maps to physical 0x{phys:08x}, outside the GPU "
                        f"memory [0x{base:08x}, 0x{base + vc_size:08x}): refusing to map it")
            try:
                mapping = HostMapping(self.fd, size, phys)
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.EACCES):
                    raise HwPermissionError(
                        f"the kernel refused to map /dev/mem at 0x{phys:08x} ({exc.strerror}): run "
                        "as root, on a kernel that allows /dev/mem access to GPU memory") from None
                raise
        except BaseException:
            try:
                _release_steps([lambda: self.mailbox.mem_unlock(handle),
                                lambda: self.mailbox.mem_free(handle)])
            except Exception as exc:      # the allocation's own error is the one to report
                log.warning("giving back GPU memory handle %d after a failed allocation: %s",
                            handle, exc)
            raise
        return _allocation(_Block(mapping, handle), bus, nbytes)

    def free(self, allocation: Allocation) -> None:
        block: _Block = allocation.handle

        # a non-zero answer says the call was not carried out: ask once more before giving up
        def unlock():
            if block.key is not None and block.locked:
                _twice(self.mailbox.mem_unlock, "mem_unlock", block.key)
                block.locked = False

        def free():
            if block.key is not None:
                _twice(self.mailbox.mem_free, "mem_free", block.key)
                block.key = None

        _release_steps([block.mapping.retire, unlock, free])

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _twice(call: Callable[[int], int], name: str, handle: int) -> None:
    """`call(handle)`, and once more if the firmware answers non-zero (not done); a second
    non-zero answer is logged: the firmware may still hold the handle."""
    for attempt in range(2):
        status = call(handle)
        if not status:
            return
        log.warning("the firmware answered %s %d for handle %d (0 = OK)%s", name, status, handle,
                    "; asking again" if attempt == 0 else "; giving up on it")


# --- vcsm-cma ------------------------------------------------------------------------------------

VCSM_CMA_PATH = "/dev/vcsm-cma"
VC_SM_CMA_CACHE_NONE = 0
VC_SM_CMA_CACHE_HOST = 1
#: struct vc_sm_cma_ioctl_alloc: size, num, cached, pad, name[32] in; handle (s32 dma-buf fd),
#: vc_handle, dma_addr (u64) out: 64 bytes
VCSM_ALLOC_STRUCT = struct.Struct("<IIII32siIQ")
VCSM_IOCTL_MEM_ALLOC = (2 << 30) | (VCSM_ALLOC_STRUCT.size << 16) | (ord("J") << 8) | 0x5A
#: DMA_BUF_IOCTL_SYNC = _IOW('b', 0, struct dma_buf_sync { u64 flags })
DMA_BUF_IOCTL_SYNC = (1 << 30) | (8 << 16) | (ord("b") << 8) | 0
DMA_BUF_SYNC_RW = 3
DMA_BUF_SYNC_START = 0
DMA_BUF_SYNC_END = 4


class VcsmCmaDevice:
    """/dev/vcsm-cma at the ioctl boundary (tests replace `ioctl` and `open_path`)."""

    def __init__(self, path: str = VCSM_CMA_PATH):
        self.path = path
        try:
            self.fd: Optional[int] = self.open_path(path)
        except PermissionError:
            raise HwPermissionError(
                f"no permission to open {path}: add yourself to the video group "
                "(`sudo usermod -aG video $USER`, then log in again) or run as root.") from None

    def open_path(self, path: str) -> int:
        """Open the device node."""
        return os.open(path, os.O_RDWR)

    def ioctl(self, fd: int, request: int, buf: bytearray) -> None:
        """One ioctl that rewrites `buf` in place."""
        import fcntl
        fcntl.ioctl(fd, request, buf, True)

    def alloc(self, nbytes: int, cached: int, name: str) -> Tuple[int, int]:
        """(dma-buf fd, bus address) of a new CMA block of `nbytes` (a multiple of the page)."""
        buf = bytearray(VCSM_ALLOC_STRUCT.pack(nbytes, 1, cached, 0, name.encode()[:31], -1, 0, 0))
        self.ioctl(self.fd, VCSM_IOCTL_MEM_ALLOC, buf)
        fields = VCSM_ALLOC_STRUCT.unpack(bytes(buf))
        return fields[5], fields[7]

    def sync(self, dmabuf_fd: int, flags: int) -> None:
        """DMA_BUF_IOCTL_SYNC on a block."""
        self.ioctl(dmabuf_fd, DMA_BUF_IOCTL_SYNC, bytearray(struct.pack("<Q", flags)))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class VcsmCmaMemory(GpuMemory):
    """CMA blocks from the vcsm-cma driver. With `host_cached` the ARM mapping is cached and every
    launch cleans / invalidates it; by default it is uncached and needs no maintenance."""

    name = "vcsm-cma"

    def __init__(self, device: Optional[VcsmCmaDevice] = None, host_cached: bool = False):
        self.device = device if device is not None else VcsmCmaDevice()
        self.cached = VC_SM_CMA_CACHE_HOST if host_cached else VC_SM_CMA_CACHE_NONE

    def alloc(self, nbytes: int, align: int, label: str) -> Allocation:
        # vcsm-cma always returns page-aligned blocks; larger alignments are carved out of a bigger one
        extra = max(align, PAGE_BYTES) - PAGE_BYTES
        size = round_up(max(nbytes, 1) + extra, PAGE_BYTES)
        try:
            fd, bus = self.device.alloc(size, self.cached, "vc4infer " + label)
        except OSError as exc:
            if exc.errno == errno.ENOMEM:
                raise GpuMemoryTooSmallError(
                    f"the CMA pool cannot hold {size} bytes for {label or 'a buffer'}. Fix: "
                    "enlarge it with `dtoverlay=cma,cma-256` (or cma-384 ...) in "
                    "/boot/firmware/config.txt (or /boot/config.txt), then `sudo reboot`; or ask "
                    "the Driver for less (data_area_size=).") from None
            raise DriverError(f"vcsm-cma allocation of {size} bytes failed: {exc}") from exc
        # the QPUs write where the bus address says: one that is not a page of the VideoCore's
        # 1 GiB would have them write over memory the block is not (the host maps the fd)
        if fd < 0 or bus == 0 or bus >> 32 or bus % PAGE_BYTES or \
                bus % VC_ADDRESS_SPACE_BYTES + size > VC_ADDRESS_SPACE_BYTES:
            if fd >= 0:
                os.close(fd)
            raise DriverError(f"vcsm-cma returned an unusable block (fd {fd}, bus 0x{bus:x} for "
                              f"{size} bytes): refusing to hand the QPUs that address")
        try:
            mapping = HostMapping(fd, size, 0)
        except BaseException:
            os.close(fd)
            raise
        offset = (-bus) % max(align, 1)
        return _allocation(_Block(mapping, fd, offset), bus + offset, nbytes)

    def free(self, allocation: Allocation) -> None:
        block: _Block = allocation.handle

        def close_fd():
            if block.key is not None:
                fd, block.key = block.key, None      # Linux releases the fd even when close fails
                os.close(fd)          # drops the last reference: the kernel frees the CMA block

        # retire drops the mapping's reference to the dma-buf
        _release_steps([block.mapping.retire, close_fd])

    def sync_for_gpu(self, allocation: Allocation) -> None:
        if self.cached == VC_SM_CMA_CACHE_HOST:
            self._sync(allocation, DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW, "clean (before the launch)")

    def sync_for_cpu(self, allocation: Allocation) -> None:
        if self.cached == VC_SM_CMA_CACHE_HOST:
            self._sync(allocation, DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW, "invalidate (after it)")

    def _sync(self, allocation: Allocation, flags: int, what: str) -> None:
        try:
            self.device.sync(allocation.handle.key, flags)
        except OSError as exc:
            raise DriverError(
                f"the kernel refused the cache {what} of the {allocation.nbytes}-byte vcsm-cma block "
                f"at 0x{allocation.bus_address:08x} ({exc.strerror or exc}); the data the QPUs and "
                "the host see may differ. Retry, or open the Driver without host-cached memory "
                "(cache_mode without CACHE_HOST).") from exc

    def close(self) -> None:
        self.device.close()
