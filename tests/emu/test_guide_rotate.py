"""Vector rotation on the mul pipe (small-immediate codes 48-63), full and per quad, and the r5
broadcast registers.

Expected values: guide p.20 and p.30 (element 0 moves to element n, i.e. numpy.roll(x, n); full
16-element rotation only when both mul operands are r0-r3, otherwise rotation within each quad by
n mod 4), HW-verified by py-videocore's tests/test_alu.py and tests/test_rotate.py. Rotation by r5
uses bits 3:0 of r5's element 0. The timing rules of guide p.37 are respected: a rotation does not
follow a write of the rotated accumulator or of r5 directly.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np

from guide_support import run_io, u32
from vc4infer.qpu import qpu

RNG = np.random.default_rng(5)


def random_words(n=16):
    return RNG.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)


def quad_roll(x, n):
    return np.concatenate([np.roll(x[4 * q:4 * q + 4], n % 4) for q in range(4)])


@qpu
def rotate_accumulator_by_immediate(asm):
    mov(r0, vpm)
    for n in range(1, 16):
        mov(r1, 0)
        nop()
        rotate(r1, r0, n)
        mov(vpm, r1)
    rotate(r1, r0, -1)          # -1 is code 63: rotation by 15
    mov(vpm, r1)


def test_full_rotation_of_accumulator_by_immediate(drv):
    x = random_words()
    y = run_io(drv, rotate_accumulator_by_immediate, x, 16)
    for n in range(1, 16):
        assert np.array_equal(y[n - 1], np.roll(x, n)), n
    assert np.array_equal(y[15], np.roll(x, 15))


@qpu
def rotate_accumulator_by_r5(asm, amounts):
    mov(r0, vpm)
    for n in amounts:
        mov(broadcast, n)
        nop()
        rotate(r1, r0, r5)
        mov(vpm, r1)


def test_full_rotation_by_r5_uses_its_low_four_bits(drv):
    x = random_words()
    amounts = list(range(-16, 16))
    y = run_io(drv, rotate_accumulator_by_r5, x, len(amounts), amounts)
    for row, n in enumerate(amounts):
        assert np.array_equal(y[row], np.roll(x, n & 15)), n


@qpu
def rotate_regfile(asm):
    mov(ra0, vpm)
    nop()
    for n in range(1, 16):
        rotate(r1, ra0, n)
        mov(vpm, r1)
    for n in range(0, 8):
        mov(broadcast, n)
        nop()
        rotate(r1, ra0, r5)
        mov(vpm, r1)


def test_rotation_of_regfile_operand_is_per_quad(drv):
    x = random_words()
    y = run_io(drv, rotate_regfile, x, 23)
    for n in range(1, 16):
        assert np.array_equal(y[n - 1], quad_roll(x, n)), n
    for n in range(0, 8):
        assert np.array_equal(y[15 + n], quad_roll(x, n)), n


@qpu
def rotate_r4(asm):
    mov(r0, vpm)              # per-element addresses
    mov(tmu0_s, r0)
    nop(sig="load tmu0")
    mov(vpm, r4)
    for n in range(1, 16):
        rotate(r1, r4, n)
        mov(vpm, r1)


def test_rotation_of_r4_is_per_quad(drv):
    data = random_words()
    src = drv.copy(data)
    addresses = np.array([src.address + 4 * e for e in range(16)], dtype=np.uint32)
    y = run_io(drv, rotate_r4, addresses, 16)
    assert np.array_equal(y[0], data)
    for n in range(1, 16):
        assert np.array_equal(y[n], quad_roll(data, n)), n


@qpu
def rotate_fmul_result(asm):
    mov(r0, vpm)
    mov(r1, vpm)
    nop()
    fmul(r2, r0, r1, rotate=3)     # the mul result, rotated
    mov(vpm, r2)


def test_rotation_applies_to_mul_pipe_arithmetic(drv):
    a = RNG.standard_normal(16).astype(np.float32)
    b = RNG.standard_normal(16).astype(np.float32)
    y = run_io(drv, rotate_fmul_result, np.stack([a, b]), 1, dtype="float32")
    exact = np.roll(a.astype(np.float64) * b, 3)
    assert np.all(np.abs(y[0] - exact) <= np.abs(exact) * 2.0 ** -23)


@qpu
def rotate_codes_read_as_values(asm):
    """The add pipe reads the raddr_b code of the rotation as a small immediate: codes 48..63
    read as -16..-1 (vc4asm's finding, HW-verified by py-videocore's rotate_as_simm)."""
    mov(r0, vpm)
    mov(broadcast, 0)
    nop()
    iadd(r1, r0, -16).rotate(r2, r0, r5)          # code 48 shared
    mov(vpm, r1)
    mov(vpm, r2)
    for n in range(1, 16):
        iadd(r1, r0, n - 16).rotate(r2, r0, n)   # code 48 + n shared
        mov(vpm, r1)
        mov(vpm, r2)


def test_rotation_codes_read_as_minus16_to_minus1(drv):
    x = random_words()
    y = run_io(drv, rotate_codes_read_as_values, x, 32)
    assert np.array_equal(y[0], x + np.uint32(u32(-16)))
    assert np.array_equal(y[1], x)
    for n in range(1, 16):
        assert np.array_equal(y[2 * n], x + np.uint32(u32(n - 16))), n
        assert np.array_equal(y[2 * n + 1], np.roll(x, n)), n


@qpu
def r5_writes(asm):
    mov(r0, vpm)
    mov(broadcast, r0)             # B-space 37: element 0 to all 16
    mov(vpm, r5)
    mov(r5_pix0, r0)               # A-space 37: element 0 of each quad to its quad
    mov(vpm, r5)


def test_r5_broadcast_and_per_quad_replication(drv):
    x = random_words()
    y = run_io(drv, r5_writes, x, 2)
    assert np.all(y[0] == x[0])
    assert np.array_equal(y[1], np.repeat(x[[0, 4, 8, 12]], 4))
