"""Generic VPM reads and writes: horizontal and vertical, 32/16/8-bit, packed and laned, with
strides (guide p.53-58, Figures 8-9, Tables 32-33).

The expected layout comes from a small numpy model of the guide's addressing table (spec digest
section 9.2): the vector address of each mode, where element i of a vector lands, and the
address step by STRIDE after each vector. Sub-word writes store the low 8/16 bits of each element
and leave the other bytes of the word alone; sub-word reads are zero-extended (VC4C's reading of
the guide; the guide describes only the layout). The 32-bit cases are the ones py-videocore
checked on hardware (tests/test_vpm.py).
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from guide_support import run_io
from vc4infer.qpu import qpu

RNG = np.random.default_rng(13)
SIZES = {"8bit": (0, 1), "16bit": (1, 2), "32bit": (2, 4)}


def parse_mode(mode):
    parts = mode.split()
    size = parts[0]
    laned = "laned" in parts
    horizontal = parts[-1] == "horizontal"
    return size, laned, horizontal


def start_address(mode, Y=0, X=0, H=0, B=0):
    """The 8-bit vector address the setup word carries (guide Tables 32-33)."""
    size, _, horizontal = parse_mode(mode)
    if horizontal:
        return {"32bit": Y, "16bit": Y << 1 | H, "8bit": Y << 2 | B}[size]
    yhi = Y >> 4
    return {"32bit": yhi << 4 | X, "16bit": yhi << 5 | X << 1 | H, "8bit": yhi << 6 | X << 2 | B}[size]


def element_locations(mode, addr):
    """(row, word, byte offset, bytes) of the 16 elements of the vector at `addr`."""
    size, laned, horizontal = parse_mode(mode)
    out = []
    for i in range(16):
        if size == "32bit":
            if horizontal:
                out.append((addr & 63, i, 0, 4))
            else:
                out.append((16 * ((addr >> 4) & 3) + i, addr & 15, 0, 4))
        elif size == "16bit":
            if horizontal:
                y, h = (addr >> 1) & 63, addr & 1
                out.append((y, i, 2 * h, 2) if laned else (y, 8 * h + i // 2, 2 * (i % 2), 2))
            else:
                base, x, h = 16 * ((addr >> 5) & 3), (addr >> 1) & 15, addr & 1
                out.append((base + i, x, 2 * h, 2) if laned else (base + 8 * h + i // 2, x, 2 * (i % 2), 2))
        else:
            if horizontal:
                y, b = (addr >> 2) & 63, addr & 3
                out.append((y, i, b, 1) if laned else (y, 4 * b + i // 4, i % 4, 1))
            else:
                base, x, b = 16 * ((addr >> 6) & 3), (addr >> 2) & 15, addr & 3
                out.append((base + i, x, b, 1) if laned else (base + 4 * b + i // 4, x, i % 4, 1))
    return out


class VpmModel:
    """The user-visible 64 x 16-word VPM as bytes."""

    def __init__(self, rows):
        self.mem = np.zeros((64, 64), np.uint8)
        self.mem[:rows.shape[0]] = rows.view(np.uint8).reshape(rows.shape[0], 64)

    def write(self, mode, addr, values):
        for (row, word, off, n), v in zip(element_locations(mode, addr), values):
            low_bytes = np.frombuffer(int(v).to_bytes(4, "little")[:n], np.uint8)
            self.mem[row, 4 * word + off:4 * word + off + n] = low_bytes

    def read(self, mode, addr):
        out = []
        for row, word, off, n in element_locations(mode, addr):
            out.append(int.from_bytes(self.mem[row, 4 * word + off:4 * word + off + n].tobytes(), "little"))
        return np.array(out, np.uint32)

    def rows(self, n):
        return self.mem[:n].copy().view(np.uint32)


@qpu
def copy_inputs_to_rows_0_15(asm):
    """Copies the 16 input rows to VPM rows 0..15, keeping rows 14 and 15 in ra1 and rb1."""
    for row in range(16):
        mov(r0, vpm)
        mov(vpm, r0)
        if row == 14:
            mov(ra1, r0)
        if row == 15:
            mov(rb1, r0)


@qpu
def subword_write(asm, mode, stride, Y, X, H, B):
    copy_inputs_to_rows_0_15(asm)
    setup_vpm_write(mode=mode, stride=stride, Y=Y, X=X, H=H, B=B)
    mov(vpm, ra1)
    mov(vpm, rb1)


@qpu
def subword_read(asm, mode, stride, Y, X, H, B):
    copy_inputs_to_rows_0_15(asm)
    setup_vpm_read(nrows=2, mode=mode, stride=stride, Y=Y, X=X, H=H, B=B)
    mov(r1, vpm)
    mov(r2, vpm)
    setup_vpm_write(Y=16)
    mov(vpm, r1)
    mov(vpm, r2)


CASES = [
    # mode, stride, Y, X, H, B
    ("32bit horizontal", 1, 3, 0, 0, 0),
    ("32bit horizontal", 3, 9, 0, 0, 0),
    ("32bit vertical", 1, 0, 4, 0, 0),
    ("32bit vertical", 2, 0, 3, 0, 0),
    ("16bit packed horizontal", 1, 2, 0, 1, 0),
    ("16bit laned horizontal", 1, 3, 0, 1, 0),
    ("16bit packed vertical", 1, 0, 6, 1, 0),
    ("16bit laned vertical", 1, 0, 9, 0, 0),
    ("8bit packed horizontal", 1, 5, 0, 0, 3),
    ("8bit laned horizontal", 2, 7, 0, 0, 2),
    ("8bit packed vertical", 1, 0, 11, 0, 2),
    ("8bit laned vertical", 3, 0, 13, 0, 1),
]


def _ids(case):
    return f"{case[0].replace(' ', '-')}-stride{case[1]}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_vpm_write_layout(drv, case):
    mode, stride, Y, X, H, B = case
    background = RNG.integers(0, 2**32, (16, 16), dtype=np.uint64).astype(np.uint32)
    y = run_io(drv, subword_write, background, 16, mode, stride, Y, X, H, B)
    model = VpmModel(background)
    addr = start_address(mode, Y=Y, X=X, H=H, B=B)
    for values in (background[14], background[15]):
        model.write(mode, addr, values)
        addr = (addr + stride) & 0xFF
    assert np.array_equal(y, model.rows(16))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_vpm_read_layout(drv, case):
    mode, stride, Y, X, H, B = case
    background = RNG.integers(0, 2**32, (16, 16), dtype=np.uint64).astype(np.uint32)
    y = run_io(drv, subword_read, background, 18, mode, stride, Y, X, H, B)
    model = VpmModel(background)
    addr = start_address(mode, Y=Y, X=X, H=H, B=B)
    first = model.read(mode, addr)
    second = model.read(mode, (addr + stride) & 0xFF)
    assert np.array_equal(y[:16], background)
    assert np.array_equal(y[16], first)
    assert np.array_equal(y[17], second)


def test_model_matches_the_guide_examples():
    """Spot checks of the model against the guide's figures (no QPU)."""
    # horizontal 16-bit packed, H=1: elements 0,1 share word 8
    mode = "16bit packed horizontal"
    assert element_locations(mode, start_address(mode, Y=2, H=1))[:2] == [(2, 8, 0, 2), (2, 8, 2, 2)]
    # vertical 32-bit at Y=16, X=5: element i in row 16+i, column 5
    assert element_locations("32bit vertical", start_address("32bit vertical", Y=16, X=5))[3] == (19, 5, 0, 4)
    # vertical 8-bit packed, B=2: elements 0..3 in row 8 of the block, bytes 0..3
    assert element_locations("8bit packed vertical", start_address("8bit packed vertical", X=1, B=2))[:4] == \
        [(8, 1, 0, 1), (8, 1, 1, 1), (8, 1, 2, 1), (8, 1, 3, 1)]


