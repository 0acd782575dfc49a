"""DMA streaming benchmark: c = a + b over large float32 vectors on up to 12 QPUs, every byte moved
by VCD DMA loads and VDW DMA stores through the VPM.

The vectors are cut into chunks of 2 VPM rows (32 floats); each program instance streams a
contiguous range of chunks through its own 4 VPM rows (2 for a, 2 for b; the sum overwrites the
a rows and is stored from there), so 12 instances use 48 of the 64 rows a user program can reach
and never need the mutex. The VPM setup words depend on the instance's rows, so the host builds
them (from the field layouts of vc4infer.qpu.isa) and passes them as uniforms.

Run as a benchmark: `python -m qpu_kernels.bench_dma [--floats 393216 --threads 12]` prints the
modelled time and bandwidth on the emulator (or the measured time on a Pi with --backend hw).
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
from __future__ import annotations

import argparse
import time
from typing import Optional

import numpy as np

from vc4infer.qpu import isa, qpu

CHUNK_ROWS = 2                                   # VPM rows (of 16 words) per chunk of each input
CHUNK_FLOATS = CHUNK_ROWS * isa.VPM_ROW_WORDS
CHUNK_BYTES = 4 * CHUNK_FLOATS
ROWS_PER_INSTANCE = 2 * CHUNK_ROWS               # a rows, then b rows
UNIFORM_WORDS = 9


@qpu
def vector_add_kernel(asm):
    """Uniforms: a, b, c addresses of this instance's range, chunk count (>= 1), then the setup words:
    DMA load of a, DMA load of b, VPM read of a and b, VPM write of the sum, DMA store of the sum."""
    a_ptr, b_ptr, c_ptr, chunks = ra0, ra1, ra2, ra3
    load_a, load_b, vpm_read, vpm_write, store = rb0, rb1, rb2, rb3, rb4
    step = rb5
    mov(a_ptr, uniform)
    mov(b_ptr, uniform)
    mov(c_ptr, uniform)
    mov(chunks, uniform)
    mov(load_a, uniform)
    mov(load_b, uniform)
    mov(vpm_read, uniform)
    mov(vpm_write, uniform)
    mov(store, uniform)
    ldi(step, CHUNK_BYTES)
    L.loop
    wait_dma_store()                             # the previous sum has left the a rows
    mov(vpmvcd_rd_setup, load_a)
    mov(vpm_ld_addr, a_ptr)
    mov(vpmvcd_rd_setup, load_b)                 # a second load starts when the first is done
    mov(vpm_ld_addr, b_ptr)
    iadd(a_ptr, a_ptr, step, set_flags=False)
    iadd(b_ptr, b_ptr, step, set_flags=False)
    wait_dma_load()
    mov(vpmvcd_rd_setup, vpm_read)
    mov(vpmvcd_wr_setup, vpm_write)
    mov(r0, vpm)                                 # a, first row
    mov(r1, vpm)                                 # a, second row
    mov(r2, vpm)                                 # b, first row
    fadd(r0, r0, r2, set_flags=False)
    mov(r3, vpm)                                 # b, second row
    fadd(r1, r1, r3, set_flags=False)
    mov(vpm, r0)
    mov(vpm, r1)
    mov(vpmvcd_wr_setup, store)
    mov(vpm_st_addr, c_ptr)
    isub(chunks, chunks, 1, set_flags=True)
    jzc(L.loop)
    iadd(c_ptr, c_ptr, step, set_flags=False)    # delay slot
    nop()
    nop()
    wait_dma_store()
    exit()


def setup_words(first_row: int) -> list:
    """The five setup words of an instance whose VPM rows start at `first_row`."""
    a_row, b_row = first_row, first_row + CHUNK_ROWS
    load = dict(id=1, modew=0, mpitch=3, rowlen=isa.VPM_ROW_WORDS & 0xF, nrows=CHUNK_ROWS, vpitch=1,
                vertical=0)
    return [
        isa.encode_fields(isa.VCD_LOAD_FIELDS, addrxy=a_row << 4, **load),
        isa.encode_fields(isa.VCD_LOAD_FIELDS, addrxy=b_row << 4, **load),
        isa.encode_fields(isa.VPM_GENERIC_READ_FIELDS, num=ROWS_PER_INSTANCE, stride=1, horizontal=1,
                          laned=0, size=isa.VPM_SIZE_32, addr=a_row),
        isa.encode_fields(isa.VPM_GENERIC_WRITE_FIELDS, stride=1, horizontal=1, laned=0,
                          size=isa.VPM_SIZE_32, addr=a_row),
        isa.encode_fields(isa.VDW_STORE_FIELDS, id=isa.VDW_STORE_ID, units=CHUNK_ROWS,
                          depth=isa.VPM_ROW_WORDS, laned=0, horizontal=1, vpmbase=a_row << 4, modew=0),
    ]


class VectorLengthError(ValueError):
    """The vectors cannot be split into whole chunks."""


def plan_uniforms(a, b, c, n_threads: int) -> np.ndarray:
    """(instances, UNIFORM_WORDS) uniforms for c = a + b; instances = min(n_threads, chunks)."""
    n = a.size
    if not (a.size == b.size == c.size) or n == 0 or n % CHUNK_FLOATS:
        raise VectorLengthError(f"vectors of {a.size}, {b.size}, {c.size} floats: give three equal "
                                f"lengths, a non-zero multiple of {CHUNK_FLOATS}")
    if not 1 <= n_threads <= isa.NUM_QPUS:
        raise VectorLengthError(f"n_threads={n_threads}: use 1..{isa.NUM_QPUS}")
    chunks = n // CHUNK_FLOATS
    instances = min(n_threads, chunks)
    bounds = np.linspace(0, chunks, instances + 1).astype(int)
    rows = []
    for t in range(instances):
        first, count = bounds[t], bounds[t + 1] - bounds[t]
        offset = first * CHUNK_BYTES
        rows.append([a.address + offset, b.address + offset, c.address + offset, count]
                    + setup_words(t * ROWS_PER_INSTANCE))
    return np.array(rows, dtype=np.uint32)


def vector_add(drv, a, b, n_threads: int = isa.NUM_QPUS, timeout: float = 60.0) -> np.ndarray:
    """a + b (float32 vectors) on the QPUs of `drv`, streamed by DMA; returns a host array."""
    a_gpu = drv.copy(np.ascontiguousarray(a, dtype=np.float32).reshape(-1))
    b_gpu = drv.copy(np.ascontiguousarray(b, dtype=np.float32).reshape(-1))
    c_gpu = drv.alloc(a_gpu.size, "float32")
    uniforms = plan_uniforms(a_gpu, b_gpu, c_gpu, n_threads)
    drv.execute(n_threads=len(uniforms), program=drv.program(vector_add_kernel), uniforms=uniforms,
                timeout=timeout)
    return np.array(c_gpu)


@qpu
def dma_stream_kernel(asm, store: bool, rows: int, count: int):
    """One instance moving `count` blocks of `rows` 16-word rows between memory and VPM row 0 (a
    store of more than 64 rows wraps round the VPM), one DMA at a time, each waited for: the
    transfers of the published VPM DMA benchmarks. Uniform: the first block's address."""
    ptr, left, step = ra0, ra1, rb0
    mov(ptr, uniform)
    ldi(left, count)
    ldi(step, 64 * rows)
    if store:
        setup_vpm_write()
        for _ in range(min(rows, isa.VPM_USER_ROWS)):
            mov(vpm, element_number)
    L.loop
    if store:
        setup_dma_store(nrows=rows)
        start_dma_store(ptr)
        wait_dma_store()
    else:
        setup_dma_load(nrows=rows)
        start_dma_load(ptr)
        wait_dma_load()
    isub(left, left, 1, set_flags=True)
    jzc(L.loop)
    iadd(ptr, ptr, step, set_flags=False)        # delay slots
    nop()
    nop()
    exit()


