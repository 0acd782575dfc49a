"""SGEMM benchmark kernel, C = A . B in float32, on up to 12 QPUs (py-videocore's sgemm design).

C is cut into tiles of 16 rows x 32 columns, dealt round-robin to the program instances. For one
tile, each step k fetches the column A[i0:i0+16, k] through TMU0 (one per-element address per
row; the next column is requested while this one is used, so A carries one padding row) and
streams the row B[k, j0:j0+32] through the uniform stream (uniforms_address points at it):
`fmul(r0, r4, uniform)` is column j's contribution, accumulated into one of 32 registers
(ra0-ra15, rb0-rb15). The tile is written to the VPM as 32 columns (vertical writes), then stored
by two 16 x 16 DMA stores with a store stride; the VPM is shared, so that phase holds the mutex.
Every instance raises launch.DONE_SEMAPHORE at the end and instance 0 takes it once per
instance before it raises the host interrupt.

Run as a benchmark: `python -m qpu_kernels.bench_sgemm [--p 96 --q 363 --r 384 --threads 12]`
prints the modelled time and GFLOPS on the emulator (or the measured time on a Pi with --backend hw).
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
from __future__ import annotations

import argparse
import time
from typing import Optional

import numpy as np

from vc4infer.qpu import isa, qpu

from . import launch as launching

TILE_ROWS = isa.SIMD_WIDTH          # one row of C per SIMD element
TILE_COLS = 32                      # one accumulator register per column
HEADER_WORDS = 8                    # uniforms before the per-tile triples
TILE_WORDS = 3                      # A tile address, B tile address, C tile address
#: the guide gives the VDW store stride 13 bits (vc4asm found 16); stay within the guide's
MAX_STORE_GAP_BYTES = (1 << 13) - 1


def _accumulator(j: int, ra, rb):
    """Column j's accumulator: even columns in regfile A, odd in B, so that consecutive
    instructions never read a register the previous one wrote."""
    return ra[j // 2] if j % 2 == 0 else rb[j // 2]


@qpu
def sgemm_kernel(asm):
    """Uniforms of one instance: self address, thread index, thread count, q, A row stride (bytes),
    B row stride (bytes), C row stride - 64 (bytes), tile count, then (A, B, C) address triples."""
    params, thread, n_threads, q = ra16, ra17, rb17, ra18
    a_stride, b_stride, c_gap, tiles = rb18, ra19, rb19, ra20
    a_offsets, c_tile, four = ra21, ra22, rb20
    acc = [_accumulator(j, ra, rb) for j in range(TILE_COLS)]

    mov(params, uniform)
    mov(thread, uniform)
    mov(n_threads, uniform)
    mov(q, uniform)
    mov(a_stride, uniform)
    mov(b_stride, uniform)
    mov(c_gap, uniform)
    mov(tiles, uniform)
    ldi(r0, 4 * HEADER_WORDS)
    iadd(params, params, r0, set_flags=False)                  # first tile triple
    imul24(a_offsets, element_number, a_stride)                # element e reads row e of the tile
    ldi(four, 4)
    mov(tmu_noswap, 1)

    L.tile_loop
    mov(null, tiles, set_flags=True)
    jzs(L.tiles_done)
    nop()
    nop()
    nop()
    mov(uniforms_address, params)
    ldi(r0, 4 * TILE_WORDS)
    iadd(params, params, r0, set_flags=False)
    mov(r1, uniform)                                           # A[i0, 0]
    mov(r2, uniform)                                           # B[0, j0]
    mov(c_tile, uniform)                                       # C[i0, j0]
    iadd(r1, r1, a_offsets, set_flags=False)                   # r1[e] = &A[i0 + e, 0]
    mov(r3, q)
    for j in range(0, TILE_COLS, 2):
        mov(acc[j], 0.0).mov(acc[j + 1], 0.0)

    mov(tmu0_s, r1)                                            # fetch A[i0:i0+16, 0]

    L.k_loop                                                   # one k per pass
    iadd(r1, r1, four, set_flags=False).mov(uniforms_address, r2)   # stream B[k, j0:j0+32]
    isub(r3, r3, 1, set_flags=True)                            # the only flag writer of the loop
    iadd(r2, r2, b_stride, sig="load tmu0", set_flags=False)   # r4 = A[i0:i0+16, k]
    mov(tmu0_s, r1).fmul(r0, r4, uniform)                      # prefetch column k + 1
    for j in range(1, TILE_COLS):
        if j == TILE_COLS - 2:
            jzc(L.k_loop)                                      # the last 3 instructions: delay slots
        fadd(acc[j - 1], acc[j - 1], r0, set_flags=False).fmul(r0, r4, uniform)
    fadd(acc[TILE_COLS - 1], acc[TILE_COLS - 1], r0, set_flags=False)
    nop(sig="load tmu0")                                       # drain the prefetch of column q

    mutex_acquire()                                            # the VPM rows are shared
    for block in range(TILE_COLS // 16):
        setup_vpm_write(mode="32bit vertical", Y=16 * block, X=0)
        for j in range(16 * block, 16 * block + 16):
            mov(vpm, acc[j])
    setup_dma_store_stride(c_gap, tmp_reg=r0)
    ldi(r1, 64)
    iadd(r1, c_tile, r1, set_flags=False)
    for block in range(TILE_COLS // 16):
        setup_dma_store(mode="32bit horizontal", Y=16 * block, nrows=16)
        start_dma_store(c_tile if block == 0 else r1)
        wait_dma_store()
    mutex_release()
    isub(tiles, tiles, 1, set_flags=False)
    jmp(L.tile_loop)
    nop()
    nop()
    nop()

    L.tiles_done
    launching.emit_join_and_exit(asm, thread, n_threads)


class SgemmShapeError(ValueError):
    """The matrices do not fit the kernel's tiling or its stride fields."""


