"""Vector add on all 12 QPUs: c = a + b for float32 vectors whose length is a multiple of 16.

Each program instance takes every 12th row of 16 floats. It reads a row of a and b through the
TMU (one address per SIMD element), adds them, writes the sum to its own VPM row (row = instance
index) and stores it with a one-row DMA store. Instance i learns its row, its first addresses and
its row count from its uniforms. Run: `python -m qpu_kernels.examples.vector_add`.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
from __future__ import annotations

import numpy as np

from vc4infer.qpu import isa, qpu

ROW_BYTES = 4 * isa.SIMD_WIDTH


@qpu
def vector_add(asm):
    """Uniforms: a, b, c addresses of the first row, row count (>= 1), byte step between rows,
    VPM write setup word, DMA store setup word."""
    mov(ra0, uniform)                  # a
    mov(ra1, uniform)                  # b
    mov(ra2, uniform)                  # c
    mov(ra3, uniform)                  # rows left
    mov(rb0, uniform)                  # step
    mov(rb1, uniform)                  # VPM write setup (this instance's row)
    mov(rb2, uniform)                  # DMA store setup (from this instance's row)
    shl(r3, element_number, 2)         # element e reads word e of the row
    L.row
    iadd(r0, ra0, r3, set_flags=False)
    mov(tmu0_s, r0)
    iadd(r1, ra1, r3, set_flags=False)
    mov(tmu0_s, r1)
    nop(sig="load tmu0")
    mov(r2, r4, sig="load tmu0")       # r2 = a row; r4 = b row after this instruction
    wait_dma_store()                   # the previous row has left the VPM
    mov(vpmvcd_wr_setup, rb1)
    fadd(vpm, r2, r4, set_flags=False)
    mov(vpmvcd_wr_setup, rb2)
    mov(vpm_st_addr, ra2)
    iadd(ra0, ra0, rb0, set_flags=False)
    iadd(ra1, ra1, rb0, set_flags=False)
    isub(ra3, ra3, 1, set_flags=True)
    jzc(L.row)
    iadd(ra2, ra2, rb0, set_flags=False)
    nop()
    nop()
    wait_dma_store()
    exit()


def uniforms_for(a, b, c, n_threads: int) -> np.ndarray:
    """Uniform rows of the instances that get at least one row of 16 floats."""
    rows = a.size // isa.SIMD_WIDTH
    instances = min(n_threads, rows)
    out = []
    for t in range(instances):
        count = len(range(t, rows, instances))
        vpm_write = isa.encode_fields(isa.VPM_GENERIC_WRITE_FIELDS, stride=1, horizontal=1, laned=0,
                                      size=isa.VPM_SIZE_32, addr=t)
        store = isa.encode_fields(isa.VDW_STORE_FIELDS, id=isa.VDW_STORE_ID, units=1,
                                  depth=isa.SIMD_WIDTH, laned=0, horizontal=1, vpmbase=t << 4, modew=0)
        offset = t * ROW_BYTES
        out.append([a.address + offset, b.address + offset, c.address + offset, count,
                    instances * ROW_BYTES, vpm_write, store])
    return np.array(out, dtype=np.uint32)


def add(drv, a, b, n_threads: int = isa.NUM_QPUS) -> np.ndarray:
    """a + b on up to `n_threads` QPUs of `drv`; the length must be a non-zero multiple of 16."""
    a = np.ascontiguousarray(a, np.float32).reshape(-1)
    b = np.ascontiguousarray(b, np.float32).reshape(-1)
    if a.shape != b.shape or a.size == 0 or a.size % isa.SIMD_WIDTH:
        raise ValueError(f"vectors of {a.size} and {b.size} floats: give equal lengths, a non-zero "
                         f"multiple of {isa.SIMD_WIDTH}")
    if not 1 <= n_threads <= isa.NUM_QPUS:
        raise ValueError(f"n_threads={n_threads}: use 1..{isa.NUM_QPUS}")
    a_gpu, b_gpu = drv.copy(a), drv.copy(b)
    c_gpu = drv.alloc(a.size, "float32")
    uniforms = uniforms_for(a_gpu, b_gpu, c_gpu, n_threads)
    drv.execute(n_threads=len(uniforms), program=drv.program(vector_add), uniforms=uniforms)
    return np.array(c_gpu)


def main() -> None:
    from hostside.driver import Driver

    rng = np.random.default_rng()
    a = rng.standard_normal(16 * 100).astype(np.float32)
    b = rng.standard_normal(16 * 100).astype(np.float32)
    with Driver() as drv:
        c = add(drv, a, b)
        stats = drv.last_stats
        print(f"backend: {drv.backend_name}, {stats.n_threads} QPUs")
    print("max |error|", float(np.max(np.abs(c - (a + b)))))
    if stats.modelled_seconds:
        print(f"modelled time: {stats.modelled_seconds * 1e6:.1f} us at {stats.clock_hz / 1e6:.0f} MHz")


if __name__ == "__main__":
    main()
