"""V3D registers and performance counters: the counterpart of py-videocore's `videocore.v3d`.

    from hostside.driver import Driver
    from hostside.driver import v3d

    with Driver() as drv, v3d.RegisterMapping(drv) as regs:
        with v3d.PerformanceCounter(regs, [16, 17, 25]) as counters:
            drv.execute(...)
        print(counters.result())         # [cycles executing, cycles waiting for the TMUs, TMU misses]

On a Pi the registers are the V3D block's own, mapped through /dev/mem (root) at the SoC's
peripheral base + V3D_OFFSET_FROM_PERI; on the emu backend they are the emulated V3D's
(vc4infer.emu.v3d), whose performance counters count what the emulator ran: modelled cycles,
cache hits and misses (the sources it cannot observe, the 3D pipeline's, stay 0).

Register offsets and fields: reference guide pp. 82-104 (Tables 48-93) and the Linux vc4 driver's
vc4_regs.h, gathered in the project's hardware reference, section 13.6. Field names are
py-videocore's, so programs written for it read the same registers.
"""
from __future__ import annotations

import mmap
import os
import struct
from typing import List, Optional, Sequence, Tuple

from vc4infer.qpu import isa

from .board import detect_board
from .errors import DriverError, HwPermissionError

V3D_OFFSET_FROM_PERI = 0x00C00000
#: bytes of the register block that py-videocore maps (up to and including ERRSTAT at 0xF20)
V3D_LENGTH = 0xF20 + 4
#: the ARM physical address of the peripherals per SoC (hardware reference section 1.2)
PERIPHERAL_BASE = {"BCM2835": 0x20000000, "BCM2836": 0x3F000000, "BCM2837": 0x3F000000}

PCTRC, PCTRE, PCTRE_ENABLE, PCTR_COUNT = (isa.V3D_PCTRC, isa.V3D_PCTRE, isa.V3D_PCTRE_ENABLE,
                                         isa.V3D_PCTR_COUNT)
PCTR, PCTRS = isa.v3d_pctr, isa.v3d_pctrs
#: py-videocore's name: field -> (offset, low bit, high bit, access), from vc4infer.qpu.isa
V3D_REGISTER_TABLE = isa.V3D_FIELDS
#: what each performance-counter source counts (guide Table 93)
PERFORMANCE_COUNTER_SOURCES = isa.V3D_COUNTER_SOURCES


class V3DRegisterError(DriverError, ValueError):
    """An unknown register name, a read of a write-only field or a value that does not fit."""


class V3DRegisters:
    """The V3D register block: `read(name)` / `write(name, value)` by V3D_REGISTER_TABLE field,
    `read_word(offset)` / `write_word(offset, value)` by byte offset. `driver` (a Driver) picks
    the block: its emu backend's emulated V3D, or on hw (or with no driver) the board's, mapped
    through `mem_path` (root) at the SoC's peripheral base."""

    def __init__(self, driver=None, mem_path: str = "/dev/mem", root: str = "/"):
        backend = getattr(driver, "backend", None) if driver is not None else None
        self._emulated = getattr(backend, "v3d", None)
        self._map: Optional[mmap.mmap] = None
        if self._emulated is None:
            self._map = _map_registers(mem_path, root)

    def read_word(self, offset: int) -> int:
        _check_offset(offset)
        if self._emulated is not None:
            return self._emulated.read_word(offset)
        return struct.unpack_from("<I", self._map, offset)[0]

    def write_word(self, offset: int, value: int) -> None:
        _check_offset(offset)
        if self._emulated is not None:
            self._emulated.write_word(offset, int(value) & 0xFFFFFFFF)
        else:
            struct.pack_into("<I", self._map, offset, int(value) & 0xFFFFFFFF)

    def read(self, name: str) -> int:
        offset, low, high, access = _field(name)
        if "r" not in access:
            raise V3DRegisterError(f"V3D field {name} is write-only")
        return (self.read_word(offset) >> low) & ((1 << (high - low + 1)) - 1)

    def write(self, name: str, value: int) -> None:
        offset, low, high, access = _field(name)
        if "w" not in access:
            raise V3DRegisterError(f"V3D field {name} is read-only")
        width = high - low + 1
        if not 0 <= value < 1 << width:
            raise V3DRegisterError(f"{value} does not fit the {width}-bit V3D field {name}")
        mask = ((1 << width) - 1) << low
        keep = self.read_word(offset) & ~mask if "r" in access and width < 32 else 0
        self.write_word(offset, keep | (value << low))

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def __enter__(self) -> "V3DRegisters":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def RegisterMapping(driver=None, **options) -> V3DRegisters:     # noqa: N802 - py-videocore's name
    """py-videocore's name for the register block of `driver`'s V3D (a context manager)."""
    return V3DRegisters(driver, **options)


