"""The QPU's float behaviour (spec §3.4): fadd/fsub/itof/fmul round toward zero,
denormals flushed to +0, NaN and Inf as VC4C's hardware tests found them, ftoi truncation and its
out-of-range results, fmin/fmax orderings and their C flags. Expected values: numpy, with rounding
toward zero built from float64 sums (or exact fractions, where a float64 sum is not exact) and
np.nextafter (independent of the emulator's code)."""
from fractions import Fraction

import numpy as np
import pytest

from emu_rig import both_paths, run_body
from vc4infer.qpu import qpu

F32 = np.float32
RNG = np.random.default_rng(5)


@pytest.fixture(autouse=True, params=["strict", "fast"])
def _path(request, monkeypatch):
    both_paths(request, monkeypatch)


def rtz(exact: np.ndarray) -> np.ndarray:
    """float64 values rounded toward zero to float32, denormals flushed to +0."""
    f = exact.astype(np.float32)
    over = np.abs(f.astype(np.float64)) > np.abs(exact)
    f[over] = np.nextafter(f[over], np.float32(0))
    f[np.abs(f) < np.finfo(np.float32).tiny] = 0
    return f


@qpu
def binary(asm, op):
    mov(r0, vpm)
    mov(r1, vpm)
    {"fadd": fadd, "fsub": fsub, "fmin": fmin, "fmax": fmax, "fminabs": fminabs,
     "fmaxabs": fmaxabs, "fmul": fmul}[op](vpm, r0, r1)


def run_binary(op, a, b):
    return run_body(binary, np.stack([a, b]).astype(np.float32), 1, op, dtype=np.float32)[0]


def test_fadd_fsub_round_toward_zero():
    a = (RNG.standard_normal(16) * 10.0 ** RNG.integers(-3, 4, 16)).astype(F32)
    b = (RNG.standard_normal(16) * 10.0 ** RNG.integers(-3, 4, 16)).astype(F32)
    a[0], b[0] = 1.0, 3 * 2.0 ** -25          # nearest would give 1 + 2^-23; toward zero gives 1
    a[1], b[1] = -1.0, -3 * 2.0 ** -25
    got = run_binary("fadd", a, b)
    assert np.array_equal(got, rtz(a.astype(np.float64) + b.astype(np.float64)))
    assert got[0] == 1.0 and got[1] == -1.0
    got = run_binary("fsub", a, b)
    assert np.array_equal(got, rtz(a.astype(np.float64) - b.astype(np.float64)))


def exact_rtz(x, y) -> np.float32:
    """float32 x + y computed exactly (fractions) and rounded toward zero to float32; a denormal
    result is flushed to +0, a magnitude of 2**128 or more gives Inf (the emulator's reading)."""
    exact = Fraction(float(x)) + Fraction(float(y))
    if abs(exact) >= 2 ** 128:
        return F32(np.inf) if exact > 0 else F32(-np.inf)
    f = min(F32(abs(float(exact))), np.finfo(F32).max)
    while Fraction(float(f)) > abs(exact):
        f = np.nextafter(f, F32(0))
    while f < np.finfo(F32).max and Fraction(float(np.nextafter(f, F32(np.inf)))) <= abs(exact):
        f = np.nextafter(f, F32(np.inf))
    if f < np.finfo(F32).tiny:
        return F32(0)
    return f if exact > 0 else -f


def test_fadd_rounds_toward_zero_at_every_exponent_gap():
    """Operands far apart (where a float64 sum is no longer exact): the larger one, one unit
    toward zero when the signs differ, at power-of-two boundaries, at the smallest normal and
    near FLT_MAX; then random pairs over the whole exponent range, against exact fractions."""
    big = np.finfo(F32).max
    pairs = [(1.0, 2.0 ** -30), (1.0, -2.0 ** -30), (1.0, -2.0 ** -60), (1.0, -2.0 ** -100),
             (-3.0, 2.0 ** -90), (2.0 ** 20, -2.0 ** -120), (-1.5, -2.0 ** -80),
             (np.finfo(F32).tiny, -2.0 ** -120), (big, 2.0 ** 90), (big, -2.0 ** 90),
             (2.0 ** 100, -1.0), (-(2.0 ** 127), 2.0 ** 60), (1.0, -(2.0 ** -24) * 1.5),
             (1.0, -(2.0 ** -25)), (1.0 + 2.0 ** -23, -(2.0 ** -40)), (7.0, -2.0 ** -27)]
    a = np.array([p[0] for p in pairs], dtype=F32)
    b = np.array([p[1] for p in pairs], dtype=F32)
    got = run_binary("fadd", a, b)
    want = np.array([exact_rtz(x, y) for x, y in zip(a, b)], dtype=F32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert got[0] == 1.0 and got[1] == np.nextafter(F32(1), F32(0)) and got[3] == got[1]
    for _ in range(4):
        bits = RNG.integers(0, 2 ** 32, (2, 16), dtype=np.uint64).astype(np.uint32)
        exponent = (bits >> 23) & 255
        bits[(exponent == 0) | (exponent == 255)] &= ~np.uint32(0x7F800000)   # zeros, no NaN/Inf
        bits[(exponent == 0) | (exponent == 255)] |= np.uint32(0x3F800000)
        a, b = bits.view(F32)
        for op, sign in (("fadd", 1), ("fsub", -1)):
            got = run_binary(op, a, b)
            want = np.array([exact_rtz(x, sign * y) for x, y in zip(a, b)], dtype=F32)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), op


