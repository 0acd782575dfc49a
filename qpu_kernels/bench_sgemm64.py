"""C = alpha * A . B + beta * C in float32, blocked as py-videocore's published 12-thread SGEMM
example (examples/sgemm.py, 8.32 GFLOPS measured at 250 MHz): the timing model's calibration
case (vc4infer.benchmarks.calibration). Written for this project from that example's design:

- C is cut into tiles of 16 rows x 64 columns; the instances form a grid (2 x 6 for 12) and each
  owns a block of tiles, which it walks row tile by row tile (i), column tile by column tile (j);
- one tile: SIMD element e computes row i0 + e, column j in an accumulator of its own (all 64
  registers of regfiles A and B); for each k the column A[i0:i0+16, k] arrives through TMU0 (the
  next one requested while this one is used) and the row B[k, j0:j0+64] through the uniform
  stream (uniforms_address moved to it every k), `fmul(r0, r4, uniform)` then `fadd`;
- with every register holding a sum, the scalars (pointers, counters, strides) live in the 16
  elements of r2, one each; r3 holds each k-step's increments, so one `iadd(r2, r2, r3)` moves
  the B row pointer and counts k down, and its flags end the loop;
- under the mutex, the tile of C is loaded by four 16x16 DMA loads, combined with the sums in
  the VPM (alpha * sum + beta * C) and stored by four DMA stores.

A carries one spare row: the prefetch after the last k reads one word past A's last row.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
from __future__ import annotations

import struct
from typing import Tuple

import numpy as np

from vc4infer.qpu import isa, qpu

from . import launch as launching

TILE_ROWS = isa.SIMD_WIDTH
TILE_COLS = 64
#: element of r2 holding each scalar; B_ROW must be element 0 (uniforms_address takes element 0)
(B_ROW, K_LEFT, I_LEFT, J_LEFT, A_TILE, C_TILE, C_ROW, B_TILE, B_BLOCK, A_STRIDE, B_STRIDE,
 C_STRIDE, Q, COLS, PARAMS, SPARE) = range(16)
#: uniform words per instance: row address, tile rows, q, tile columns, A, B, C block addresses,
#: A, B, C row strides, then at PARAMS_WORD: alpha, beta, instance index, instance count
HEADER = ("self", "rows", "q", "cols", "a", "b", "c", "a_stride", "b_stride", "c_stride")
PARAMS_WORD = len(HEADER)
UNIFORM_WORDS = PARAMS_WORD + 4


def _acc(j: int, ra, rb):
    """Column j's sum: even columns in regfile A, odd in B (no read right after a write)."""
    return ra[j // 2] if j % 2 == 0 else rb[j // 2]


def _only(element: int) -> list:
    """ldi pattern that leaves Z set in `element` alone (set_flags on a per-element ldi)."""
    return [0 if e == element else 1 for e in range(16)]


@qpu
def sgemm64_kernel(asm):
    acc = [_acc(j, ra, rb) for j in range(TILE_COLS)]

    def scalar(element):
        """r5 = r2[element] in every element (r2 must not have been written just before)."""
        rotate(broadcast, r2, -element)

    def set_scalar(element, src, **kw):
        ldi(null, _only(element), set_flags=True)
        mov(r2, src, cond="zs", **kw)

    # ---- header ----
    mov(r0, uniform)                                   # address of this instance's row
    mov(r2, 1)                                         # unused elements never read as zero
    for element in (I_LEFT, Q, COLS, A_TILE, B_BLOCK, C_ROW, A_STRIDE, B_STRIDE, C_STRIDE):
        set_scalar(element, uniform)
    ldi(r1, 4 * PARAMS_WORD)
    ldi(null, _only(PARAMS), set_flags=True)
    iadd(r2, r0, r1, cond="zs")
    mov(tmu_noswap, 1)
    for j in range(0, TILE_COLS, 2):
        mov(acc[j], 0.0).mov(acc[j + 1], 0.0)

    L.i_loop                                           # a row of tiles: C_ROW, A_TILE set
    nop()
    scalar(COLS)
    set_scalar(J_LEFT, r5)
    nop()
    scalar(C_ROW)
    set_scalar(C_TILE, r5)
    nop()
    scalar(B_BLOCK)
    set_scalar(B_TILE, r5)

    L.j_loop                                           # one tile
    nop()
    scalar(A_STRIDE)
    imul24(r0, element_number, r5)
    scalar(A_TILE)
    iadd(r1, r0, r5)                                   # r1[e] = &A[i0 + e, 0]
    scalar(B_TILE)
    set_scalar(B_ROW, r5)
    nop()
    scalar(Q)
    set_scalar(K_LEFT, r5)
    mov(r3, 0)
    nop()
    scalar(B_STRIDE)
    ldi(null, _only(B_ROW), set_flags=True)
    mov(r3, r5, cond="zs")                             # each k: B_ROW += B stride ...
    ldi(null, _only(K_LEFT), set_flags=True)
    mov(r3, -1, cond="zs")                             # ... and K_LEFT -= 1

    mov(uniforms_address, r2)                          # B[0, j0:j0+64]
    mov(tmu0_s, r1)                                    # A column 0
    iadd(r1, r1, 4)
    nop(sig="load tmu0")                               # r4 = column 0
    iadd(r2, r2, r3).mov(tmu0_s, r1)                   # next B row, k count; request column 1
    iadd(r1, r1, 4).fmul(r0, r4, uniform)
    fadd(acc[0], acc[0], r0).fmul(r0, r4, uniform)
    fadd(acc[1], acc[1], r0).fmul(r0, r4, uniform)
    L.k_loop                                           # pass k; r4 = A column k
    for j in range(2, TILE_COLS - 1):
        fadd(acc[j], acc[j], r0).fmul(r0, r4, uniform)
    fadd(acc[TILE_COLS - 1], acc[TILE_COLS - 1], r0, sig="load tmu0").mov(uniforms_address, r2)
    iadd(r2, r2, r3).mov(tmu0_s, r1)                   # flags: K_LEFT reaching 0 ends the loop
    jzc(L.k_loop)
    iadd(r1, r1, 4).fmul(r0, r4, uniform)              # delay slots: the next k's first steps
    fadd(acc[0], acc[0], r0).fmul(r0, r4, uniform)
    fadd(acc[1], acc[1], r0).fmul(r0, r4, uniform)
    mov(r1, r4, sig="load tmu0")                       # column q-1 kept; drain the request past q
    for j in range(2, TILE_COLS - 1):                  # the rest of the last k
        fadd(acc[j], acc[j], r0).fmul(r0, r1, uniform)
    fadd(acc[TILE_COLS - 1], acc[TILE_COLS - 1], r0)

    # ---- epilogue: C = alpha * sums + beta * C through the VPM, under the mutex ----
    mutex_acquire()
    scalar(C_STRIDE)
    setup_dma_load_stride(r5, tmp_reg=r3)
    scalar(C_STRIDE)
    ldi(r3, 4 * 16)
    isub(broadcast, r5, r3)
    setup_dma_store_stride(r5, tmp_reg=r3)
    scalar(C_TILE)
    mov(r3, r5)                                        # &C[i0, j0]
    for block in range(TILE_COLS // 16):
        setup_dma_load(mode="32bit horizontal", Y=16 * block, X=0, nrows=16, mpitch=0)
        if block == 0:
            mov(vpm_ld_addr, r3)
        else:
            ldi(r0, 64 * block)
            iadd(vpm_ld_addr, r3, r0)
    rotate(r0, r2, -PARAMS)
    mov(uniforms_address, r0)
    wait_dma_load()
    nop()
    mov(r1, uniform)                                   # alpha
    mov(broadcast, uniform)                            # beta
    for block in range(TILE_COLS // 16):
        setup_vpm_read(mode="32bit vertical", Y=16 * block, X=0, nrows=16)
        setup_vpm_write(mode="32bit vertical", Y=16 * block, X=0)
        nop()
        nop()
        for c in range(16 * block, 16 * block + 16):
            fmul(acc[c], acc[c], r1)
            fmul(r0, vpm, r5)
            fadd(vpm, acc[c], r0)
            mov(acc[c], 0.0)
        setup_dma_store(mode="32bit horizontal", Y=16 * block, nrows=16)
        if block == 0:
            mov(vpm_st_addr, r3)
        else:
            ldi(r0, 64 * block)
            iadd(vpm_st_addr, r3, r0)
        wait_dma_store()
    mutex_release()

    # ---- next tile, next row of tiles ----
    ldi(r0, 4 * TILE_COLS)
    ldi(null, [0 if e in (C_TILE, B_TILE) else 1 for e in range(16)], set_flags=True)
    iadd(r2, r2, r0, cond="zs")                        # C_TILE, B_TILE move 64 columns on
    nop()
    scalar(J_LEFT)
    isub(r0, r5, 1, set_flags=True)
    jzc(L.j_loop)
    ldi(null, _only(J_LEFT), set_flags=True)           # delay slots: store the count
    mov(r2, r0, cond="zs")
    nop()

    scalar(A_STRIDE)
    shl(r0, r5, 4)                                     # 16 rows of A
    ldi(null, _only(A_TILE), set_flags=True)
    iadd(r2, r2, r0, cond="zs")
    nop()
    scalar(C_STRIDE)
    shl(r0, r5, 4)
    ldi(null, _only(C_ROW), set_flags=True)
    iadd(r2, r2, r0, cond="zs")
    nop()
    scalar(I_LEFT)
    isub(r0, r5, 1, set_flags=True)
    jzc(L.i_loop)
    ldi(null, _only(I_LEFT), set_flags=True)
    mov(r2, r0, cond="zs")
    nop()

    # ---- join: instance 0 waits for every instance, then interrupts the host ----
    rotate(r0, r2, -PARAMS)
    ldi(r1, 8)
    iadd(r0, r0, r1)
    mov(uniforms_address, r0)                          # instance index, instance count
    nop()
    nop()
    nop()
    mov(r1, uniform)
    mov(r3, uniform)
    launching.emit_join_and_exit(asm, r1, r3)


def _f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def thread_grid(n_threads: int) -> Tuple[int, int]:
    """(row blocks, column blocks) of the instance grid: 2 x 6 for 12, as the example's."""
    rows = 2 if n_threads % 2 == 0 and n_threads > 1 else 1
    return rows, n_threads // rows


def plan_uniforms(drv, a, b, c, n_threads: int, alpha: float, beta: float) -> np.ndarray:
    """One row of UNIFORM_WORDS per instance for Driver arrays A (p+1 rows allocated), B, C."""
    p, q = c.shape[0], a.shape[1]
    r = b.shape[1]
    p_div, r_div = thread_grid(n_threads)
    row_tiles, col_tiles = p // TILE_ROWS, r // TILE_COLS
    uniforms = drv.alloc((n_threads, UNIFORM_WORDS), "uint32")
    uniforms[:, 0] = uniforms.addresses()[:, 0]
    h, w = row_tiles // p_div, col_tiles // r_div
    t = 0
    for i in range(p_div):
        for j in range(r_div):
            rows = h if i < p_div - 1 else row_tiles - i * h
            cols = w if j < r_div - 1 else col_tiles - j * w
            uniforms[t, 1:PARAMS_WORD] = (
                rows, q, cols, a.addresses()[i * h * TILE_ROWS, 0],
                b.addresses()[0, j * w * TILE_COLS], c.addresses()[i * h * TILE_ROWS, j * w * TILE_COLS],
                a.strides[0], b.strides[0], c.strides[0])
            t += 1
    uniforms[:, PARAMS_WORD:] = [[_f32_bits(alpha), _f32_bits(beta), t, n_threads]
                                 for t in range(n_threads)]
    return uniforms


class Sgemm64ShapeError(ValueError):
    """The matrices do not fit the kernel's tiling and thread grid."""


def sgemm64(drv, a, b, c, n_threads: int = isa.NUM_QPUS, alpha: float = 1.0, beta: float = 1.0,
            timeout: float = 60.0) -> np.ndarray:
    """alpha * A . B + beta * C (float32) on the QPUs of `drv`; returns the result on the host."""
    (p, q), (q2, r) = np.shape(a), np.shape(b)
    p_div, r_div = thread_grid(n_threads)
    if q != q2 or np.shape(c) != (p, r) or q < 2:
        raise Sgemm64ShapeError(f"A {np.shape(a)}, B {np.shape(b)}, C {np.shape(c)}: give "
                                "(p, q) . (q, r) + (p, r) with q >= 2")
    if p % TILE_ROWS or r % TILE_COLS or p < p_div * TILE_ROWS or r < r_div * TILE_COLS:
        raise Sgemm64ShapeError(f"p = {p}, r = {r}: the kernel needs p a multiple of {TILE_ROWS} "
                                f"and r of {TILE_COLS}, with a tile for each of the {p_div} x "
                                f"{r_div} instances")
    a_gpu = drv.alloc((p + 1, q), "float32")           # + 1 row: the prefetch past column q
    a_gpu[:p] = a
    b_gpu = drv.copy(np.ascontiguousarray(b, dtype=np.float32))
    c_gpu = drv.copy(np.ascontiguousarray(c, dtype=np.float32))
    uniforms = plan_uniforms(drv, a_gpu, b_gpu, c_gpu, n_threads, alpha, beta)
    drv.execute(n_threads=n_threads, program=drv.program(sgemm64_kernel), uniforms=uniforms,
                timeout=timeout)
    return np.array(c_gpu)