def dma_stream(drv, store: bool, rows: int, count: int, timeout: float = 60.0) -> float:
    """Bytes per modelled (or, on a Pi, measured) second of `count` DMA loads or stores of `rows`
    16-word rows by one QPU. Loads read known data; stores are checked against what they wrote."""
    if store and not 1 <= rows <= 128 or not store and not 1 <= rows <= 16:
        raise ValueError(f"rows={rows}: a DMA store moves 1-128 rows, a load 1-16")
    words = rows * isa.VPM_ROW_WORDS * count
    data = drv.alloc(words, "uint32") if store else drv.copy(np.arange(words, dtype=np.uint32))
    start = time.perf_counter()
    drv.execute(n_threads=1, program=drv.program(dma_stream_kernel, store, rows, count),
                uniforms=[data.address], timeout=timeout)
    wall = time.perf_counter() - start
    if store and not np.array_equal(np.array(data).reshape(-1, 16), np.tile(np.arange(16), (words // 16, 1))):
        raise AssertionError("the DMA stores did not write the VPM rows they were given")
    seconds = drv.last_stats.modelled_seconds or wall
    return 4 * words / seconds


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--floats", type=int, default=12 * 1024 * CHUNK_FLOATS)
    parser.add_argument("--threads", type=int, default=isa.NUM_QPUS)
    parser.add_argument("--backend", default="emu", choices=["emu", "hw", "auto"])
    args = parser.parse_args(argv)
    from hostside.driver import Driver

    rng = np.random.default_rng(0)
    a = rng.standard_normal(args.floats).astype(np.float32)
    b = rng.standard_normal(args.floats).astype(np.float32)
    with Driver(backend=args.backend) as drv:
        start = time.perf_counter()
        c = vector_add(drv, a, b, args.threads, timeout=600.0)
        wall = time.perf_counter() - start
        stats = drv.last_stats
    moved = 3 * 4 * args.floats
    print(f"vector add of {args.floats} floats on {stats.n_threads} QPUs ({stats.backend}): "
          f"max |error| {np.max(np.abs(c - (a + b))):.3e}")
    print(f"  host wall time: {wall:.2f} s; DMA bytes loaded {stats.dma_load_bytes}, "
          f"stored {stats.dma_store_bytes}")
    if stats.modelled_seconds:
        print(f"  modelled: {stats.modelled_seconds * 1e3:.3f} ms at {stats.clock_hz / 1e6:.0f} MHz, "
              f"{moved / stats.modelled_seconds / 1e9:.3f} GB/s (modelled)")


if __name__ == "__main__":
    main()
