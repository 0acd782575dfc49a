"""Condition codes on the add and the mul pipe (guide Table 2), and the N/Z/C flags each op sets
(guide p.27-28; C per op from the spec digest's section 3.3, where vc4asm and VC4C agree).

A flag probe sets the flags with one op, then copies them out as 0/1 rows with conditional moves
(`mov(r2, 0)`, `mov(r2, 1, cond='zs')`), so every expectation is a per-element bool computed here.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from guide_support import f32_round_toward_zero, run_io
from vc4infer.qpu import qpu

RNG = np.random.default_rng(3)
HALF = np.array([0] * 8 + [1] * 8, dtype=np.uint32)


# ------------------------------------------------------------------- conditional writes

@qpu
def conditional_add(asm, conds):
    mov(ra0, vpm)
    ldi(r2, [1] * 16)
    ldi(r3, [0] * 8 + [1] * 8)
    nop()
    mov(r1, ra0)
    iadd(r1, r1, 1, cond="never")
    mov(vpm, r1)
    for cond, setup in conds:
        if setup == "z":
            isub(null, r2, r3, set_flags=True)      # Z set in elements 8..15
        else:
            isub(null, r3, r2, set_flags=True)      # N and C set in elements 0..7
        mov(r1, ra0)
        iadd(r1, r1, 1, cond=cond, set_flags=False)
        mov(vpm, r1)


@qpu
def conditional_mul(asm, conds):
    mov(ra0, vpm)
    ldi(r2, [1] * 16)
    ldi(r3, [0] * 8 + [1] * 8)
    nop()
    mov(r1, ra0)
    fmul(r1, r1, 2.0, cond="never")
    mov(vpm, r1)
    for cond, setup in conds:
        if setup == "z":
            isub(null, r2, r3, set_flags=True)
        else:
            isub(null, r3, r2, set_flags=True)
        mov(r1, ra0)
        fmul(r1, r1, 2.0, cond=cond)
        mov(vpm, r1)


CONDS = [("zs", "z"), ("zc", "z"), ("ns", "n"), ("nc", "n"), ("cs", "n"), ("cc", "n")]
#: elements where each condition holds for the flag patterns above
HOLDS = {"zs": HALF == 1, "zc": HALF == 0, "ns": HALF == 0, "nc": HALF == 1, "cs": HALF == 0, "cc": HALF == 1}


def test_every_condition_on_the_add_pipe(drv):
    x = RNG.integers(0, 2**32, 16, dtype=np.uint64).astype(np.uint32)
    y = run_io(drv, conditional_add, x, 7, CONDS)
    assert np.array_equal(y[0], x)                        # never
    for row, (cond, _) in enumerate(CONDS, start=1):
        assert np.array_equal(y[row], np.where(HOLDS[cond], x + np.uint32(1), x)), cond


def test_every_condition_on_the_mul_pipe(drv):
    x = RNG.standard_normal(16).astype(np.float32)
    y = run_io(drv, conditional_mul, x, 7, CONDS, dtype="float32")
    assert np.array_equal(y[0], x)
    for row, (cond, _) in enumerate(CONDS, start=1):
        assert np.array_equal(y[row], np.where(HOLDS[cond], x * np.float32(2), x)), cond


@qpu
def both_pipes_different_conditions(asm):
    mov(r0, vpm)
    ldi(r3, [0] * 8 + [1] * 8)
    mov(r1, r0)
    mov(r2, r0)
    isub(null, r3, 1, set_flags=True)                    # Z in 8..15, N and C in 0..7
    iadd(r1, r1, 1, cond="zs", set_flags=False).v8adds(r2, r2, 1, cond="ns")
    mov(vpm, r1)
    mov(vpm, r2)


def test_each_pipe_has_its_own_condition(drv):
    x = RNG.integers(0, 2**31, 16, dtype=np.uint64).astype(np.uint32) & np.uint32(0xFEFEFEFE)
    y = run_io(drv, both_pipes_different_conditions, x, 2)
    assert np.array_equal(y[0], np.where(HALF == 1, x + np.uint32(1), x))
    # the small immediate 1 is the word 0x00000001: v8adds adds 1 to byte 0 only (no byte saturates)
    assert np.array_equal(y[1], np.where(HALF == 0, x + np.uint32(1), x))


# ------------------------------------------------------------------------- flag probes

@qpu
def flag_probe(asm, op, unary):
    """Set flags with `op` on the two input rows, then write Z, N, C as 0/1 rows."""
    mov(r0, vpm)
    mov(r1, vpm)
    if unary:
        getattr(asm, op)(null, r0, set_flags=True)
    else:
        getattr(asm, op)(null, r0, r1, set_flags=True)
    for cond in ("zs", "ns", "cs"):
        mov(r2, 0)
        mov(r2, 1, cond=cond)
        mov(vpm, r2)


def probe(drv, op, a, b=None):
    unary = b is None
    b = np.zeros_like(a) if unary else b
    y = run_io(drv, flag_probe, np.stack([a.view(np.uint32), b.view(np.uint32)]), 3, op, unary)
    return y[0] == 1, y[1] == 1, y[2] == 1


def zn(result_u32):
    r = np.asarray(result_u32, dtype=np.uint32)
    return r == 0, (r >> 31) == 1


def words(values):
    return np.array([v & 0xFFFFFFFF for v in values], dtype=np.uint64).astype(np.uint32)


A_INT = words([0xFFFFFFFF, 0x7FFFFFFF, 0, 5, 0x80000000, 3, 1, 0xFFFFFFF0,
               0x12345678, 0x80000001, 7, 0x40000000, 9, 0xFFFFFFFF, 2, 0])
B_INT = words([1, 1, 0, 5, 0x80000000, 0xFFFFFFFD, 2, 0x10,
               0x12345678, 1, 9, 0x40000000, 3, 0xFFFFFFFF, 33, 31])


def test_flags_of_iadd_carry_out(drv):
    z, n, c = probe(drv, "iadd", A_INT, B_INT)
    total = A_INT.astype(np.uint64) + B_INT
    ez, en = zn((total & 0xFFFFFFFF).astype(np.uint32))
    assert np.array_equal(z, ez) and np.array_equal(n, en)
    assert np.array_equal(c, total > 0xFFFFFFFF)


def test_flags_of_isub_borrow(drv):
    z, n, c = probe(drv, "isub", A_INT, B_INT)
    ez, en = zn(A_INT - B_INT)
    assert np.array_equal(z, ez) and np.array_equal(n, en)
    assert np.array_equal(c, A_INT < B_INT)


def test_flags_of_imin_imax_carry_is_a_greater_than_b_signed(drv):
    sa, sb = A_INT.view(np.int32), B_INT.view(np.int32)
    for op, ref in (("imin", np.minimum), ("imax", np.maximum)):
        z, n, c = probe(drv, op, A_INT, B_INT)
        ez, en = zn(ref(sa, sb).view(np.uint32))
        assert np.array_equal(z, ez) and np.array_equal(n, en), op
        assert np.array_equal(c, sa > sb), op


def _last_bit_out_right(a, s):
    return np.array([(int(x) >> (int(k) - 1)) & 1 == 1 if k else False for x, k in zip(a, s)])


def test_flags_of_shifts(drv):
    a = A_INT.copy()
    b = words([1, 4, 0, 31, 1, 32, 33, 5, 12, 31, 3, 30, 1, 16, 2, 7])
    s = b & 31
    z, n, c = probe(drv, "shr", a, b)
    ez, en = zn(a >> s)
    assert np.array_equal(z, ez) and np.array_equal(n, en)
    assert np.array_equal(c, _last_bit_out_right(a, s))
    z, n, c = probe(drv, "asr", a, b)
    ez, en = zn((a.view(np.int32) >> s.astype(np.int32)).view(np.uint32))
    assert np.array_equal(z, ez) and np.array_equal(n, en)
    assert np.array_equal(c, _last_bit_out_right(a, s))
    z, n, c = probe(drv, "shl", a, b)
    shifted = a.astype(np.uint64) << s.astype(np.uint64)
    ez, en = zn((shifted & 0xFFFFFFFF).astype(np.uint32))
    assert np.array_equal(z, ez) and np.array_equal(n, en)
    assert np.array_equal(c, (shifted >> 32) & 1 == 1)


def _v8(op, a, b):
    x = a.view(np.uint8).astype(np.int32)
    y = b.view(np.uint8).astype(np.int32)
    return np.clip(x + y if op == "v8adds" else x - y, 0, 255).astype(np.uint8).view(np.uint32)


@pytest.mark.parametrize("op", ["band", "bor", "bxor", "ror", "v8adds", "v8subs"])
def test_flags_of_bitwise_and_v8_ops_clear_carry(drv, op):
    z, n, c = probe(drv, op, A_INT, B_INT)
    if op.startswith("v8"):
        result = _v8(op, A_INT, B_INT)
    elif op == "ror":
        s = B_INT & 31
        result = np.array([((int(x) >> int(k)) | (int(x) << (32 - int(k)))) & 0xFFFFFFFF if k else int(x)
                           for x, k in zip(A_INT, s)], dtype=np.uint32)
    else:
        result = {"band": A_INT & B_INT, "bor": A_INT | B_INT, "bxor": A_INT ^ B_INT}[op]
    ez, en = zn(result)
    assert np.array_equal(z, ez) and np.array_equal(n, en)
    assert not c.any()


@pytest.mark.parametrize("op", ["bnot", "clz"])
def test_flags_of_unary_integer_ops(drv, op):
    z, n, c = probe(drv, op, A_INT)
    result = ~A_INT if op == "bnot" else np.array([32 - int(x).bit_length() for x in A_INT], np.uint32)
    ez, en = zn(result)
    assert np.array_equal(z, ez) and np.array_equal(n, en)
    assert not c.any()


F_A = np.array([1.0, -1.0, 2.5, -2.5, 0.0, 3.0, -3.0, 1e-3, 5.0, -5.0, 7.0, 0.5, -0.5, 100.0, 1.0, 2.0],
               np.float32)
F_B = np.array([-1.0, 1.0, -3.5, 3.5, 0.0, 1.0, 1.0, 2e-3, -5.0, -5.0, -8.0, 0.25, 0.25, -1.0, 2.0, -2.0],
               np.float32)


def test_flags_of_fadd_fsub_carry_is_result_positive(drv):
    for op, exact in (("fadd", F_A.astype(np.float64) + F_B), ("fsub", F_A.astype(np.float64) - F_B)):
        z, n, c = probe(drv, op, F_A, F_B)
        result = f32_round_toward_zero(exact)
        assert np.array_equal(z, result == 0), op
        assert np.array_equal(n, result < 0), op
        assert np.array_equal(c, result > 0), op


def test_flags_of_fmin_fmax_fminabs_fmaxabs(drv):
    for op, ref, greater in (("fmin", np.minimum, F_A > F_B), ("fmax", np.maximum, F_A > F_B),
                             ("fminabs", None, np.abs(F_A) > np.abs(F_B)),
                             ("fmaxabs", None, np.abs(F_A) > np.abs(F_B))):
        z, n, c = probe(drv, op, F_A, F_B)
        if ref is None:
            result = (np.minimum if op == "fminabs" else np.maximum)(np.abs(F_A), np.abs(F_B))
        else:
            result = ref(F_A, F_B)
        assert np.array_equal(z, result == 0), op
        assert np.array_equal(n, result < 0), op
        assert np.array_equal(c, greater), op


def test_flags_of_ftoi(drv):
    f = np.array([0.5, -0.5, -1.5, 2.7, -2.7, 0.0, 1e6, -1e6, 3.0, -3.0, 0.9, -0.9, 42.0, 7.5, -7.5, 1.0],
                 np.float32)
    z, n, c = probe(drv, "ftoi", f)
    result = np.trunc(f).astype(np.int32)
    assert np.array_equal(z, result == 0) and np.array_equal(n, result < 0)
    assert not c.any()


@qpu
def mul_pipe_flags(asm):
    mov(r0, vpm)
    mov(r1, vpm)
    fmul(null, r0, r1, set_flags=True)     # add pipe does nop: the mul result sets the flags
    for cond in ("zs", "ns", "cs"):
        mov(r2, 0)
        mov(r2, 1, cond=cond)
        mov(vpm, r2)


def test_mul_pipe_sets_flags_when_add_pipe_does_nop(drv):
    y = run_io(drv, mul_pipe_flags, np.stack([F_A, F_B]), 3)
    product = F_A * F_B
    assert np.array_equal(y[0] == 1, product == 0)
    assert np.array_equal(y[1] == 1, product < 0)
    assert not (y[2] == 1).any()       # fmul leaves C clear


@qpu
def flags_persist(asm):
    mov(r0, vpm)
    isub(null, r0, 1, set_flags=True)      # Z where r0 == 1
    iadd(r1, r0, r0, set_flags=False)      # must not change the flags
    mov(r2, 7)                             # mov never sets flags
    ldi(r3, 0)                             # ldi without set_flags neither
    mov(r2, 0, cond="zs")
    mov(vpm, r2)


def test_flags_persist_until_an_instruction_sets_them(drv):
    x = np.array([1, 2] * 8, dtype=np.uint32)
    y = run_io(drv, flags_persist, x, 1)
    assert np.array_equal(y[0], np.where(x == 1, 0, 7))


@qpu
def ldi_sets_flags(asm, mask):
    ldi(null, mask, set_flags=True)        # the per-element mask idiom of py-videocore's sgemm
    mov(r2, 5)
    mov(r2, 9, cond="zs")
    mov(vpm, r2)


def test_load_immediate_sets_flags_from_its_value(drv):
    mask = [1] * 16
    mask[3] = 0
    mask[12] = 0
    y = run_io(drv, ldi_sets_flags, None, 1, mask)
    assert np.array_equal(y[0], np.where(np.array(mask) == 0, 9, 5))


@qpu
def conditional_flag_update(asm):
    mov(r0, vpm)
    ldi(r3, [0] * 8 + [1] * 8)
    isub(null, r3, 1, set_flags=True)             # Z in elements 8..15
    iadd(null, r0, 0, cond="zc", set_flags=True)  # non-zero result; flags only where zc (0..7)
    mov(r2, 0)
    mov(r2, 1, cond="zs")
    mov(vpm, r2)


def test_flags_update_only_where_the_condition_holds(drv):
    """vc4asm and VC4C: set_flags updates only the elements whose write condition is true. The
    second op has a non-zero result everywhere but writes only in elements 0..7 (Z clear there),
    so elements 8..15 keep the Z of the first op."""
    y = run_io(drv, conditional_flag_update, np.arange(16, dtype=np.uint32) + 1, 1)
    assert np.array_equal(y[0], HALF)