# --------------------------------------------------- the 32-bit programs py-videocore ran on a Pi

@qpu
def horizontal_rows_to_columns(asm):
    setup_vpm_write(mode="32bit vertical", Y=16, X=0)
    for _ in range(16):
        mov(r0, vpm)
        mov(vpm, r0)
    setup_vpm_read(nrows=16, mode="32bit horizontal", Y=16)
    setup_vpm_write(Y=0)
    for _ in range(16):
        mov(r0, vpm)
        mov(vpm, r0)


def test_vertical_write_then_horizontal_read_transposes(drv):
    x = RNG.integers(0, 2**32, (16, 16), dtype=np.uint64).astype(np.uint32)
    y = run_io(drv, horizontal_rows_to_columns, x, 16)
    assert np.array_equal(y, x.T)


@qpu
def read_rows_with_stride(asm):
    setup_vpm_write(Y=0)
    for _ in range(16):
        mov(r0, vpm)
        mov(vpm, r0)
    setup_vpm_read(nrows=8, Y=0, stride=2)        # rows 0, 2, 4, ...
    setup_vpm_write(Y=16)
    for _ in range(8):
        mov(r0, vpm)
        mov(vpm, r0)


def test_horizontal_read_with_stride(drv):
    x = RNG.integers(0, 2**32, (16, 16), dtype=np.uint64).astype(np.uint32)
    y = run_io(drv, read_rows_with_stride, x, 24)
    assert np.array_equal(y[16:24], x[0:16:2])


@qpu
def write_across_row_63(asm):
    setup_vpm_write(Y=63)
    ldi(r0, 0x6363)
    mov(vpm, r0)                  # row 63
    ldi(r1, 0x0101)
    mov(vpm, r1)                  # Y passes 63: wraps to row 0
    setup_dma_store(Y=63, nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    setup_dma_store(Y=0, nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_vpm_write_address_wraps_after_row_63(drv):
    out = drv.alloc((2, 16), "uint32")
    drv.execute(n_threads=1, program=drv.program(write_across_row_63),
                uniforms=[out.address, out.address + 64])
    assert np.all(np.array(out)[0] == 0x6363) and np.all(np.array(out)[1] == 0x0101)
