"""Shared pieces of the guide-derived QPU suites (tests/emu/test_guide_*.py).

The suites are written the way py-videocore users write their hardware tests: a small kernel body
is wrapped in a boilerplate that DMA-loads test vectors into the VPM, runs the body (which reads
its inputs with `mov(rX, vpm)` and writes results with `mov(vpm, rX)`), and DMA-stores the result
rows back. Expected values always come from the reference guide and numpy, never from a run.

Kernels must be module-level functions: the @qpu decorator recompiles them with the register and
instruction names in scope, so they cannot close over local variables; pass values as arguments.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
from __future__ import annotations

import struct
from typing import Any

import numpy as np

from vc4infer.qpu import qpu

#: input vectors are DMA-loaded to VPM rows 48..63; results are written from row 0 (48 rows at most)
VPM_IN_ROW = 48
MAX_IN_ROWS = 16
MAX_OUT_ROWS = 48


@qpu
def io_kernel(asm, body, n_in, n_out, *body_args):
    """uniforms: [input address, output address]. Loads `n_in` rows of 16 words to VPM row 48,
    sets up a VPM read of them and a horizontal 32-bit VPM write from row 0, runs `body`, then
    stores `n_out` rows from VPM row 0 to the output."""
    if n_in:
        setup_dma_load(nrows=n_in, Y=VPM_IN_ROW)
        start_dma_load(uniform)
        wait_dma_load()
        setup_vpm_read(nrows=n_in, Y=VPM_IN_ROW)
    else:
        mov(null, uniform)
    setup_vpm_write()
    body(asm, *body_args)
    setup_dma_store(nrows=n_out)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


@qpu
def store_kernel(asm, body, n_out, *body_args):
    """uniforms: [output address]. Runs `body` with a horizontal 32-bit VPM write set up at row 0,
    then stores `n_out` rows."""
    setup_vpm_write()
    body(asm, *body_args)
    setup_dma_store(nrows=n_out)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def run_io(drv, body, inputs: Any, n_out: int, *body_args, dtype="uint32") -> np.ndarray:
    """Run `body` inside io_kernel on one QPU. `inputs` is any array whose bytes form whole
    64-byte rows (or None); returns the `n_out` result rows viewed as `dtype`."""
    assert 1 <= n_out <= MAX_OUT_ROWS
    if inputs is None:
        n_in = 0
        src = drv.alloc((1, 16), "uint32")
    else:
        x = np.ascontiguousarray(inputs)
        assert x.nbytes % 64 == 0 and x.nbytes // 64 <= MAX_IN_ROWS, "inputs must be 1-16 rows of 64 bytes"
        n_in = x.nbytes // 64
        src = drv.copy(x.view(np.uint32).reshape(n_in, 16))
    out = drv.alloc((n_out, 16), "uint32")
    out[:] = 0
    drv.execute(n_threads=1, program=drv.program(io_kernel, body, n_in, n_out, *body_args),
                uniforms=[src.address, out.address])
    return np.array(out).view(dtype)


def run_store(drv, body, n_out: int, *body_args, dtype="uint32") -> np.ndarray:
    """Run `body` inside store_kernel on one QPU and return the `n_out` rows it wrote."""
    out = drv.alloc((n_out, 16), "uint32")
    out[:] = 0
    drv.execute(n_threads=1, program=drv.program(store_kernel, body, n_out, *body_args),
                uniforms=[out.address])
    return np.array(out).view(dtype)


def f32_bits(values) -> np.ndarray:
    """float32 values -> their uint32 bit patterns."""
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def bits_f32(values) -> np.ndarray:
    """uint32 bit patterns -> float32 values."""
    return np.asarray(values, dtype=np.uint32).view(np.float32)


def f32_round_toward_zero(exact: np.ndarray) -> np.ndarray:
    """float64 values -> the float32 nearest to each in the direction of zero (the rounding the
    guide's ALU uses for fadd/fsub/itof per VC4C/VC4CL), with float32 denormals flushed to +0."""
    exact = np.asarray(exact, dtype=np.float64)
    nearest = exact.astype(np.float32)
    too_far = np.abs(nearest.astype(np.float64)) > np.abs(exact)
    toward_zero = np.where(too_far, np.nextafter(nearest, np.float32(0)), nearest)
    tiny = np.abs(toward_zero) < np.finfo(np.float32).tiny
    return np.where(tiny, np.float32(0), toward_zero).astype(np.float32)


def u32(word: int) -> int:
    """An int (possibly negative) as its 32-bit two's complement pattern."""
    return word & 0xFFFFFFFF


def float_word(x: float) -> int:
    """The 32-bit pattern of float32 x."""
    return struct.unpack("<I", struct.pack("<f", x))[0]
