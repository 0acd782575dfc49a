"""The VPM as QPU programs see it: 64 rows of 16 32-bit words (4 KiB; erratum HW-2253 limits user
programs to these rows), read and written as 16-element vectors through the generic block setups
(spec §9.2-9.3): 8/16/32-bit, horizontal/vertical, packed/laned, with stride; addresses wrap at
row 64.
"""
import numpy as np

from vc4infer.emu.jit import jit, jit_inline
from vc4infer.emu.state import (
    QS_VCD_PITCHB, QS_VCD_SETUP, QS_VDW_SETUP, QS_VDW_STRIDE, QS_VPMR_ADDR, QS_VPMR_HORIZ,
    QS_VPMR_LANED, QS_VPMR_LEFT, QS_VPMR_READY, QS_VPMR_SIZE, QS_VPMR_STRIDE, QS_VPMW_ADDR,
    QS_VPMW_HORIZ, QS_VPMW_LANED, QS_VPMW_SIZE, QS_VPMW_STRIDE, UB_PITCHB_BEYOND_GUIDE,
    UB_RESERVED_SETUP,
    UB_VPM_SETUP_REPLACED)
from vc4infer.emu.timing import TP_VPM_READ
from vc4infer.qpu import isa

VPM_WORDS = isa.VPM_USER_ROWS * isa.VPM_ROW_WORDS
_ROW_MASK = isa.VPM_USER_ROWS - 1
_PITCHB_FIELD_MASK = (1 << isa.VCD_LOAD_STRIDE_FIELDS["mpitchb"][1]) - 1


@jit
def element_byte(addr, size, horizontal, laned, i):
    """Byte offset inside the VPM of element `i` of the vector at vector address `addr`, and the
    element's width in bytes (spec §9.2 table)."""
    if size == isa.VPM_SIZE_16:
        h = addr & 1
        if horizontal:
            y = (addr >> 1) & _ROW_MASK
            if laned:
                word, sub = y * 16 + i, h
            else:
                word, sub = y * 16 + 8 * h + i // 2, i % 2
        else:
            yb = ((addr >> 5) & 3) * 16
            x = (addr >> 1) & 15
            row = yb + i if laned else yb + 8 * h + i // 2
            word, sub = row * 16 + x, h if laned else i % 2
        return word * 4 + sub * 2, 2
    if size == isa.VPM_SIZE_8:
        b = addr & 3
        if horizontal:
            y = (addr >> 2) & _ROW_MASK
            if laned:
                word, sub = y * 16 + i, b
            else:
                word, sub = y * 16 + 4 * b + i // 4, i % 4
        else:
            yb = ((addr >> 6) & 3) * 16
            x = (addr >> 2) & 15
            row = yb + i if laned else yb + 4 * b + i // 4
            word, sub = row * 16 + x, b if laned else i % 4
        return word * 4 + sub, 1
    # 32-bit (size 3 is reserved; strict mode rejects it before it gets here)
    base, step = _words_32(addr, horizontal)
    return (base + step * i) * 4, 4


@jit_inline
def _words_32(addr, horizontal):
    """First word and word step of a 32-bit vector: a row, or a column of a 16-row block."""
    if horizontal:
        return (addr & _ROW_MASK) * 16, 1
    return ((addr >> 4) & 3) * 256 + (addr & 15), 16


@jit_inline
def write_vector(vpm8, vpm16, vpm32, addr, size, horizontal, laned, values):
    """Store a 16-element vector (low 8/16 bits of each element for narrow sizes)."""
    if size == isa.VPM_SIZE_32:
        base, step = _words_32(addr, horizontal)
        for i in range(16):
            vpm32[base + step * i] = values[i]
        return
    for i in range(16):
        off, width = element_byte(addr, size, horizontal, laned, i)
        v = values[i]
        if width == 4:
            vpm32[off >> 2] = v
        elif width == 2:
            vpm16[off >> 1] = v & 0xFFFF
        else:
            vpm8[off] = v & 0xFF


