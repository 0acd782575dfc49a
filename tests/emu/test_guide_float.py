"""Floating-point ALU ops: fadd, fsub, fmul, fmin, fmax, fminabs, fmaxabs, ftoi, itof.

Expected values: numpy for the exact ops (min/max, truncation); for the rounding ops the rule the
spec digest gathers (section 3.4): fadd/fsub/itof round toward zero and denormals are flushed to
zero on input and output (VC4C "FlushDenormsAndRoundToZero", VC4CL advertises round-to-zero,
vc4asm: denormals "are just truncated to 0"). Inputs are built so that round-to-nearest (numpy)
and round-toward-zero give different answers, so the test can tell them apart.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np

from guide_support import bits_f32, f32_bits, f32_round_toward_zero, run_io
from vc4infer.qpu import qpu

RNG = np.random.default_rng(7)
ULP_1 = 2.0 ** -23                   # float32 unit in the last place at 1.0


def random_floats(n=16, max_exp=10):
    """Values +-[1,2)*2^k with |k| <= max_exp: float64 sums of two of them are exact."""
    mant = RNG.uniform(1.0, 2.0, n)
    exp = RNG.integers(-max_exp, max_exp + 1, n)
    sign = RNG.choice([-1.0, 1.0], n)
    return (sign * mant * 2.0 ** exp).astype(np.float32)


@qpu
def float_binary(asm, ops):
    mov(r0, vpm)
    mov(r1, vpm)
    for op in ops:
        getattr(asm, op)(r2, r0, r1)
        mov(vpm, r2)


def test_fadd_fsub_round_toward_zero_on_random_inputs(drv):
    a, b = random_floats(), random_floats()
    y = run_io(drv, float_binary, np.stack([a, b]), 2, ["fadd", "fsub"], dtype="float32")
    exact_sum = a.astype(np.float64) + b
    exact_diff = a.astype(np.float64) - b
    assert np.array_equal(y[0], f32_round_toward_zero(exact_sum))
    assert np.array_equal(y[1], f32_round_toward_zero(exact_diff))


def test_fadd_fsub_where_round_to_nearest_differs():
    """Documents the constructed inputs (no QPU): numpy rounds them away from the RTZ answer."""
    a = np.float32(1.0)
    b = np.float32(0.75 * ULP_1)
    assert a + b == np.float32(1.0 + ULP_1)          # numpy: round to nearest
    assert f32_round_toward_zero(np.float64(a) + np.float64(b)) == np.float32(1.0)


def test_fadd_fsub_constructed_rounding_cases(drv):
    a = np.ones(16, np.float32)
    b = np.full(16, 0.75 * ULP_1, np.float32)
    a[1], b[1] = -1.0, -0.75 * ULP_1                 # -1 - 0.75 ulp: toward zero is -1
    a[2], b[2] = 3.0, 1.4 * ULP_1                    # 3 + 1.4 ulp(1) = 3 + 0.7 ulp(3)
    a[3], b[3] = 1.0, -0.3 * ULP_1                   # 1 - 0.3 ulp: below 1, toward zero 1 - ulp/2
    a[4], b[4] = 1e8, 7.5                            # ulp(1e8) = 8
    y = run_io(drv, float_binary, np.stack([a, b]), 2, ["fadd", "fsub"], dtype="float32")
    assert y[0][0] == np.float32(1.0) and y[0][1] == np.float32(-1.0) and y[0][2] == np.float32(3.0)
    assert y[0][3] == np.nextafter(np.float32(1.0), np.float32(0))
    assert y[0][4] == np.float32(1e8)
    assert y[1][0] == np.float32(1.0 - 2.0 ** -23)    # 1 - 1.5 ulp(below 1): toward zero is 1 - 2 ulp
    assert np.array_equal(y[0], f32_round_toward_zero(a.astype(np.float64) + b))
    assert np.array_equal(y[1], f32_round_toward_zero(a.astype(np.float64) - b))


def test_fmul_within_one_ulp(drv):
    a, b = random_floats(max_exp=20), random_floats(max_exp=20)
    y = run_io(drv, float_binary, np.stack([a, b]), 1, ["fmul"], dtype="float32")
    exact = a.astype(np.float64) * b
    assert np.all(np.abs(y[0] - exact) <= np.abs(exact) * 2.0 ** -23)


def test_fmin_fmax_fminabs_fmaxabs_exact(drv):
    a = RNG.standard_normal(16).astype(np.float32)
    b = RNG.standard_normal(16).astype(np.float32)
    a[:3], b[:3] = [-3.0, 2.0, -1.0], [2.0, -3.0, 1.0]
    y = run_io(drv, float_binary, np.stack([a, b]), 4, ["fmin", "fmax", "fminabs", "fmaxabs"],
               dtype="float32")
    assert np.array_equal(y[0], np.minimum(a, b))
    assert np.array_equal(y[1], np.maximum(a, b))
    assert np.array_equal(y[2], np.minimum(np.abs(a), np.abs(b)))
    assert np.array_equal(y[3], np.maximum(np.abs(a), np.abs(b)))
    assert y[2][0] == 2.0 and y[3][0] == 3.0    # results are absolute values


def test_denormals_are_flushed_on_input_and_output(drv):
    denorm = np.float32(np.finfo(np.float32).tiny / 4)     # a float32 subnormal
    a = np.ones(16, np.float32)
    b = np.ones(16, np.float32)
    a[0], b[0] = denorm, 0.0          # denormal input: read as 0
    a[1], b[1] = denorm, denorm       # numpy: 2*denorm; flushed: 0
    a[2], b[2] = 1.5e-38, -1.4e-38    # normal inputs, subnormal sum 1e-39 -> 0
    a[3], b[3] = 1e-20, 1e-20         # fmul: 1e-40 is subnormal -> 0
    a[4], b[4] = denorm, 1e30         # fmul: denormal input read as 0 -> 0 (numpy: ~3e-9)
    y = run_io(drv, float_binary, np.stack([a, b]), 2, ["fadd", "fmul"], dtype="float32")
    assert y[0][0] == 0 and y[0][1] == 0 and y[0][2] == 0
    assert y[1][3] == 0 and y[1][4] == 0
    assert (a[1] + b[1]) != 0 and (a[4] * b[4]) != 0          # numpy keeps subnormals


@qpu
def convert_ops(asm):
    mov(r0, vpm)
    mov(r1, vpm)
    ftoi(r2, r0, set_flags=False)
    mov(vpm, r2)
    itof(r3, r1, set_flags=False)
    mov(vpm, r3)


def test_ftoi_truncates_toward_zero(drv):
    f = np.array([-2.5, -1.7, -0.5, 0.5, 1.999, 2.5, 1e9, -1e9, 2147483520.0, -2147483648.0,
                  123.456, -0.0, 0.0, 7.0, -7.99, 65536.5], np.float32)
    i = np.arange(16, dtype=np.int32)
    y = run_io(drv, convert_ops, np.stack([f.view(np.uint32), i.view(np.uint32)]), 2)
    assert np.array_equal(y[0].view(np.int32), np.trunc(f).astype(np.int32))


def test_itof_small_integers_exact(drv):
    i = RNG.integers(-(2**24), 2**24, 16).astype(np.int32)
    i[:3] = [0, -1, 2**24]
    f = np.zeros(16, np.float32)
    y = run_io(drv, convert_ops, np.stack([f.view(np.uint32), i.view(np.uint32)]), 2)
    assert np.array_equal(y[1].view(np.float32), i.astype(np.float32))


def test_itof_rounds_large_integers_toward_zero(drv):
    """|i| > 2^24 is not representable; the spec (3.4, VC4C) says itof rounds toward zero."""
    i = np.array([2**24 + 3, -(2**24 + 3), 2**31 - 1, -(2**31), 2**30 + 127, 16777217,
                  2**25 + 5, -(2**25 + 5)] * 2, dtype=np.int64).astype(np.int32)
    f = np.zeros(16, np.float32)
    y = run_io(drv, convert_ops, np.stack([f.view(np.uint32), i.view(np.uint32)]), 2)
    expected = f32_round_toward_zero(i.astype(np.float64))
    assert np.array_equal(y[1].view(np.float32), expected)
    assert y[1].view(np.float32)[0] == 2**24 + 2            # numpy would give 2^24 + 4
    assert y[1].view(np.float32)[2] == 2147483520.0          # numpy would give 2^31


def test_float_bits_helpers_agree():
    x = np.array([1.5, -2.0], np.float32)
    assert np.array_equal(bits_f32(f32_bits(x)), x)