class PerformanceCounter:
    """Counts the given sources (ids of PERFORMANCE_COUNTER_SOURCES, at most 16) on counters
    0.. while the `with` block runs; `result()` gives the counts, in the order given."""

    def __init__(self, registers: V3DRegisters, sources: Sequence[int]):
        sources = [int(s) for s in sources]
        if not 1 <= len(sources) <= PCTR_COUNT:
            raise V3DRegisterError(f"{len(sources)} sources: the V3D has {PCTR_COUNT} counters")
        unknown = [s for s in sources if s not in PERFORMANCE_COUNTER_SOURCES]
        if unknown:
            raise V3DRegisterError(f"performance counter sources {unknown} do not exist; the V3D "
                                   f"counts sources 0..{max(PERFORMANCE_COUNTER_SOURCES)}")
        self.registers, self.sources = registers, sources
        self._mask = (1 << len(sources)) - 1
        self._counts: Optional[List[int]] = None

    def __enter__(self) -> "PerformanceCounter":
        regs = self.registers
        regs.write_word(PCTRE, 0)
        for n, source in enumerate(self.sources):
            regs.write_word(PCTRS(n), source)
        regs.write_word(PCTRC, self._mask)
        regs.write_word(PCTRE, PCTRE_ENABLE | self._mask)
        return self

    def __exit__(self, *exc) -> None:
        self.registers.write_word(PCTRE, 0)
        self._counts = [self.registers.read_word(PCTR(n)) for n in range(len(self.sources))]

    def result(self) -> List[int]:
        """The counts, one per source (read when the `with` block ended, or now)."""
        if self._counts is not None:
            return list(self._counts)
        return [self.registers.read_word(PCTR(n)) for n in range(len(self.sources))]


def _field(name: str) -> Tuple[int, int, int, str]:
    try:
        return V3D_REGISTER_TABLE[name]
    except KeyError:
        raise V3DRegisterError(f"unknown V3D register field {name!r}: see "
                               "hostside.driver.v3d.V3D_REGISTER_TABLE") from None


def _check_offset(offset: int) -> None:
    if offset % 4 or not 0 <= offset < V3D_LENGTH:
        raise V3DRegisterError(f"V3D register offset 0x{offset:X}: give a multiple of 4 below "
                               f"0x{V3D_LENGTH:X}")


def _map_registers(mem_path: str, root: str) -> mmap.mmap:
    """The V3D register block of this board, mapped from `mem_path`."""
    soc = detect_board(root).soc
    if soc not in PERIPHERAL_BASE:
        raise DriverError(f"no VideoCore IV V3D to map on this machine (SoC {soc or 'unknown'}); "
                          "pass the Driver of an emu backend to read the emulated V3D's registers")
    try:
        fd = os.open(mem_path, os.O_RDWR | os.O_SYNC)
    except PermissionError:
        raise HwPermissionError(f"cannot open {mem_path} to map the V3D registers: run as root "
                                "(sudo)") from None
    try:
        return mmap.mmap(fd, mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                         offset=PERIPHERAL_BASE[soc] + V3D_OFFSET_FROM_PERI)
    finally:
        os.close(fd)
