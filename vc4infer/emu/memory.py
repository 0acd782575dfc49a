"""GPU memory of the emulator: one flat byte array at a base bus address, and the table of the
buffers the driver allocated in it. Only live buffers are GPU memory: the compiled loop checks every
access against `bounds()` before it reads or writes a byte.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from vc4infer.device import DriverError, OutOfGpuMemoryError

#: Bus address of the first byte. 0xC0000000 is the uncached ("direct") alias that Pi 2/3 buffers
#: allocated with MEM_FLAG_DIRECT live in (spec §13.4), so addresses look like a board's.
DEFAULT_BASE = 0xC0000000
#: Nothing is allocated in the first 64 KiB, so small integers used as addresses always fault.
LOW_RESERVED_BYTES = 0x10000
#: Unallocated bytes kept after every buffer, so that a small overrun faults instead of silently
#: landing in the next buffer.
REDZONE_BYTES = 256


#: bytes of the one emulated GPU memory that every emu backend of a process shares, from
#: DEFAULT_BASE to the end of the 32-bit bus address space (untouched pages cost nothing)
SHARED_BYTES = (1 << 32) - DEFAULT_BASE


@dataclass(frozen=True)
class Buffer:
    """One live allocation."""
    bus_address: int
    nbytes: int
    label: str

    @property
    def end(self) -> int:
        return self.bus_address + self.nbytes


class GpuMemory:
    """Flat emulated GPU memory with an allocation table."""

    def __init__(self, memory_bytes: int = 256 << 20, base: int = DEFAULT_BASE,
                 data: Optional[np.ndarray] = None):
        if memory_bytes % 4096:
            raise DriverError(f"memory_bytes={memory_bytes} is not a multiple of 4096 (a page)")
        if memory_bytes <= LOW_RESERVED_BYTES or base + memory_bytes > 1 << 32:
            raise DriverError(
                f"memory_bytes={memory_bytes} does not fit: the emulated GPU memory must be larger "
                f"than {LOW_RESERVED_BYTES} bytes and end below 4 GiB of bus address space "
                f"(base 0x{base:08X}); choose memory_bytes <= {(1 << 32) - base}")
        self.base = base
        self.nbytes = memory_bytes
        if data is not None and (data.dtype != np.uint8 or data.shape != (memory_bytes,)):
            raise DriverError(f"data must be {memory_bytes} uint8 bytes, got {data.dtype} {data.shape}")
        # untouched pages cost nothing; `data` given: memory the caller shares (a simulated board's)
        self.data = np.zeros(memory_bytes, dtype=np.uint8) if data is None else data
        self._live: Dict[int, Buffer] = {}
        self._bounds: Optional[np.ndarray] = None
        self._lock = threading.Lock()                        # Drivers in several threads

    # ---- allocation ---------------------------------------------------------------------------
    def alloc(self, nbytes: int, align: int = 4096, label: str = "",
              window: Optional[Tuple[int, int]] = None) -> Tuple[int, np.ndarray]:
        """Allocate `nbytes` aligned to `align`, within the bus-address range `window` [lo, hi) if
        given; return (bus_address, writable uint8 view)."""
        if nbytes <= 0:
            raise DriverError(f"cannot allocate {nbytes} bytes: the size must be positive")
        if align <= 0 or align & (align - 1):
            raise DriverError(f"alignment {align} is not a power of two")
        with self._lock:
            return self._alloc(nbytes, align, label, window or (self.base, self.base + self.nbytes))

    def _alloc(self, nbytes: int, align: int, label: str,
               window: Tuple[int, int]) -> Tuple[int, np.ndarray]:
        start = max(self.base + LOW_RESERVED_BYTES, window[0])
        end = min(window[1], self.base + self.nbytes)
        for buf in sorted(self._live.values(), key=lambda b: b.bus_address):
            if buf.end + REDZONE_BYTES <= start:
                continue
            candidate = -(-start // align) * align
            if candidate + nbytes + REDZONE_BYTES <= buf.bus_address and candidate + nbytes <= end:
                return self._place(candidate, nbytes, label)
            start = max(start, buf.end + REDZONE_BYTES)
        candidate = -(-start // align) * align
        if candidate + nbytes > end:
            used = sum(b.nbytes for b in self._live.values())
            raise OutOfGpuMemoryError(
                f"cannot allocate {nbytes} bytes ({label or 'unlabelled'}): the emulator's "
                f"{self.nbytes} bytes of GPU memory hold {len(self._live)} buffers ({used} bytes); "
                f"free buffers or create the backend with a larger memory_bytes")
        return self._place(candidate, nbytes, label)

    def _place(self, bus_address: int, nbytes: int, label: str) -> Tuple[int, np.ndarray]:
        self._live[bus_address] = Buffer(bus_address, nbytes, label or f"buffer@0x{bus_address:08X}")
        self._bounds = None
        offset = bus_address - self.base
        return bus_address, self.data[offset: offset + nbytes]

    def free(self, bus_address: int) -> None:
        """Release the buffer that starts at `bus_address`."""
        with self._lock:
            if bus_address not in self._live:
                raise DriverError(f"free of 0x{bus_address:08X}: no live buffer starts there "
                                  "(double free, or an address inside a buffer)")
            del self._live[bus_address]
            self._bounds = None

    # ---- queries ------------------------------------------------------------------------------
    @property
    def buffers(self) -> List[Buffer]:
        """Live buffers in address order."""
        return sorted(self._live.values(), key=lambda b: b.bus_address)

    def bounds(self) -> np.ndarray:
        """int64 array (n, 2) of [start, end) bus addresses of the live buffers, sorted."""
        with self._lock:
            if self._bounds is None:
                rows = sorted((b.bus_address, b.end) for b in self._live.values()) or [(0, 0)]
                self._bounds = np.array(rows, dtype=np.int64).reshape(-1, 2)
            return self._bounds

    def find(self, bus_address: int, nbytes: int = 1) -> Optional[Buffer]:
        """The live buffer holding all of [bus_address, bus_address + nbytes), or None."""
        for buf in self._live.values():
            if buf.bus_address <= bus_address and bus_address + nbytes <= buf.end:
                return buf
        return None

    def nearest(self, bus_address: int) -> Optional[Tuple[Buffer, int]]:
        """The live buffer closest to `bus_address` and the distance in bytes (0 when inside; negative
        when before the buffer's start, positive when past its end)."""
        best = None
        for buf in self._live.values():
            if bus_address < buf.bus_address:
                dist = bus_address - buf.bus_address
            elif bus_address >= buf.end:
                dist = bus_address - buf.end + 1
            else:
                dist = 0
            if best is None or abs(dist) < abs(best[1]):
                best = (buf, dist)
        return best

    def describe(self, bus_address: int, nbytes: int = 1) -> str:
        """Words for an error message: where [bus_address, +nbytes) is relative to the nearest buffer."""
        near = self.nearest(bus_address)
        if near is None:
            return "no buffer is allocated at all"
        buf, dist = near
        over = bus_address + nbytes - buf.end
        where = (f"{-dist} bytes before its start" if dist < 0 else
                 "starting right at its end" if dist == 1 else
                 f"starting {dist - 1} bytes past its end" if dist > 1 else
                 f"starting inside it and running {over} bytes past its end" if over > 0 else "inside it")
        return (f"nearest buffer '{buf.label}' [0x{buf.bus_address:08X}, 0x{buf.end:08X}) "
                f"({buf.nbytes} bytes), {where}")

    def read(self, bus_address: int, nbytes: int) -> bytes:
        """Bytes at a bus address (host-side helper for tools and tests)."""
        off = bus_address - self.base
        if off < 0 or off + nbytes > self.nbytes:
            raise DriverError(f"0x{bus_address:08X}+{nbytes} is outside the emulated memory")
        return self.data[off: off + nbytes].tobytes()


# ---- checks and loads used by the compiled loop --------------------------------------------------
from vc4infer.emu.jit import jit  # noqa: E402  (kept beside the table these functions read)


@jit
def buffer_index(bounds, addr):
    """Row of `bounds` (GpuMemory.bounds) of the last live buffer starting at or below addr, or
    -1 when none does."""
    lo = 0
    hi = bounds.shape[0] - 1
    found = -1
    while lo <= hi:
        mid = (lo + hi) // 2
        if bounds[mid, 0] <= addr:
            found = mid
            lo = mid + 1
        else:
            hi = mid - 1
    return found


@jit
def in_buffer(bounds, addr, nbytes):
    """True when [addr, addr + nbytes) lies inside one live buffer (`bounds` from GpuMemory.bounds)."""
    found = buffer_index(bounds, addr)
    if found < 0 or nbytes <= 0:
        return False
    return addr + nbytes <= bounds[found, 1]


@jit
def stray_read(bounds, addr, nbytes, mem_end):
    """True when [addr, addr + nbytes), outside every live buffer, still lies where a Pi would
    read bytes of the Driver's own memory: from a live buffer's start to REDZONE_BYTES past its
    end (py-videocore's arrays sit back to back in one area; here the red zone stands for the
    bytes after an array), and inside the emulated memory (ending at bus address `mem_end`)."""
    found = buffer_index(bounds, addr)
    if found < 0 or nbytes <= 0 or addr + nbytes > mem_end:
        return False
    return addr + nbytes <= bounds[found, 1] + REDZONE_BYTES


@jit
def load_u32(mem, offset):
    """Little-endian 32-bit word at byte `offset` of the memory array."""
    return (int(mem[offset]) | (int(mem[offset + 1]) << 8) | (int(mem[offset + 2]) << 16)
            | (int(mem[offset + 3]) << 24))


_shared: Optional[GpuMemory] = None
_shared_lock = threading.Lock()


def shared_memory() -> GpuMemory:
    """The process's one emulated GPU memory: as every Driver on a Pi shares the board's memory,
    every emu backend allocates here, so bus addresses are unique across Drivers and a buffer of
    one is readable by another's programs while it lives."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = GpuMemory(SHARED_BYTES)
        return _shared