def test_fmul_rounds_toward_zero():
    """The float64 product of two float32 values is exact; toward zero from it. Random lanes
    differ from numpy's nearest product in about half the cases; two lanes cross the smallest
    normal, where float32 conversion alone would round a truncated product back up to it."""
    a = RNG.standard_normal(16).astype(F32)
    b = RNG.standard_normal(16).astype(F32)
    tiny = np.finfo(np.float32).tiny
    a[0], b[0] = tiny * 2, np.nextafter(F32(0.5), F32(0))       # just below the smallest normal
    a[1], b[1] = -tiny, np.nextafter(F32(1.0), F32(2))          # just above it
    got = run_binary("fmul", a, b)
    want = rtz(a.astype(np.float64) * b.astype(np.float64))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert not np.array_equal(got, a * b)                        # nearest would differ


def test_denormals_are_flushed_to_plus_zero():
    tiny = np.float32(np.finfo(np.float32).tiny)
    a = np.array([tiny / 4, -tiny / 2, tiny, tiny * 1.5] * 4, dtype=F32)
    b = np.array([0.0, 0.0, -tiny / 2, -tiny] * 4, dtype=F32)
    got = run_binary("fadd", a, b)
    assert np.array_equal(got.view(np.uint32)[:4], np.array([0, 0, tiny.view(np.uint32), 0], dtype=np.uint32))
    got = run_binary("fmul", a, np.full(16, 2.0, F32))
    assert got.view(np.uint32)[0] == 0 and got.view(np.uint32)[1] == 0      # -denormal -> +0


def test_nan_and_inf_follow_the_hardware_tests():
    nan, inf = np.float32(np.nan), np.float32(np.inf)
    a = np.array([nan, 1.0, -nan, inf, 0.0, inf, nan, 2.0] * 2, dtype=F32)
    b = np.array([1.0, nan, 1.0, -inf, nan, -2.0, -nan, 3.0] * 2, dtype=F32)
    a[2] = np.uint32(0xFFC00000).view(np.float32)          # -NaN
    b[6] = np.uint32(0xFFC00000).view(np.float32)
    s = run_binary("fadd", a, b)
    assert list(s[:8]) == [inf, inf, -inf, -inf, inf, inf, -inf, 5.0]
    m = run_binary("fmul", a, b)
    assert list(m[:8]) == [inf, inf, -inf, -inf, 0.0, -inf, -inf, 6.0]   # 0 * NaN = 0


def test_min_max_order_like_sign_magnitude_and_abs_variants():
    a = RNG.standard_normal(16).astype(F32)
    b = RNG.standard_normal(16).astype(F32)
    assert np.array_equal(run_binary("fmin", a, b), np.minimum(a, b))
    assert np.array_equal(run_binary("fmax", a, b), np.maximum(a, b))
    assert np.array_equal(run_binary("fminabs", a, b), np.minimum(np.abs(a), np.abs(b)))
    assert np.array_equal(run_binary("fmaxabs", a, b), np.maximum(np.abs(a), np.abs(b)))


@qpu
def conversions(asm):
    mov(r0, vpm)
    mov(r1, vpm)
    ftoi(vpm, r0)
    itof(vpm, r1)


def test_ftoi_truncates_and_itof_rounds_toward_zero():
    f = np.array([2.7, -2.7, 1e10, -1e10, np.nan, np.inf, -np.inf, 0.0,
                  2147483520.0, -2147483648.0, 1.5, -0.5, 3e-39, 100.0, 7.9, -7.9], dtype=F32)
    f[13] = np.finfo(np.float32).max
    i = np.array([16777219, -16777219, 1, -1, 0, 2**31 - 1, -2**31, 123456789] * 2, dtype=np.int32)
    out = run_body(conversions, np.stack([f.view(np.uint32), i.view(np.uint32)]), 2)
    f64 = f.astype(np.float64)
    expected = np.where(np.isfinite(f) & (f64 >= -2.0**31) & (f64 < 2.0**31),
                        np.trunc(np.nan_to_num(f)), 0).astype(np.int64)
    expected[13] = -2**31                                   # FLT_MAX -> INT_MIN
    assert np.array_equal(out[0].view(np.int32), expected.astype(np.int32))
    assert np.array_equal(out[1].view(np.float32), rtz(i.astype(np.float64)))
    assert out[1].view(np.float32)[0] == 16777218.0          # nearest would be 16777220
