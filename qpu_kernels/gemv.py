"""Matrix-vector product on the QPUs: y[N] = act(x[K] @ W[K, N] + bias[N]), the classifier over
one feature vector (M = 1), where the SGEMM would use one of its 16 rows and read every weight
through the uniform stream at one word per instruction.

SIMD element e computes output n0 + e of a 16-output block. The block's weights are packed as K
rows of 16 floats (64 bytes: one cache line each) followed by its bias row; one TMU request per
k fetches a row (four in flight), while the uniform stream runs through x itself (the stream's
address is x's): `fmul(r0, r4, uniform)` multiplies W[k, block] by x[k] and the next
instruction's `fadd` accumulates. Every weight is read exactly once, so the layer runs at the
speed SDRAM delivers the weights. Blocks are dealt to the QPUs round-robin; each instance writes
a block's results into its own VPM row and stores the valid outputs with one DMA (no locks).
"""
from __future__ import annotations

import functools
import math
from typing import List, Optional

import numpy as np

from vc4infer.qpu import isa, qpu
from vc4infer.qpu.macros import vpm_write_setup_word

from . import launch as launching
from .launch import KernelShapeError, Launch

ACTIVATIONS = (None, "relu", "relu6")
LANES = isa.SIMD_WIDTH
#: weight rows in flight through the TMU (the depth that is reliable on hardware, spec section 11)
DEPTH = 4
#: k-steps per pass of the main loop (the loop's branch costs 4 instructions)
UNROLL = 8
HEADER_WORDS = 8
RECORD_WORDS = 4
#: bytes of one packed weight row (16 floats, one TMU cache line)
ROW_BYTES = 4 * LANES


@qpu
def gemv_kernel(asm, act: Optional[str]):
    """Uniforms: header (first record address, block count, instance index, instance count,
    x address, (K - DEPTH) // UNROLL, (K - DEPTH) % UNROLL, VPM write setup of the instance's
    row), then per block: its packed weights address, VDW setup, VDW stride setup, y address."""
    acc, resume = r3, ra5                           # an accumulator: read right after each write
    rec_ptr, blocks, thread, n_threads = ra1, ra2, ra3, ra4
    x_addr, kloops, krem, vpm_setup, row_step, rec_bytes, six = rb0, rb1, rb2, rb3, rb4, rb5, rb6

    mov(rec_ptr, uniform)
    mov(blocks, uniform)
    mov(thread, uniform)
    mov(n_threads, uniform)
    mov(x_addr, uniform)
    mov(kloops, uniform)
    mov(krem, uniform)
    mov(vpm_setup, uniform)
    ldi(row_step, ROW_BYTES)
    ldi(rec_bytes, 4 * RECORD_WORDS)
    if act == "relu6":
        ldi(six, 6.0)

    def step():
        """One k-step: request row k + DEPTH, accumulate x[k-1]'s product, form x[k]'s."""
        iadd(r1, r1, row_step, set_flags=False).mov(tmu0_s, r1)
        fadd(acc, acc, r0, set_flags=False).fmul(r0, r4, uniform, sig="load tmu0")

    L.block_loop
    mov(null, blocks, set_flags=True)
    jzs(L.blocks_done)
    mov(uniforms_address, rec_ptr)                   # delay slots: this block's record
    iadd(resume, rec_ptr, 4, set_flags=False)        # where the record continues after the weights
    iadd(rec_ptr, rec_ptr, rec_bytes, set_flags=False)
    mov(acc, 0.0)
    shl(r2, element_number, 2)                       # element e's byte offset in a row
    nop()                                            # the record streams 3 instructions on
    mov(r1, uniform)                                 # the block's packed weights
    iadd(r1, r1, r2, set_flags=False)                # r1[e] = &W[0, n0 + e]
    for _ in range(DEPTH):                           # request rows 0 .. DEPTH-1
        iadd(r1, r1, row_step, set_flags=False).mov(tmu0_s, r1)
    mov(uniforms_address, x_addr)                    # from here the stream is x
    mov(r2, kloops, set_flags=True)
    mov(r0, 0.0)                                     # the first fadd adds nothing
    nop(sig="load tmu0")                             # r4 = row 0
    jzs(L.remainder)
    nop()
    nop()
    nop()
    L.k_loop                                         # UNROLL steps per pass
    for _ in range(UNROLL):
        step()
    isub(r2, r2, 1, set_flags=True)
    jzc(L.k_loop)
    nop()
    nop()
    nop()
    L.remainder
    mov(r2, krem, set_flags=True)
    jzs(L.tail)
    nop()
    nop()
    nop()
    L.r_loop
    step()
    isub(r2, r2, 1, set_flags=True)
    jzc(L.r_loop)
    nop()
    nop()
    nop()
    L.tail                                           # rows K-DEPTH .. K-1 are in flight
    mov(tmu0_s, r1)                                  # the bias row (r1 points past row K-1)
    for _ in range(DEPTH):
        fadd(acc, acc, r0, set_flags=False).fmul(r0, r4, uniform, sig="load tmu0")
    fadd(acc, acc, r0, set_flags=False)              # + x[K-1]'s product
    mov(uniforms_address, resume)                    # the record's store words
    fadd(acc, acc, r4, set_flags=False)              # + bias (the last load)
    if act in ("relu", "relu6"):
        fmax(acc, acc, 0.0, set_flags=False)
    if act == "relu6":
        fmin(acc, acc, six, set_flags=False)
    wait_dma_store()                                 # the previous block has left the VPM row
    mov(vpmvcd_wr_setup, vpm_setup)
    mov(vpm, acc)
    mov(vpmvcd_wr_setup, uniform)                    # VDW setup: 1 row x the valid outputs
    mov(vpmvcd_wr_setup, uniform)                    # VDW stride setup
    mov(vpm_st_addr, uniform)                        # y + 4 * n0: the DMA starts
    jmp(L.block_loop)
    isub(blocks, blocks, 1, set_flags=False)
    nop()
    nop()
    L.blocks_done
    wait_dma_store()
    launching.emit_join_and_exit(asm, thread, n_threads)


