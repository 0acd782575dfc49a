"""The special function unit: recip, recipsqrt, exp2, log2 (guide p.23), result in r4 three
instructions after the write, special values and precision.

Tolerances are the hardware's as py-videocore measured them (tests/test_sfu.py): rtol 1e-4 for
recip, recipsqrt and exp2, 1e-2 for log2 (the spec digest, sections 6.1 and 14.3); special values
from py-videocore's APPENDIX and hardware tests: 1/0 = +Inf, 1/sqrt(0) = +Inf, recipsqrt and log2
use |x|, log2(0) = -Inf.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from guide_support import run_io
from vc4infer.qpu import REGISTERS, qpu

RNG = np.random.default_rng(11)
UNITS = ["sfu_recip", "sfu_recipsqrt", "sfu_exp2", "sfu_log2"]


@qpu
def sfu_all(asm, rows):
    for _ in range(rows):
        mov(r0, vpm)
        for unit in UNITS:
            mov(REGISTERS[unit], r0)    # write the SFU register at N ...
            nop()
            nop()
            mov(vpm, r4)                # ... read r4 at N + 3


def run_sfu(drv, x):
    x = np.atleast_2d(np.asarray(x, np.float32))
    y = run_io(drv, sfu_all, x, 4 * x.shape[0], x.shape[0], dtype="float32")
    return [y[u::4].reshape(-1) for u in range(4)]


def test_sfu_functions_on_unit_interval(drv):
    x = RNG.uniform(0.01, 1.0, 16).astype(np.float32)
    recip, rsqrt, exp2, log2 = run_sfu(drv, x)
    x64 = x.astype(np.float64)
    assert np.allclose(recip, 1 / x64, rtol=1e-4, atol=0)
    assert np.allclose(rsqrt, 1 / np.sqrt(x64), rtol=1e-4, atol=0)
    assert np.allclose(exp2, np.exp2(x64), rtol=1e-4, atol=0)
    assert np.allclose(log2, np.log2(x64), rtol=1e-2, atol=0)


@pytest.mark.slow
def test_sfu_functions_over_wide_ranges(drv):
    x = np.concatenate([RNG.uniform(1e-3, 1.0, 48), RNG.uniform(1.0, 1e4, 48),
                        -RNG.uniform(1e-3, 1e3, 32)]).astype(np.float32).reshape(8, 16)
    recip, rsqrt, exp2, log2 = run_sfu(drv, x)
    x64 = x.reshape(-1).astype(np.float64)
    assert np.allclose(recip, 1 / x64, rtol=1e-4, atol=0)
    assert np.allclose(rsqrt, 1 / np.sqrt(np.abs(x64)), rtol=1e-4, atol=0)
    small = np.abs(x64) < 100                       # 2^x stays a normal float32
    assert np.allclose(exp2[small], np.exp2(x64[small]), rtol=1e-4, atol=0)
    away_from_one = np.abs(np.abs(x64) - 1) > 0.1  # log2 near 1 is tiny: the rtol is meaningless
    assert np.allclose(log2[away_from_one], np.log2(np.abs(x64[away_from_one])), rtol=1e-2, atol=0)


def test_sfu_special_values(drv):
    x = np.array([0.0, -4.0, -0.25, 4.0, 1.0, 2.0, -1.0, 0.5, 16.0, -16.0, 0.0, 1.0, 3.0, 8.0, 0.125, -2.0],
                 np.float32)
    recip, rsqrt, exp2, log2 = run_sfu(drv, x)
    assert recip[0] == np.inf and rsqrt[0] == np.inf and log2[0] == -np.inf
    x64 = x.astype(np.float64)
    nz = x64 != 0
    assert np.allclose(rsqrt[nz], 1 / np.sqrt(np.abs(x64[nz])), rtol=1e-4, atol=0)   # |x| for x < 0
    assert np.allclose(recip[nz], 1 / x64[nz], rtol=1e-4, atol=0)                    # sign kept
    exact_logs = np.isin(np.abs(x64), [0.125, 0.25, 0.5, 2, 4, 8, 16])      # log2 far from 0
    assert np.allclose(log2[exact_logs], np.log2(np.abs(x64[exact_logs])), rtol=1e-2, atol=0)
    assert np.allclose(exp2, np.exp2(x64), rtol=1e-4, atol=0)                        # 2^-16 .. 2^16


@qpu
def sfu_back_to_back(asm):
    mov(r0, vpm)
    mov(sfu_recip, r0)
    nop()
    nop()
    fmul(r1, r4, r0)            # x * (1/x): r4 is the recip result here
    mov(sfu_exp2, r0)
    nop()
    nop()
    mov(vpm, r1)
    mov(vpm, r4)


def test_sfu_results_arrive_three_instructions_after_the_write(drv):
    x = RNG.uniform(0.5, 2.0, 16).astype(np.float32)
    y = run_io(drv, sfu_back_to_back, x, 2, dtype="float32")
    assert np.allclose(y[0], 1.0, rtol=2e-4, atol=0)
    assert np.allclose(y[1], np.exp2(x.astype(np.float64)), rtol=1e-4, atol=0)
