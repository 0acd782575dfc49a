"""Whole-program checks of the QPUs themselves, each against values worked out on the host from
the program's definition: the spec's Appendix A.2 add-one program (its machine words, as the
spec lists them), a barrier of 12 QPUs built from semaphores, TMU lookups and the SFU reciprocal.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its globals
# while it runs; `L.name` statements define labels
from __future__ import annotations

import numpy as np

from qpu_kernels.launch import emit_join_and_exit
from vc4infer.qpu import assemble, isa, qpu

from .compare import compare
from .registry import CaseContext, Outcome, case

#: reference guide Appendix A.2 (vc4-qpu-reference.md): load one VPM row by DMA, add 1 to every
#: element (integer add of small immediate 1), store the row; uniforms: input, output address
APPENDIX_A2_WORDS = (
    0xE0024C6783011000, 0x10020CA715827D80, 0x100209E715CA7D80, 0xE0024C6700101A00,
    0xE0025C6700001A00, 0x1002082715C27D80, 0xD0022C270C9C11C0, 0xE0025C6780904000,
    0x10021CA715827D80, 0x100209E7159F2FC0, 0xD00209A7159C1FC0, 0x30024820959E7000,
    0x10020827009E7000, 0x10020827009E7000,
)
#: semaphores of the barrier (qpu_kernels.launch.DONE_SEMAPHORE joins the instances at the end)
ARRIVE_SEMAPHORE = 1
GO_SEMAPHORE = 2
#: VPM rows of the barrier program: shared rows for the table (under the mutex), one row per
#: instance for its table entry and for its result
TABLE_VPM_ROW = 0
ENTRY_VPM_ROW = 16
RESULT_VPM_ROW = 32
#: SFU reciprocal accuracy: VC4C models the SFU as exact with the low 10 mantissa bits cleared,
#: at most 1024 ulp = 2**-13 relative (spec section 6.1); py-videocore checks hardware at 1e-4
SFU_RELATIVE_TOLERANCE = 2.0 ** -13
W = isa.SIMD_WIDTH


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    return ((values.astype(np.int64) + 2 ** 31) % 2 ** 32 - 2 ** 31).astype(np.int64)


@case("program", "add-one A.2, 1x16 int32")
def add_one(ctx: CaseContext) -> Outcome:
    """The spec's A.2 words: out = in + 1 with 32-bit wrap-around."""
    drv = ctx.drv
    x = np.array([0, 1, -1, -2, 41, 1000, -1000, 2 ** 31 - 1, -2 ** 31, 123456789, -987654321,
                  65535, 65536, 2 ** 24, -(2 ** 24) - 1, 7], dtype=np.int32)
    src, dst = drv.copy(x), drv.alloc(W, "int32")
    dst[:] = 0x5A5A5A5A
    program = drv.program(np.array(APPENDIX_A2_WORDS, dtype=np.uint64))
    ctx.execute(1, program, [src.address, dst.address])
    return compare(np.array(dst), _wrap_int32(x.astype(np.int64) + 1), 0)


def _vpm_write_setup(row: int) -> int:
    return isa.encode_fields(isa.VPM_GENERIC_WRITE_FIELDS, stride=1, horizontal=1, laned=0,
                             size=isa.VPM_SIZE_32, addr=row)


def _vdw_one_row(row: int) -> int:
    return isa.encode_fields(isa.VDW_STORE_FIELDS, id=isa.VDW_STORE_ID, units=1, depth=W, laned=0,
                             horizontal=1, vpmbase=row << 4, modew=0)


@qpu
def barrier_program(asm, n_threads: int):
    """Instance t writes table row t = 16 * (t + 1) + element, waits at a semaphore barrier for
    every instance, then loads the whole table (DMA, under the mutex), adds its rows and stores
    the sum as its result row. Uniforms: t, table row t address, table address, result row t
    address, VPM write setup and VDW setup of its entry row, the same of its result row."""
    thread, entry_addr, table_addr, result_addr = ra0, ra1, ra2, ra3
    mov(thread, uniform)
    mov(entry_addr, uniform)
    mov(table_addr, uniform)
    mov(result_addr, uniform)
    mov(rb0, uniform)                  # VPM write setup, entry row
    mov(rb1, uniform)                  # VDW setup, entry row
    mov(rb2, uniform)                  # VPM write setup, result row
    mov(rb3, uniform)                  # VDW setup, result row
    iadd(r0, thread, 1)
    shl(r0, r0, 4)
    iadd(r0, r0, element_number)
    mov(vpmvcd_wr_setup, rb0)
    mov(vpm, r0)
    mov(vpmvcd_wr_setup, rb1)
    mov(vpm_st_addr, entry_addr)
    wait_dma_store()
    sema_up(ARRIVE_SEMAPHORE)
    mov(null, thread, set_flags=True)
    jzc(L.follower)
    nop()
    nop()
    nop()
    for _ in range(n_threads):         # instance 0: every instance has stored its entry
        sema_down(ARRIVE_SEMAPHORE)
    for _ in range(n_threads - 1):     # release the others
        sema_up(GO_SEMAPHORE)
    jmp(L.after)
    nop()
    nop()
    nop()
    L.follower
    sema_down(GO_SEMAPHORE)
    L.after
    mutex_acquire()
    setup_dma_load(nrows=n_threads, Y=TABLE_VPM_ROW)
    start_dma_load(table_addr)
    wait_dma_load()
    setup_vpm_read(nrows=n_threads, Y=TABLE_VPM_ROW)
    ldi(r1, 0)
    nop()
    nop()
    for _ in range(n_threads):
        iadd(r1, r1, vpm)
    mutex_release()
    mov(vpmvcd_wr_setup, rb2)
    mov(vpm, r1)
    mov(vpmvcd_wr_setup, rb3)
    mov(vpm_st_addr, result_addr)
    wait_dma_store()
    emit_join_and_exit(asm, thread, n_threads)


