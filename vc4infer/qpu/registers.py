"""The register objects a kernel names: accumulators r0-r5, ra0-ra31, rb0-rb31 and the I/O
locations of `isa.IO_REGISTERS`, with py-videocore's `.pack()` and `.unpack()` modifiers."""
from __future__ import annotations

from typing import Dict, List

from . import isa
from .source import AssembleError


class Register:
    """A read or write location. `spaces` holds the isa.READ_A/READ_B/WRITE_A/WRITE_B bits where
    the name is valid; `mux` is the input mux of an accumulator (None for regfile/I-O locations).
    `pack_mode` / `unpack_mode` are set on the copies `.pack()` and `.unpack()` return."""

    __slots__ = ("name", "addr", "spaces", "mux", "pack_mode", "unpack_mode")

    def __init__(self, name: str, addr: int, spaces: int, mux=None, pack_mode="nop", unpack_mode="nop"):
        self.name = name
        self.addr = addr
        self.spaces = spaces
        self.mux = mux
        self.pack_mode = pack_mode
        self.unpack_mode = unpack_mode

    @property
    def is_accumulator(self) -> bool:
        return self.mux is not None

    @property
    def is_regfile(self) -> bool:
        """A physical register ra0-ra31 or rb0-rb31."""
        return self.mux is None and self.addr < isa.REGFILE_SIZE

    @property
    def pack_code(self) -> int:
        return isa.REGFILE_A_PACK_CODES[self.pack_mode]

    @property
    def unpack_code(self) -> int:
        return isa.UNPACK_CODES[self.unpack_mode]

    @property
    def unpack_pm(self) -> int:
        """pm bit the unpack needs: 1 for the r4 unpack, 0 for the regfile-A unpack."""
        return 1 if self.name == "r4" else 0

    def pack(self, mode: str) -> "Register":
        """Regfile-A pack of the value written here, e.g. `iadd(ra1.pack('16a'), ra0, rb0)`.
        Modes: isa.REGFILE_A_PACKS. Only A-space write locations can be packed."""
        if self.is_accumulator or not self.spaces & isa.WRITE_A:
            raise AssembleError(
                f"{self.name}.pack({mode!r}): packing is only available for regfile-A write "
                "locations (ra0-ra31 and A-space I/O); for a colour pack of a mul result use "
                "the mul op's pack= argument")
        if mode not in isa.REGFILE_A_PACK_CODES:
            raise AssembleError(f"unknown pack mode {mode!r}; use one of {list(isa.REGFILE_A_PACKS)}")
        return Register(self.name, self.addr, isa.WRITE_A, None, mode, "nop")

    def unpack(self, mode: str) -> "Register":
        """Unpack of the value read here: regfile-A unpack for A-space reads, r4 unpack for r4,
        e.g. `fadd(r0, ra0.unpack('16a'), r4.unpack('8d'))` (not both in one instruction).
        Modes: isa.UNPACKS."""
        if self.name != "r4" and (self.is_accumulator or not self.spaces & isa.READ_A):
            raise AssembleError(
                f"{self.name}.unpack({mode!r}): unpacking is only available for regfile-A read "
                "locations and the accumulator r4")
        if mode not in isa.UNPACK_CODES:
            raise AssembleError(f"unknown unpack mode {mode!r}; use one of {list(isa.UNPACKS)}")
        spaces = self.spaces if self.name == "r4" else isa.READ_A
        return Register(self.name, self.addr, spaces, self.mux, "nop", mode)

    def __repr__(self) -> str:
        text = self.name
        if self.pack_mode != "nop":
            text += f".pack({self.pack_mode!r})"
        if self.unpack_mode != "nop":
            text += f".unpack({self.unpack_mode!r})"
        return text

    __str__ = __repr__


def _build() -> Dict[str, Register]:
    regs: Dict[str, Register] = {}
    for i in range(isa.REGFILE_SIZE):
        regs[f"ra{i}"] = Register(f"ra{i}", i, isa.READ_A | isa.WRITE_A)
        regs[f"rb{i}"] = Register(f"rb{i}", i, isa.READ_B | isa.WRITE_B)
    for io in isa.IO_REGISTERS:
        regs[io.name] = Register(io.name, io.addr, io.spaces)
    for name, mux in isa.ACCUMULATOR_MUX.items():
        waddr = isa.ACCUMULATOR_WADDR.get(name)
        # r4 has no write address; r5 is written through r5_pix0 / broadcast
        regs[name] = Register(name, waddr if waddr is not None else -1,
                              isa.WRITE_AB if waddr is not None else 0, mux)
    return regs


#: every register name the DSL knows -> its Register
REGISTERS: Dict[str, Register] = _build()
ra: List[Register] = [REGISTERS[f"ra{i}"] for i in range(isa.REGFILE_SIZE)]
rb: List[Register] = [REGISTERS[f"rb{i}"] for i in range(isa.REGFILE_SIZE)]
NULL = REGISTERS["null"]
R0 = REGISTERS["r0"]
R5 = REGISTERS["r5"]
