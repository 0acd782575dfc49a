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
from typing import Dict, List, Optional, Sequence, Tuple

from .board import detect_board
from .errors import DriverError, HwPermissionError

V3D_OFFSET_FROM_PERI = 0x00C00000
#: bytes of the register block that py-videocore maps (up to and including ERRSTAT at 0xF20)
V3D_LENGTH = 0xF20 + 4
#: the ARM physical address of the peripherals per SoC (hardware reference section 1.2)
PERIPHERAL_BASE = {"BCM2835": 0x20000000, "BCM2836": 0x3F000000, "BCM2837": 0x3F000000}

#: offsets of the registers the emulator models and the performance-counter API uses
IDENT0, IDENT1, IDENT2, SCRATCH, L2CACTL, SLCACTL = 0x000, 0x004, 0x008, 0x010, 0x020, 0x024
SRQPC, SRQUA, SRQUL, SRQCS = 0x430, 0x434, 0x438, 0x43C
VPMBASE, PCTRC, PCTRE, ERRSTAT = 0x504, 0x670, 0x674, 0xF20
PCTR_COUNT = 16
#: PCTRE bit 31: counting is on at all (documented as reserved; vc4asm, Linux V3D_PCTRE_EN)
PCTRE_ENABLE = 1 << 31


def PCTR(n: int) -> int:            # noqa: N802 - the guide's register name
    """Offset of performance counter n's value."""
    return 0x680 + 8 * n


def PCTRS(n: int) -> int:           # noqa: N802
    """Offset of performance counter n's source selector."""
    return 0x684 + 8 * n


def _fields() -> Dict[str, Tuple[int, int, int, str]]:
    """name -> (offset, lowest bit, highest bit, 'r' / 'w' / 'rw')."""
    table = {
        "TVER": (IDENT0, 24, 31, "r"), "IDSTR_V": (IDENT0, 0, 7, "r"),
        "IDSTR_3": (IDENT0, 8, 15, "r"), "IDSTR_D": (IDENT0, 16, 23, "r"),
        "VPMSZ": (IDENT1, 28, 31, "r"), "HDRT": (IDENT1, 24, 27, "r"), "NSEM": (IDENT1, 16, 23, "r"),
        "TUPS": (IDENT1, 12, 15, "r"), "QUPS": (IDENT1, 8, 11, "r"), "NSLC": (IDENT1, 4, 7, "r"),
        "REV": (IDENT1, 0, 3, "r"),
        "TLBDB": (IDENT2, 8, 11, "r"), "TLBSZ": (IDENT2, 4, 7, "r"), "VRISZ": (IDENT2, 0, 3, "r"),
        "SCRATCH": (SCRATCH, 0, 31, "rw"),
        "L2CACTL": (L2CACTL, 0, 2, "rw"), "L2CCLR": (L2CACTL, 2, 2, "w"),
        "L2CDIS": (L2CACTL, 1, 1, "w"), "L2CENA": (L2CACTL, 0, 0, "rw"),
        "QPURQPC": (SRQPC, 0, 31, "w"), "QPURQUA": (SRQUA, 0, 31, "rw"),
        "QPURQUL": (SRQUL, 0, 11, "rw"), "QPURQCC": (SRQCS, 16, 23, "rw"),
        "QPURQCM": (SRQCS, 8, 15, "rw"), "QPURQERR": (SRQCS, 7, 7, "rw"),
        "QPURQL": (SRQCS, 0, 5, "rw"),
        "VPMURSV": (VPMBASE, 0, 4, "rw"),
        "CTCLR": (PCTRC, 0, 15, "w"), "CTEN": (PCTRE, 0, 31, "rw"),
        "VCDI": (ERRSTAT, 12, 12, "r"), "VCDE": (ERRSTAT, 11, 11, "r"),
        "VDWE": (ERRSTAT, 10, 10, "r"),
    }
    for cache, low in (("T1CCS", 24), ("T0CCS", 16), ("UCCS", 8), ("ICCS", 0)):
        for s in range(4):                        # one bit per slice: write 1 to clear
            table[f"{cache}{s}"] = (SLCACTL, low + 3 - s, low + 3 - s, "w")
    for n in range(PCTR_COUNT):
        table[f"PCTR{n}"] = (PCTR(n), 0, 31, "rw")
        table[f"PCTRS{n}"] = (PCTRS(n), 0, 4, "rw")
    return table


V3D_REGISTER_TABLE: Dict[str, Tuple[int, int, int, str]] = _fields()

#: what each performance-counter source counts (guide Table 93; V3D_PCTRSn selects one)
PERFORMANCE_COUNTER_SOURCES = {
    0: "FEP valid primitives with no rendered pixels", 1: "FEP valid primitives",
    2: "FEP early-Z/near/far clipped quads", 3: "FEP valid quads",
    4: "TLB quads with no pixels passing the stencil test",
    5: "TLB quads with no pixels passing the Z and stencil tests",
    6: "TLB quads with any pixel passing the Z and stencil tests",
    7: "TLB quads with all pixels at zero coverage", 8: "TLB quads with any non-zero coverage",
    9: "TLB quads with valid pixels written to the colour buffer",
    10: "PTB primitives outside the viewport", 11: "PTB primitives that need clipping",
    12: "PSE primitives discarded as reversed", 13: "QPU idle cycles (all QPUs)",
    14: "QPU cycles vertex/coordinate shading", 15: "QPU cycles fragment shading",
    16: "QPU cycles executing valid instructions", 17: "QPU cycles stalled waiting for the TMUs",
    18: "QPU cycles stalled waiting for the scoreboard", 19: "QPU cycles stalled waiting for varyings",
    20: "QPU instruction cache hits", 21: "QPU instruction cache misses",
    22: "QPU uniforms cache hits", 23: "QPU uniforms cache misses",
    24: "TMU texture quads processed", 25: "TMU cache misses",
    26: "VPM cycles the VDW stalled waiting for the VPM",
    27: "VPM cycles the VCD stalled waiting for the VPM", 28: "L2C hits", 29: "L2C misses",
}


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
