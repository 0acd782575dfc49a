"""The VPM as QPU programs see it: 64 rows of 16 32-bit words (4 KiB; erratum HW-2253 limits user
programs to these rows), read and written as 16-element vectors through the generic block setups
(spec §9.2-9.3): 8/16/32-bit, horizontal/vertical, packed/laned, with stride; addresses wrap at
row 64.
"""
from vc4infer.emu.jit import jit
from vc4infer.qpu import isa

VPM_WORDS = isa.VPM_USER_ROWS * isa.VPM_ROW_WORDS
_ROW_MASK = isa.VPM_USER_ROWS - 1


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
    if horizontal:
        word = (addr & _ROW_MASK) * 16 + i
    else:
        word = (((addr >> 4) & 3) * 16 + i) * 16 + (addr & 15)
    return word * 4, 4


@jit
def write_vector(vpm8, vpm16, vpm32, addr, size, horizontal, laned, values):
    """Store a 16-element vector (low 8/16 bits of each element for narrow sizes)."""
    for i in range(16):
        off, width = element_byte(addr, size, horizontal, laned, i)
        v = values[i]
        if width == 4:
            vpm32[off >> 2] = v
        elif width == 2:
            vpm16[off >> 1] = v & 0xFFFF
        else:
            vpm8[off] = v & 0xFF


@jit
def read_vector(vpm8, vpm16, vpm32, addr, size, horizontal, laned, out):
    """Load a 16-element vector; narrow elements are zero-extended (VC4C's reading; spec §9.2)."""
    for i in range(16):
        off, width = element_byte(addr, size, horizontal, laned, i)
        if width == 4:
            out[i] = vpm32[off >> 2]
        elif width == 2:
            out[i] = vpm16[off >> 1]
        else:
            out[i] = vpm8[off]


def decode_generic_setup(value: int) -> dict:
    """Fields of a generic VPM read/write setup word (host-side helper for trace output)."""
    return isa.decode_fields(isa.VPM_GENERIC_READ_FIELDS, value)
