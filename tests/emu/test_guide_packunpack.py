"""Regfile-A unpack (integer and float consumers), r4 unpack (through TMU loads), regfile-A pack
(integer, saturating, float16) with partial-width writes, and the MUL-pipe colour pack.

Expected values: the guide's Tables 6-9 (section 7 of the spec digest, with the Table 9 erratum:
codes 4-7 are 8a-8d), checked on hardware by py-videocore's tests/test_packunpack.py; "bytes a
partial pack does not write keep their old value" is from VC4C and vc4asm (section 7.2).
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from guide_support import run_io
from vc4infer.qpu import qpu

RNG = np.random.default_rng(99)


def int16_of(halves):
    """The low 16 bits of each word as int16."""
    return np.asarray(halves).astype(np.uint16).view(np.int16)


def random_words(shape):
    return RNG.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32)


# ------------------------------------------------------------------------ regfile-A unpack

INT_UNPACKS = ["nop", "16a", "16b", "rep 8d", "8a", "8b", "8c", "8d"]


@qpu
def unpack_int(asm, ops):
    for op in ops:
        mov(ra0, vpm)
        nop()
        mov(vpm, ra0.unpack(op))


def test_regfile_a_unpack_integer(drv):
    x = random_words((8, 16))
    x[1, 0], x[2, 0] = 0x00008001, 0x80010000        # negative halves: sign extension
    y = run_io(drv, unpack_int, x, 8, INT_UNPACKS)
    assert np.array_equal(y[0], x[0])
    assert np.array_equal(y[1].view(np.int32), int16_of(x[1] & 0xFFFF).astype(np.int32))
    assert np.array_equal(y[2].view(np.int32), int16_of(x[2] >> 16).astype(np.int32))
    assert np.array_equal(y[3], ((x[3] >> 24) & 0xFF) * np.uint32(0x01010101))
    for row, shift in zip(range(4, 8), (0, 8, 16, 24)):
        assert np.array_equal(y[row], (x[row] >> shift) & 0xFF)       # zero extension
    assert y[1][0] == 0xFFFF8001 and y[2][0] == 0xFFFF8001


@qpu
def unpack_float(asm, ops):
    for op in ops:
        mov(ra0, vpm)
        nop()
        fmul(vpm, ra0.unpack(op), 1.0)


def _float16_rows(f):
    halves = f.astype(np.float16).view(np.uint16).astype(np.uint32)
    return halves, halves << 16


def test_regfile_a_unpack_float(drv):
    f = RNG.standard_normal(16)
    x = np.zeros((7, 16), np.uint32)
    x[0] = f.astype(np.float32).view(np.uint32)
    x[1], x[2] = _float16_rows(f)
    x[1] |= 0xABCD0000                 # the other half must not matter
    x[2] |= 0x00001234
    x[3:7] = random_words((4, 16))
    y = run_io(drv, unpack_float, x, 7, ["nop", "16a", "16b", "8a", "8b", "8c", "8d"], dtype="float32")
    f16 = f.astype(np.float16).astype(np.float32)
    assert np.array_equal(y[0], f.astype(np.float32))
    assert np.array_equal(y[1], f16)                  # float16 -> float32 is exact
    assert np.array_equal(y[2], f16)
    for row, shift in zip(range(3, 7), (0, 8, 16, 24)):
        expected = (((x[row] >> shift) & 0xFF) / 255.0).astype(np.float32)
        assert np.allclose(y[row], expected, rtol=1e-7, atol=0)


# ---------------------------------------------------------------------------- r4 unpack

@qpu
def unpack_r4(asm, ops):
    shl(r0, element_number, 2)
    iadd(r0, uniform, r0)             # r0[e] = base + 4*e
    ldi(r1, 64)                       # next row
    setup_vpm_write()
    for op in ops:
        mov(tmu0_s, r0)
        nop(sig="load tmu0")
        fadd(vpm, r4.unpack(op), 0.0)
        iadd(r0, r0, r1)
    setup_dma_store(nrows=len(ops))
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_r4_unpack_of_tmu_data(drv):
    ops = ["nop", "16a", "16b", "8a", "8b", "8c", "8d"]
    f = RNG.standard_normal(16)
    x = np.zeros((7, 16), np.uint32)
    x[0] = f.astype(np.float32).view(np.uint32)
    x[1], x[2] = _float16_rows(f)
    x[3:7] = random_words((4, 16))
    src = drv.copy(x)
    out = drv.alloc((7, 16), "uint32")
    drv.execute(n_threads=1, program=drv.program(unpack_r4, ops), uniforms=[src.address, out.address])
    y = np.array(out).view(np.float32)
    f16 = f.astype(np.float16).astype(np.float32)
    assert np.array_equal(y[0], f.astype(np.float32))
    assert np.array_equal(y[1], f16) and np.array_equal(y[2], f16)
    for row, shift in zip(range(3, 7), (0, 8, 16, 24)):
        assert np.allclose(y[row], ((x[row] >> shift) & 0xFF) / 255.0, rtol=1e-7, atol=0)


# ------------------------------------------------------------------------- regfile-A pack

@qpu
def pack_int_partial(asm, ops):
    """Each op: fill ra0 with the pattern of the first input row, then write the second row
    through the pack: bytes the pack does not write keep the pattern."""
    for op in ops:
        mov(r0, vpm)               # background pattern
        mov(r1, vpm)               # value to pack
        mov(ra0, r0)
        nop()
        mov(ra0.pack(op), r1)
        nop()
        mov(vpm, ra0)


NON_SAT_PACKS = ["16a", "16b", "rep 8", "8a", "8b", "8c", "8d"]
#: bytes each non-saturating mode writes, and the value it writes there (from v = the input)
NON_SAT_EXPECT = {
    "16a": (0x0000FFFF, lambda v: v & 0xFFFF),
    "16b": (0xFFFF0000, lambda v: (v & 0xFFFF) << 16),
    "rep 8": (0xFFFFFFFF, lambda v: (v & 0xFF) * 0x01010101),
    "8a": (0x000000FF, lambda v: v & 0xFF),
    "8b": (0x0000FF00, lambda v: (v & 0xFF) << 8),
    "8c": (0x00FF0000, lambda v: (v & 0xFF) << 16),
    "8d": (0xFF000000, lambda v: (v & 0xFF) << 24),
}


@pytest.mark.parametrize("op", NON_SAT_PACKS)
def test_regfile_a_integer_pack_writes_only_its_bytes(drv, op):
    background = random_words(16)
    value = random_words(16)
    y = run_io(drv, pack_int_partial, np.stack([background, value]), 1, [op])[0]
    mask, place = NON_SAT_EXPECT[op]
    expected = np.array([(int(b) & ~mask & 0xFFFFFFFF) | place(int(v)) for b, v in zip(background, value)],
                        dtype=np.uint32)
    assert np.array_equal(y, expected)


@qpu
def pack_int_sat(asm, ops):
    for op in ops:
        mov(ra0, vpm)
        nop()
        iadd(ra0.pack(op), ra0, ra0)
        nop()
        mov(vpm, ra0)


def test_regfile_a_saturating_integer_packs(drv):
    ops = ["32 sat", "16a sat", "16b sat", "rep 8 sat", "8a sat", "8b sat", "8c sat", "8d sat"]
    x = np.zeros((8, 16), np.int32)
    x[0] = random_words(16).view(np.int32)
    x[0, :3] = [2**30, -(2**30) - 1, 5]
    x[1:3] = RNG.integers(-(2**15), 2**15, (2, 16))
    x[3:] = RNG.integers(-128, 128, (5, 16))
    y = run_io(drv, pack_int_sat, x.view(np.uint32), 8, ops)
    twice = 2 * x.astype(np.int64)
    assert np.array_equal(y[0].view(np.int32), np.clip(twice[0], -(2**31), 2**31 - 1))
    assert np.array_equal(int16_of(y[1] & 0xFFFF), np.clip(twice[1], -(2**15), 2**15 - 1))
    assert np.array_equal(int16_of(y[2] >> 16), np.clip(twice[2], -(2**15), 2**15 - 1))
    assert np.array_equal(y[3], np.clip(twice[3], 0, 255).astype(np.uint32) * np.uint32(0x01010101))
    for row, shift in zip(range(4, 8), (0, 8, 16, 24)):
        assert np.array_equal((y[row] >> shift) & 0xFF, np.clip(twice[row], 0, 255).astype(np.uint32))


@qpu
def pack_float(asm, ops):
    for op in ops:
        mov(ra0, vpm)
        nop()
        fadd(ra0.pack(op), ra0, 0.0)
        nop()
        mov(vpm, ra0)


def test_regfile_a_float16_packs(drv):
    ops = ["nop", "16a", "16b", "16a sat", "16b sat"]
    f = RNG.standard_normal((5, 16)).astype(np.float32)
    y = run_io(drv, pack_float, f, 5, ops)
    assert np.array_equal(y[0].view(np.float32), f[0])

    def half(bits):
        return (bits & 0xFFFF).astype(np.uint16).view(np.float16).astype(np.float32)

    for row, shift in ((1, 0), (2, 16), (3, 0), (4, 16)):
        assert np.allclose(half(y[row] >> shift), f[row], rtol=1e-3, atol=0), ops[row]


# ------------------------------------------------------------------------ MUL colour pack

@qpu
def pack_mul(asm, ops):
    for op in ops:
        mov(ra0, vpm)
        nop()
        fmul(ra0, ra0, 1.0, pack=op)
        nop()
        mov(vpm, ra0)


def test_mul_pipe_colour_pack(drv):
    ops = ["rep 8", "8a", "8b", "8c", "8d"]
    f = (RNG.standard_normal((5, 16)) * 0.5 + 0.5).astype(np.float32)
    f[1, :4] = [-1.0, 0.0, 1.0, 2.0]                 # saturation to [0, 255]
    y = run_io(drv, pack_mul, f, 5, ops)
    colour = np.clip(np.round(f.astype(np.float64) * 255), 0, 255).astype(np.int64)
    for shift in (0, 8, 16, 24):
        assert np.all(np.abs(((y[0] >> shift) & 0xFF).astype(np.int64) - colour[0]) <= 1)
    for row, shift in zip(range(1, 5), (0, 8, 16, 24)):
        assert np.all(np.abs(((y[row] >> shift) & 0xFF).astype(np.int64) - colour[row]) <= 1), ops[row]
    assert list((y[1][:4] & 0xFF)) == [0, 0, 255, 255]
