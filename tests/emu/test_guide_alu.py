"""Integer, bitwise and 8-bit-vector ALU ops, small immediates and load immediates, each against
values worked out from the reference guide (Tables 12, 13 and 5) and numpy.

Evidence: the py-videocore hardware suite (tests/test_alu.py) ran the same kinds of programs on a
Pi; the edge values (wrap-around, shift counts >= 32, clz(0), imul24 of wide inputs) follow the
guide's definitions, with clz(0) = 32 and "shifts use the low 5 bits" measured by VC4C's authors.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from guide_support import run_io, run_store, u32
from vc4infer.qpu import qpu

RNG = np.random.default_rng(20261123)
MASK32 = np.uint64(0xFFFFFFFF)


def random_words(n=16):
    return RNG.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)


def with_edges(values, edges):
    out = np.array(values, dtype=np.uint32)
    out[:len(edges)] = [u32(e) for e in edges]
    return out


# ------------------------------------------------------------------ two-operand integer ops

@qpu
def binary_ops(asm, ops):
    mov(r0, vpm)
    mov(r1, vpm)
    for op in ops:
        getattr(asm, op)(r2, r0, r1)
        mov(vpm, r2)


def test_iadd_isub_imin_imax_wrap_and_sign(drv):
    a = with_edges(random_words(), [0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0, -5, 3])
    b = with_edges(random_words(), [1, 1, 0xFFFFFFFF, 0xFFFFFFFF, 7, -9])
    y = run_io(drv, binary_ops, np.stack([a, b]), 4, ["iadd", "isub", "imin", "imax"])
    assert np.array_equal(y[0], ((a.astype(np.uint64) + b) & MASK32).astype(np.uint32))
    assert np.array_equal(y[1], ((a.astype(np.uint64) - b.astype(np.uint64)) & MASK32).astype(np.uint32))
    sa, sb = a.view(np.int32), b.view(np.int32)
    assert np.array_equal(y[2].view(np.int32), np.minimum(sa, sb))
    assert np.array_equal(y[3].view(np.int32), np.maximum(sa, sb))
    # spelled out: 0x7FFFFFFF + 1 wraps to 0x80000000, 0xFFFFFFFF + 1 to 0, 0 - 0xFFFFFFFF to 1
    assert y[0][0] == 0x80000000 and y[0][1] == 0 and y[1][3] == 1


def test_bitwise_and_or_xor(drv):
    a, b = random_words(), random_words()
    y = run_io(drv, binary_ops, np.stack([a, b]), 3, ["band", "bor", "bxor"])
    assert np.array_equal(y[0], a & b)
    assert np.array_equal(y[1], a | b)
    assert np.array_equal(y[2], a ^ b)


def _ror(x, s):
    x, s = int(x), int(s) & 31
    return ((x >> s) | (x << (32 - s))) & 0xFFFFFFFF if s else x


def test_shifts_use_the_low_five_bits_of_the_count(drv):
    a = random_words()
    a[0] = 0x80000001
    # counts 0..31 and counts >= 32 or negative, which must act as count & 31
    b = np.array([0, 1, 31, 32, 33, 63, 64, -1, -31, 0xFFFFFFE0, 5, 16, 100, 7, 24, 0x7FFFFFFF],
                 dtype=np.int64).astype(np.uint32)
    y = run_io(drv, binary_ops, np.stack([a, b]), 4, ["shr", "asr", "ror", "shl"])
    s = b & 31
    assert np.array_equal(y[0], a >> s)
    assert np.array_equal(y[1].view(np.int32), a.view(np.int32) >> s.astype(np.int32))
    assert np.array_equal(y[2], np.array([_ror(x, c) for x, c in zip(a, s)], dtype=np.uint32))
    assert np.array_equal(y[3], ((a.astype(np.uint64) << s.astype(np.uint64)) & MASK32).astype(np.uint32))


def test_imul24_multiplies_the_low_24_bits_of_each_operand(drv):
    a = random_words()        # full 32-bit inputs: bits 31:24 must be ignored
    b = random_words()
    a[:4] = [0x00FFFFFF, 0xFF000003, 0x12345678, 0xFFFFFFFF]
    b[:4] = [0x00FFFFFF, 0x00000005, 0x01000000, 0xFFFFFFFF]
    y = run_io(drv, binary_ops, np.stack([a, b]), 1, ["imul24"])
    lo24 = np.uint64(0xFFFFFF)
    expected = (((a.astype(np.uint64) & lo24) * (b.astype(np.uint64) & lo24)) & MASK32).astype(np.uint32)
    assert np.array_equal(y[0], expected)
    assert y[0][1] == 15 and y[0][2] == 0


# ------------------------------------------------------------------- one-operand integer ops

@qpu
def unary_ops(asm, ops):
    mov(r0, vpm)
    for op in ops:
        getattr(asm, op)(r1, r0)
        mov(vpm, r1)


def _clz(x):
    return 32 - int(x).bit_length()


def test_bnot_and_clz_including_clz_of_zero(drv):
    a = random_words()
    a[:5] = [0, 1, 0x80000000, 0xFFFFFFFF, 0x00010000]
    y = run_io(drv, unary_ops, a, 2, ["bnot", "clz"])
    assert np.array_equal(y[0], ~a)
    assert np.array_equal(y[1], np.array([_clz(x) for x in a], dtype=np.uint32))
    assert list(y[1][:5]) == [32, 31, 0, 0, 15]


# ---------------------------------------------------------------- 8-bit vector (v8) ops

@qpu
def v8_both_pipes(asm, op):
    """The same v8 op on the add pipe (into r2) and the mul pipe (into r3) in one instruction."""
    mov(r0, vpm)
    mov(r1, vpm)
    getattr(getattr(asm, op)(r2, r0, r1), op)(r3, r0, r1)
    mov(vpm, r2)
    mov(vpm, r3)


@pytest.mark.parametrize("op", ["v8adds", "v8subs"])
def test_v8_saturating_add_and_sub_on_both_pipes(drv, op):
    x = RNG.integers(0, 256, (2, 64)).astype(np.uint8)
    x[0, :4], x[1, :4] = [250, 0, 255, 128], [10, 1, 255, 128]
    y = run_io(drv, v8_both_pipes, x, 2, op, dtype="uint8")
    a, b = x.astype(np.int32)
    expected = np.clip(a + b if op == "v8adds" else a - b, 0, 255).astype(np.uint8)
    assert np.array_equal(y[0], expected), "add pipe"
    assert np.array_equal(y[1], expected), "mul pipe"


@qpu
def mul_pipe_op(asm, op):
    mov(r0, vpm)
    mov(r1, vpm)
    getattr(nop(), op)(r2, r0, r1)
    mov(vpm, r2)


@pytest.mark.parametrize("op", ["v8min", "v8max", "v8muld"])
def test_v8_mul_pipe_ops(drv, op):
    x = RNG.integers(0, 256, (2, 64)).astype(np.uint8)
    x[0, :6], x[1, :6] = [255, 255, 0, 0, 128, 17], [0, 200, 0, 77, 128, 255]
    y = run_io(drv, mul_pipe_op, x, 1, op, dtype="uint8")[0].astype(np.int32)
    a, b = x.astype(np.int32)
    if op == "v8min":
        assert np.array_equal(y, np.minimum(a, b))
    elif op == "v8max":
        assert np.array_equal(y, np.maximum(a, b))
    else:
        # bytes are fractions in [0, 1]: a*b/255 (the hardware test allows +-1 of the floor)
        assert np.all(np.abs(y - (a * b) // 255) <= 1)
        # 1.0 * x = x and 0 * x = 0 exactly
        ones = (a == 255) | (b == 255)
        assert np.array_equal(y[ones], np.where(a == 255, b, a)[ones])
        assert np.all(y[(a == 0) | (b == 0)] == 0)


# ----------------------------------------------------------------------- small immediates

@qpu
def small_imm_int(asm):
    mov(r0, vpm)
    for imm in range(-16, 16):
        iadd(vpm, r0, imm)


def test_small_immediates_minus16_to_15(drv):
    a = random_words()
    y = run_io(drv, small_imm_int, a, 32)
    for row, imm in enumerate(range(-16, 16)):
        assert np.array_equal(y[row], ((a.astype(np.int64) + imm) & 0xFFFFFFFF).astype(np.uint32)), imm


@qpu
def small_imm_float(asm):
    mov(r0, vpm)
    for e in range(-8, 8):
        fmul(vpm, r0, 2.0 ** e)


def test_small_immediates_powers_of_two(drv):
    x = RNG.standard_normal(16).astype(np.float32)
    y = run_io(drv, small_imm_float, x, 16, dtype="float32")
    for row, e in enumerate(range(-8, 8)):
        assert np.array_equal(y[row], x * np.float32(2.0 ** e)), e   # exact: scaling by 2^e


@qpu
def shared_small_imm(asm):
    mov(r0, vpm)
    iadd(r1, r0, -3).v8min(r2, r0, -3)   # one raddr_b code feeds both pipes
    mov(vpm, r1)
    mov(vpm, r2)


def test_one_small_immediate_shared_by_both_pipes(drv):
    a = random_words()
    y = run_io(drv, shared_small_imm, a, 2)
    m3 = np.uint32(u32(-3))
    assert np.array_equal(y[0], a + m3)
    bytes_min = np.minimum(a.view(np.uint8).reshape(16, 4), np.frombuffer(np.uint32(m3).tobytes(), np.uint8))
    assert np.array_equal(y[1], bytes_min.reshape(-1).view(np.uint32))


# ------------------------------------------------------------------------- load immediate

@qpu
def load_immediates(asm, per_elem_unsigned, per_elem_signed):
    ldi(r1, r2, 0x12345678)            # one value to two destinations
    mov(vpm, r1)
    mov(vpm, r2)
    ldi(r1, -123456789)
    mov(vpm, r1)
    ldi(r1, 1.5)
    mov(vpm, r1)
    ldi(r1, per_elem_unsigned)
    mov(vpm, r1)
    ldi(r1, per_elem_signed)
    mov(vpm, r1)
    ldi(ra1, 0xCAFEF00D)               # to the register file, read two instructions later
    nop()
    mov(vpm, ra1)


def test_ldi_values_two_destinations_and_per_element(drv):
    unsigned = [int(v) for v in RNG.integers(0, 4, 16)]
    signed = [int(v) for v in RNG.integers(-2, 2, 16)]
    signed[0] = -2     # makes the list signed for the assembler
    y = run_store(drv, load_immediates, 7, unsigned, signed)
    assert np.all(y[0] == 0x12345678) and np.all(y[1] == 0x12345678)
    assert np.all(y[2].view(np.int32) == -123456789)
    assert np.all(y[3].view(np.float32) == 1.5)
    assert list(y[4]) == unsigned
    assert list(y[5].view(np.int32)) == signed
    assert np.all(y[6] == 0xCAFEF00D)


# ------------------------------------------------------------- special read registers

@qpu
def element_and_qpu_number(asm):
    mov(r0, element_number)
    mov(vpm, r0)
    mov(r1, qpu_number)
    mov(vpm, r1)


def test_element_number_and_qpu_number(drv):
    y = run_store(drv, element_and_qpu_number, 2)
    assert list(y[0]) == list(range(16))
    assert np.all(y[1] == y[1][0]) and 0 <= y[1][0] < 12