def pack_weights(w: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """W (K x N) and bias (N) in the kernel's layout: per 16-output block, K rows of 16 floats
    then the bias row (zero past N). float32, 1-D; upload once."""
    w = np.asarray(w, np.float32)
    if w.ndim != 2 or w.shape[0] < DEPTH:
        raise KernelShapeError(f"W of shape {w.shape}: give K x N with K >= {DEPTH}")
    k, n = w.shape
    bias = np.zeros(n, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(-1)
    if bias.shape != (n,):
        raise KernelShapeError(f"bias of {bias.size} values for N = {n} outputs")
    blocks = math.ceil(n / LANES)
    table = np.zeros((k + 1, blocks * LANES), np.float32)
    table[:k, :n] = w
    table[k, :n] = bias
    return np.ascontiguousarray(table.reshape(k + 1, blocks, LANES).transpose(1, 0, 2)).reshape(-1)


def _block_record(weights_address: int, k: int, n: int, y_address: int, b: int,
                  vpm_y: int) -> List[int]:
    cols = min(LANES, n - LANES * b)
    return [weights_address + b * (k + 1) * ROW_BYTES, launching.vdw_store_setup(1, cols, vpm_y),
            launching.vdw_stride_setup(0), y_address + 4 * LANES * b]


def build(drv, k: int, n: int, x_address: int, weights_address: int, y_address: int,
          act: Optional[str] = None) -> List[Launch]:
    """Launches of y = act(x @ W + bias) for K floats at `x_address` (contiguous), the packed
    weights at `weights_address` (`pack_weights`) and N floats at `y_address`."""
    if act not in ACTIVATIONS:
        raise KernelShapeError(f"act={act!r}: the epilogue supports {ACTIVATIONS}")
    if k < DEPTH or n < 1:
        raise KernelShapeError(f"K={k}, N={n}: the kernel needs K >= {DEPTH} and N >= 1")
    program = launching.cached_program(drv, gemv_kernel, act)
    blocks = math.ceil(n / LANES)
    cycles = [4.0 * (2 * k + 30) + 100] * blocks
    rows_per_launch = []
    for instances in launching.split_items(cycles, launching.launch_budget_cycles(drv)):
        rows = []
        for t, items in enumerate(instances):
            record = functools.partial(_block_record, weights_address, k, n, y_address, vpm_y=t)
            header = [0, len(items), t, len(instances), x_address, (k - DEPTH) // UNROLL,
                      (k - DEPTH) % UNROLL, vpm_write_setup_word(Y=t)]
            rows.append(header + [w for b in items for w in record(b)])
        rows_per_launch.append(rows)
    return launching.launch_rows(drv, program, rows_per_launch, record_pointer_words=HEADER_WORDS)
