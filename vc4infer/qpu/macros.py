"""py-videocore's macros: VPM and DMA setup, DMA start/wait, mutex, host interrupt, program end.

Each macro emits the instructions py-videocore's macro of the same name emits. Setup words are
built from the field layouts in `isa` (reference guide digest §9.3, §10); parameters outside
what a field can hold raise AssembleError instead of spilling into neighbouring fields.
"""
from __future__ import annotations

import numbers
from typing import Tuple

from . import isa
from .asm import Assembler
from .registers import NULL, R0, REGISTERS, Register
from .source import AssembleError

_SIZES = {"8bit": isa.VPM_SIZE_8, "16bit": isa.VPM_SIZE_16, "32bit": isa.VPM_SIZE_32}
_DMA_MODEW_BASE = {"8bit": isa.DMA_MODEW_8, "16bit": isa.DMA_MODEW_16, "32bit": isa.DMA_MODEW_32}


def _int_in(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise AssembleError(f"{name}={value!r} is out of range {low}..{high}")
    return int(value)


def _vpm_mode(mode: str) -> Tuple[int, int, int]:
    """(size, laned, horizontal) of a VPM access mode such as '16bit packed vertical'."""
    words = str(mode).split()
    usage = ("mode is '32bit horizontal|vertical' or '8bit|16bit packed|laned horizontal|vertical', "
             f"not {mode!r}")
    if not words or words[0] not in _SIZES:
        raise AssembleError(usage)
    size = _SIZES[words.pop(0)]
    laned = 0
    if size != isa.VPM_SIZE_32:
        if not words or words[0] not in ("packed", "laned"):
            raise AssembleError(usage)
        laned = int(words.pop(0) == "laned")
    if words not in (["horizontal"], ["vertical"]):
        raise AssembleError(usage)
    return size, laned, int(words[0] == "horizontal")


def _vpm_address(size: int, horizontal: int, Y, X, B, H) -> int:
    """The ADDR field of a generic VPM access (layout per reference guide digest §9.2)."""
    Y = _int_in("Y", Y, 0, isa.VPM_USER_ROWS - 1)
    B = _int_in("B", B, 0, 3)
    H = _int_in("H", H, 0, 1)
    if horizontal:
        return {isa.VPM_SIZE_8: Y << 2 | B, isa.VPM_SIZE_16: Y << 1 | H, isa.VPM_SIZE_32: Y}[size]
    X = _int_in("X", X, 0, isa.VPM_ROW_WORDS - 1)
    if Y % isa.SIMD_WIDTH:
        raise AssembleError(f"Y={Y}: a vertical VPM access starts at a row that is a multiple of 16")
    return {isa.VPM_SIZE_8: Y << 2 | X << 2 | B, isa.VPM_SIZE_16: Y << 1 | X << 1 | H,
            isa.VPM_SIZE_32: Y | X}[size]


def setup_vpm_read(asm: Assembler, nrows, mode="32bit horizontal", Y=0, stride=1, X=0, B=0, H=0):
    """Generic VPM block read of `nrows` (1..16) vectors starting at (Y, X), advancing by `stride`."""
    size, laned, horizontal = _vpm_mode(mode)
    word = isa.encode_fields(
        isa.VPM_GENERIC_READ_FIELDS, num=_int_in("nrows", nrows, 1, 16) & 0xF,
        stride=_int_in("stride", stride, 0, 63), horizontal=horizontal, laned=laned, size=size,
        addr=_vpm_address(size, horizontal, Y, X, B, H))
    asm.ldi(REGISTERS["vpmvcd_rd_setup"], word)


def vpm_write_setup_word(mode="32bit horizontal", stride=1, Y=0, X=0, B=0, H=0) -> int:
    """The setup word of a generic VPM block write (for kernels that pass it as a uniform)."""
    size, laned, horizontal = _vpm_mode(mode)
    return isa.encode_fields(
        isa.VPM_GENERIC_WRITE_FIELDS, stride=_int_in("stride", stride, 0, 63), horizontal=horizontal,
        laned=laned, size=size, addr=_vpm_address(size, horizontal, Y, X, B, H))


def setup_vpm_write(asm: Assembler, mode="32bit horizontal", stride=1, Y=0, X=0, B=0, H=0):
    """Generic VPM block write starting at (Y, X), advancing by `stride` after each vector."""
    asm.ldi(REGISTERS["vpmvcd_wr_setup"], vpm_write_setup_word(mode, stride, Y, X, B, H))


def _dma_mode(mode: str, offset) -> Tuple[int, int]:
    """(MODEW, horizontal) of a DMA mode such as '16bit horizontal' with half/byte `offset`."""
    words = str(mode).split()
    if len(words) != 2 or words[0] not in _DMA_MODEW_BASE or words[1] not in ("horizontal", "vertical"):
        raise AssembleError(f"DMA mode is '8bit|16bit|32bit horizontal|vertical', not {mode!r}")
    base = _DMA_MODEW_BASE[words[0]]
    modew = base | _int_in("offset", offset, 0, isa.DMA_MODEW_MAX_OFFSET[base])
    return modew, int(words[1] == "horizontal")


def setup_dma_load(asm: Assembler, nrows=1, ncols=16, mode="32bit horizontal", Y=0, X=0,
                   offset=0, vpitch=1, mpitch=3):
    """VCD DMA load of `nrows` (1..16) memory rows of `ncols` (1..16) elements into the VPM at
    (Y, X); memory pitch 8 * 2**mpitch bytes (mpitch=0: the setup_dma_load_stride pitch), VPM
    pitch `vpitch` rows (0 or 16 mean 16)."""
    modew, horizontal = _dma_mode(mode, offset)
    word = isa.encode_fields(
        isa.VCD_LOAD_FIELDS, id=1, modew=modew, mpitch=_int_in("mpitch", mpitch, 0, 15),
        rowlen=_int_in("ncols", ncols, 1, 16) & 0xF, nrows=_int_in("nrows", nrows, 1, 16) & 0xF,
        vpitch=_int_in("vpitch", vpitch, 0, 16) & 0xF, vertical=1 - horizontal,
        addrxy=_int_in("Y", Y, 0, isa.VPM_USER_ROWS - 1) << 4 | _int_in("X", X, 0, 15))
    asm.ldi(REGISTERS["vpmvcd_rd_setup"], word)


def setup_dma_store(asm: Assembler, nrows=1, ncols=16, mode="32bit horizontal", Y=0, X=0, offset=0):
    """VDW DMA store of `nrows` (1..128) rows of `ncols` (1..128) elements from the VPM at (Y, X)."""
    modew, horizontal = _dma_mode(mode, offset)
    word = isa.encode_fields(
        isa.VDW_STORE_FIELDS, id=isa.VDW_STORE_ID, units=_int_in("nrows", nrows, 1, 128) & 0x7F,
        depth=_int_in("ncols", ncols, 1, 128) & 0x7F, laned=0, horizontal=horizontal,
        vpmbase=_int_in("Y", Y, 0, isa.VPM_USER_ROWS - 1) << 4 | _int_in("X", X, 0, 15), modew=modew)
    asm.ldi(REGISTERS["vpmvcd_wr_setup"], word)


def _stride_setup(asm: Assembler, dst: Register, header: int, value, tmp_reg: Register, limit: int,
                  name: str):
    if isinstance(value, Register):
        if value.name == tmp_reg.name:
            raise AssembleError(f"{name} uses {tmp_reg.name} internally; pass tmp_reg= another register")
        asm.ldi(tmp_reg, header)
        asm.bor(dst, tmp_reg, value)
    else:
        asm.ldi(dst, header | _int_in("stride", value, 0, limit))


def setup_dma_load_stride(asm: Assembler, val, tmp_reg: Register = R0):
    """Memory pitch in bytes for DMA loads set up with mpitch=0 (a constant or a register)."""
    header = isa.encode_fields(isa.VCD_LOAD_STRIDE_FIELDS, id=isa.VCD_LOAD_STRIDE_ID)
    limit = (1 << isa.VCD_LOAD_STRIDE_FIELDS["mpitchb"][1]) - 1
    _stride_setup(asm, REGISTERS["vpmvcd_rd_setup"], header, val, tmp_reg, limit, "setup_dma_load_stride")


def setup_dma_store_stride(asm: Assembler, val, blockmode=False, tmp_reg: Register = R0):
    """Bytes from the end of one stored memory row to the start of the next (constant or register)."""
    header = isa.encode_fields(isa.VDW_STRIDE_FIELDS, id=isa.VDW_STRIDE_ID, blockmode=int(bool(blockmode)))
    limit = (1 << isa.VDW_STRIDE_FIELDS["stride"][1]) - 1
    _stride_setup(asm, REGISTERS["vpmvcd_wr_setup"], header, val, tmp_reg, limit, "setup_dma_store_stride")


def start_dma_load(asm: Assembler, reg, rot=0):
    """Start the set-up DMA load from the memory address in `reg` (element `rot` with rot != 0)."""
    if rot == 0:
        return asm.mov(REGISTERS["vpm_ld_addr"], reg)
    return asm.rotate(REGISTERS["vpm_ld_addr"], reg, rot)


def wait_dma_load(asm: Assembler):
    """Stall until the DMA load completes."""
    return asm.mov(NULL, REGISTERS["vpm_ld_wait"])


def start_dma_store(asm: Assembler, reg, rot=0):
    """Start the set-up DMA store to the memory address in `reg`."""
    if rot == 0:
        return asm.mov(REGISTERS["vpm_st_addr"], reg)
    return asm.rotate(REGISTERS["vpm_st_addr"], reg, rot)


def wait_dma_store(asm: Assembler):
    """Stall until the DMA store completes."""
    return asm.mov(NULL, REGISTERS["vpm_st_wait"])


def mutex_acquire(asm: Assembler):
    return asm.mov(NULL, REGISTERS["mutex"])


def mutex_release(asm: Assembler):
    return asm.mov(REGISTERS["mutex"], NULL)


def interrupt(asm: Assembler):
    """Raise the host interrupt (write 1 to host_interrupt)."""
    return asm.mov(REGISTERS["host_interrupt"], 1)


def exit(asm: Assembler, interrupt=True):  # noqa: A001 - py-videocore's name
    """End the program: host interrupt (unless interrupt=False), thread end, two delay-slot nops."""
    if interrupt:
        asm.interrupt()
    asm.mov(R0, R0, sig=isa.SIGNALS[isa.SIG_THREAD_END]).mov(R0, R0)
    asm.nop()
    asm.nop()


MACROS = (setup_vpm_read, setup_vpm_write, setup_dma_load, setup_dma_store, setup_dma_load_stride,
          setup_dma_store_stride, start_dma_load, wait_dma_load, start_dma_store, wait_dma_store,
          mutex_acquire, mutex_release, interrupt, exit)
MACRO_NAMES = tuple(m.__name__ for m in MACROS)
for _macro in MACROS:
    setattr(Assembler, _macro.__name__, _macro)