def plan_uniforms(drv, a, b, c, n_threads: int) -> np.ndarray:
    """The uniforms array (n_threads rows) for C = A . B with A, B, C Driver arrays."""
    p, q = a.shape
    r = b.shape[1]
    tiles = [(i, j) for i in range(p // TILE_ROWS) for j in range(r // TILE_COLS)]
    per_thread = [tiles[t::n_threads] for t in range(n_threads)]
    width = HEADER_WORDS + TILE_WORDS * max(len(t) for t in per_thread)
    uniforms = drv.alloc((n_threads, width), "uint32")
    uniforms[:, 0] = uniforms.addresses()[:, 0]
    uniforms[:, 1] = np.arange(n_threads)
    uniforms[:, 2] = n_threads
    uniforms[:, 3] = q
    uniforms[:, 4] = a.strides[0]
    uniforms[:, 5] = b.strides[0]
    uniforms[:, 6] = c.strides[0] - 4 * isa.SIMD_WIDTH
    a_addr, b_addr, c_addr = a.addresses(), b.addresses(), c.addresses()
    for t, mine in enumerate(per_thread):
        uniforms[t, 7] = len(mine)
        for n, (i, j) in enumerate(mine):
            base = HEADER_WORDS + TILE_WORDS * n
            uniforms[t, base:base + 3] = (a_addr[i * TILE_ROWS, 0], b_addr[0, j * TILE_COLS],
                                          c_addr[i * TILE_ROWS, j * TILE_COLS])
    return uniforms


def check_shapes(a_shape, b_shape, n_threads: int) -> None:
    """Raise SgemmShapeError unless (p, q) . (q, r) fits the kernel."""
    (p, q), (q2, r) = a_shape, b_shape
    if q != q2:
        raise SgemmShapeError(f"A is {p}x{q} but B is {q2}x{r}: the inner dimensions differ")
    if p % TILE_ROWS or r % TILE_COLS or p == 0 or r == 0 or q == 0:
        raise SgemmShapeError(f"C = {p}x{r}, q = {q}: the kernel needs p a multiple of {TILE_ROWS}, r a "
                              f"multiple of {TILE_COLS} and q >= 1; pad the matrices")
    if 4 * r - 4 * isa.SIMD_WIDTH > MAX_STORE_GAP_BYTES:
        raise SgemmShapeError(f"r = {r}: C rows of {4 * r} bytes exceed the DMA store stride field; "
                              "split C into column blocks")
    if not 1 <= n_threads <= isa.NUM_QPUS:
        raise SgemmShapeError(f"n_threads={n_threads}: use 1..{isa.NUM_QPUS}")


def sgemm(drv, a, b, n_threads: int = isa.NUM_QPUS, timeout: float = 60.0) -> np.ndarray:
    """C = A . B (float32) on the QPUs of `drv`; returns C as a host array."""
    check_shapes(np.shape(a), np.shape(b), n_threads)
    p, q = np.shape(a)
    a_gpu = drv.alloc((p + 1, q), "float32")[:p]        # + 1 row: the prefetch after the last column
    a_gpu[:] = a
    b_gpu = drv.copy(np.ascontiguousarray(b, dtype=np.float32))
    c_gpu = drv.alloc((a_gpu.shape[0], b_gpu.shape[1]), "float32")
    uniforms = plan_uniforms(drv, a_gpu, b_gpu, c_gpu, n_threads)
    drv.execute(n_threads=n_threads, program=drv.program(sgemm_kernel), uniforms=uniforms, timeout=timeout)
    return np.array(c_gpu)


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--p", type=int, default=96)
    parser.add_argument("--q", type=int, default=363)
    parser.add_argument("--r", type=int, default=384)
    parser.add_argument("--threads", type=int, default=isa.NUM_QPUS)
    parser.add_argument("--backend", default="emu", choices=["emu", "hw", "auto"])
    args = parser.parse_args(argv)
    from hostside.driver import Driver

    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.p, args.q)).astype(np.float32)
    b = rng.standard_normal((args.q, args.r)).astype(np.float32)
    with Driver(backend=args.backend) as drv:
        start = time.perf_counter()
        c = sgemm(drv, a, b, args.threads, timeout=600.0)
        wall = time.perf_counter() - start
        stats = drv.last_stats
    reference = a.astype(np.float64) @ b
    flop = 2.0 * args.p * args.q * args.r
    print(f"sgemm {args.p}x{args.q} . {args.q}x{args.r} on {args.threads} QPUs ({stats.backend})")
    print(f"  max |error| vs float64: {np.max(np.abs(c - reference)):.3e}")
    print(f"  host wall time: {wall:.2f} s")
    if stats.modelled_seconds:
        print(f"  modelled: {stats.modelled_seconds * 1e3:.3f} ms at {stats.clock_hz / 1e6:.0f} MHz, "
              f"{flop / stats.modelled_seconds / 1e9:.2f} GFLOPS (modelled)")
        print(f"  instructions per QPU: {list(stats.instructions)}")


if __name__ == "__main__":
    main()