@jit_inline
def read_vector(vpm8, vpm16, vpm32, addr, size, horizontal, laned, out):
    """Load a 16-element vector; narrow elements are zero-extended (VC4C's reading; spec §9.2)."""
    if size == isa.VPM_SIZE_32:
        base, step = _words_32(addr, horizontal)
        for i in range(16):
            out[i] = vpm32[base + step * i]
        return
    for i in range(16):
        off, width = element_byte(addr, size, horizontal, laned, i)
        if width == 4:
            out[i] = vpm32[off >> 2]
        elif width == 2:
            out[i] = vpm16[off >> 1]
        else:
            out[i] = vpm8[off]


@jit
def setup_problem(q, space, v, qs):
    """What is undefined about QPU q writing setup word v to VPMVCD_RD_SETUP (space 0) or
    VPMVCD_WR_SETUP (space 1): (state.UB_* code, detail), or (-1, 0) when nothing is."""
    if space == 0:
        top = (v >> 28) & 15
        if top < 4:                             # generic VPM read setup
            if qs[q, QS_VPMR_LEFT] > 0:
                return UB_VPM_SETUP_REPLACED, qs[q, QS_VPMR_LEFT]
            if ((v >> 8) & 3) == 3:
                return UB_RESERVED_SETUP, v
        elif top == isa.VCD_LOAD_STRIDE_ID:
            if (v & _PITCHB_FIELD_MASK) >> isa.VCD_LOAD_STRIDE_GUIDE_BITS:
                return UB_PITCHB_BEYOND_GUIDE, v & _PITCHB_FIELD_MASK
            if (v & 0x0FFFFFFF) & ~_PITCHB_FIELD_MASK:
                return UB_RESERVED_SETUP, v
        elif top < 8:
            return UB_RESERVED_SETUP, v
    else:
        top2 = (v >> 30) & 3
        if top2 == 0 and ((v >> 8) & 3) == 3 or top2 != 0 and top2 != isa.VDW_STORE_ID and \
                top2 != isa.VDW_STRIDE_ID:
            return UB_RESERVED_SETUP, v
    return -1, np.int64(0)


@jit_inline
def setup_write(q, space, v, cycle, qs, tp):
    """QPU q writes setup word v to VPMVCD_RD_SETUP (space 0: generic VPM read, DMA load or load
    stride) or VPMVCD_WR_SETUP (space 1: generic VPM write, DMA store or store stride) at `cycle`.
    Each QPU has its own setup registers; reserved words are ignored (see setup_problem)."""
    if space == 0:
        top = (v >> 28) & 15
        if top < 4:
            num = (v >> 20) & 15
            stride = (v >> 12) & 63
            qs[q, QS_VPMR_LEFT] = num if num != 0 else 16
            qs[q, QS_VPMR_STRIDE] = stride if stride != 0 else 64
            qs[q, QS_VPMR_ADDR] = v & 255
            qs[q, QS_VPMR_SIZE] = (v >> 8) & 3
            qs[q, QS_VPMR_HORIZ] = (v >> 11) & 1
            qs[q, QS_VPMR_LANED] = (v >> 10) & 1
            qs[q, QS_VPMR_READY] = cycle + np.int64(tp[TP_VPM_READ])
        elif top == isa.VCD_LOAD_STRIDE_ID:
            qs[q, QS_VCD_PITCHB] = v & _PITCHB_FIELD_MASK
        elif top >= 8:
            qs[q, QS_VCD_SETUP] = v
    else:
        top2 = (v >> 30) & 3
        if top2 == 0:
            stride = (v >> 12) & 63
            qs[q, QS_VPMW_ADDR] = v & 255
            qs[q, QS_VPMW_STRIDE] = stride if stride != 0 else 64
            qs[q, QS_VPMW_SIZE] = (v >> 8) & 3
            qs[q, QS_VPMW_HORIZ] = (v >> 11) & 1
            qs[q, QS_VPMW_LANED] = (v >> 10) & 1
        elif top2 == isa.VDW_STORE_ID:
            qs[q, QS_VDW_SETUP] = v
        elif top2 == isa.VDW_STRIDE_ID:
            qs[q, QS_VDW_STRIDE] = v


def decode_generic_setup(value: int) -> dict:
    """Fields of a generic VPM read/write setup word (host-side helper for trace output)."""
    return isa.decode_fields(isa.VPM_GENERIC_READ_FIELDS, value)