@case("program", f"semaphore barrier, {isa.NUM_QPUS} QPUs")
def semaphore_barrier(ctx: CaseContext) -> Outcome:
    """Every instance's result is the sum of all entries, which only holds if no instance got
    past the barrier before the last entry was stored."""
    drv, n = ctx.drv, isa.NUM_QPUS
    sentinel = 0x40000000
    table, result = drv.alloc((n, W), "int32"), drv.alloc((n, W), "int32")
    table[:] = sentinel
    result[:] = sentinel
    rows = [[t, table[t].address, table.address, result[t].address,
             _vpm_write_setup(ENTRY_VPM_ROW + t), _vdw_one_row(ENTRY_VPM_ROW + t),
             _vpm_write_setup(RESULT_VPM_ROW + t), _vdw_one_row(RESULT_VPM_ROW + t)]
            for t in range(n)]
    program = drv.program(assemble(barrier_program, n, check=True))
    ctx.execute(n, program, np.array(rows, dtype=np.uint32))
    entries = 16 * (np.arange(n)[:, None] + 1) + np.arange(W)[None, :]
    expected = np.concatenate([entries, np.broadcast_to(entries.sum(axis=0), (n, W))])
    got = np.concatenate([np.array(table), np.array(result)])
    return compare(got, expected, 0)


@qpu
def tmu_program(asm):
    """Two direct TMU lookups in flight: element e reads word 15 - e, then word 2e, of the
    input; the two rows are stored. Uniforms: input address, output address (2 rows)."""
    mov(ra0, uniform)
    mov(ra1, uniform)
    shl(r0, element_number, 2)
    ldi(r1, 4 * (W - 1))
    isub(r1, r1, r0)
    iadd(r1, ra0, r1)                  # input + 4 * (15 - e)
    shl(r2, element_number, 3)
    iadd(r2, ra0, r2)                  # input + 8 * e
    mov(tmu0_s, r1)
    mov(tmu0_s, r2)
    setup_vpm_write()
    nop(sig="load tmu0")
    mov(vpm, r4)
    nop(sig="load tmu0")
    mov(vpm, r4)
    setup_dma_store(nrows=2)
    start_dma_store(ra1)
    wait_dma_store()
    exit()


@case("program", "TMU lookups, 2x16 words")
def tmu_read(ctx: CaseContext) -> Outcome:
    drv = ctx.drv
    data = ctx.rng.integers(0, 2 ** 32, 2 * W, dtype=np.uint64).astype(np.uint32)
    src, dst = drv.copy(data), drv.alloc((2, W), "uint32")
    dst[:] = 0
    ctx.execute(1, drv.program(assemble(tmu_program, check=True)), [src.address, dst.address])
    e = np.arange(W)
    expected = np.stack([data[W - 1 - e], data[2 * e]]).astype(np.int64)
    return compare(np.array(dst).astype(np.int64), expected, 0)


@qpu
def recip_program(asm):
    """out = SFU reciprocal of one row of 16 floats. Uniforms: input address, output address."""
    setup_dma_load(nrows=1)
    start_dma_load(uniform)
    wait_dma_load()
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    nop()
    mov(r0, vpm)
    mov(sfu_recip, r0)
    nop()
    nop()
    mov(vpm, r4)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


@case("program", "SFU recip, 1x16 float32")
def sfu_recip(ctx: CaseContext) -> Outcome:
    """1/x within 2**-13 relative; 1/0 = +inf exactly (hardware-verified, spec section 6.1)."""
    drv = ctx.drv
    x = np.array([1.0, 2.0, -4.0, 0.5, 3.0, -7.0, 0.1, 1e-3, 1e3, 12345.678, -0.333, 1.5, 100.0,
                  1e-20, 1e20, 0.0], dtype=np.float32)
    src, dst = drv.copy(x), drv.alloc(W, "float32")
    dst[:] = np.nan
    ctx.execute(1, drv.program(assemble(recip_program, check=True)), [src.address, dst.address])
    with np.errstate(divide="ignore"):
        expected = 1.0 / x.astype(np.float64)
    bound = SFU_RELATIVE_TOLERANCE * np.abs(np.where(np.isfinite(expected), expected, 0.0))
    return compare(np.array(dst), expected, bound)
