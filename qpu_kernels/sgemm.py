"""SGEMM with a fused epilogue on the QPUs: C[M,N] = act(A[M,K] @ B[K,N] + bias[N]) (+ R[M,N]).

A and C (and R) are float32 matrices with row strides (A = NHWC activations seen as HW x Cin, so a
1x1 convolution is one SGEMM). B and bias are weights, packed once at load by `pack_weights` into
panels of NT columns (NT = 16, 32 or 48, chosen per shape by `panel_width`): panel p holds
B[k, p*NT + j] for k = 0..K-1, j = 0..NT-1 (zero beyond N), followed by bias[p*NT + j].

Tiling (one tile = 16 rows of C x one panel): SIMD element e computes row i0 + e. For each k the
column A[i0:i0+16, k] arrives through the TMU (one address per element; up to four in flight),
while the panel streams through the uniform FIFO: `fmul(r0, r4, uniform)` multiplies the A column
by the scalar B[k, j] and the next instruction's `fadd` accumulates it into column j's register
(even columns in regfile A, odd in B, so no instruction reads what the previous one wrote). The
panel is stored k-major, so the uniform stream runs through it without a single reset; the bias
follows the panel and is added from the same stream. Rows past M read a clamped row (row M-1) and
are never stored. The epilogue adds bias, applies relu/relu6, adds R (TMU reads of R, clamped to
its valid columns), then writes the tile into NT VPM rows as 16x16 blocks and stores each block
with a horizontal DMA whose row and column counts cut the M and N edges; the VPM writes of block
b+1 overlap the DMA of block b. The VPM is shared by all QPUs: tiles of up to 32 columns use one
of two 32-row banks (even instances bank 0, odd ones bank 1), each guarded by a semaphore used as
a lock, so one bank is filled while the other one's DMA runs; 48-column tiles use one 48-row bank.

Tiles are ordered panel-major and dealt to 12 QPUs round-robin (`launch.split_items`), so the
QPUs running side by side stream the same panel (L2 hits); every QPU reads its own uniforms row:
a header, then one record per tile. A may also be read transposed (`a_column_step`), which makes
a global average pool an SGEMM (qpu_kernels.pooling). The program is assembled once per (NT, activation,
residual, TMU depth) and shared by all launches of all layers.
"""
from __future__ import annotations

import math
from typing import List, Optional

import numpy as np

from vc4infer.qpu import isa, qpu
from vc4infer.qpu import ra as REGFILE_A
from vc4infer.qpu import rb as REGFILE_B

from . import launch as launching
from .launch import KernelShapeError, Launch

ACTIVATIONS = (None, "relu", "relu6")
PANEL_WIDTHS = (16, 32, 48)
ROWS = isa.SIMD_WIDTH                     # rows of C per tile: one per SIMD element
HEADER_WORDS = 10
#: instructions per k-step beyond the NT multiply-adds: TMU request, loop counter, branch
K_STEP_OVERHEAD = 3
#: modelled VDW cycles to store one 16x16 block (start-up + 1 KiB at the modelled rate)
STORE_BLOCK_CYCLES = 270
#: VPM rows of one bank; tiles of up to 32 columns use two banks (instances alternate), wider ones
#: the whole 48 rows
BANK_ROWS = 32
#: semaphores guarding the VPM banks (semaphore 0 is launch.DONE_SEMAPHORE)
BANK_LOCKS = (1, 2)
#: A columns in flight through the TMU (4: the most the FIFO holds reliably, spec section 11)
MAX_TMU_DEPTH = 4


def _acc(j: int):
    """Register holding column j of the tile: alternate files so that neighbours never collide."""
    return REGFILE_A[j // 2] if j % 2 == 0 else REGFILE_B[j // 2]


def vpm_banks(nt: int) -> int:
    """VPM banks for tiles of `nt` columns: two when a tile fits in BANK_ROWS rows."""
    return 2 if nt <= BANK_ROWS else 1


def record_words(nt: int, residual: bool) -> int:
    """Words of one tile record in the uniforms (see `_tile_record`)."""
    return 3 + (2 if residual else 0) + 3 * (nt // 16)


@qpu
def sgemm_kernel(asm, nt: int, act: Optional[str], residual: bool, depth: int):
    """`depth` (2..4): A columns in flight in the TMU FIFO (K >= depth).
    Uniforms: header (first record address, tile count, instance index, instance count, K - depth,
    A row stride, record bytes, R row stride, A column step, tiles that start at a barrier), then
    per tile: A[i0, 0], rows - 1,
    panel address, [R[i0, j0], byte offset of the last valid column], and per 16-column block
    (VDW setup or 0 = not stored, VDW stride setup, C address)."""
    nb = nt // 16
    acc = [_acc(j) for j in range(nt)]
    rec_ptr, tiles, a_stride, kmain = ra24, ra30, ra25, rb25
    thread, rec_bytes, n_threads, six = ra26, rb26, ra27, rb27
    resume, r_stride, rowsel, bank, a_kstep = ra28, rb28, ra29, ra31, rb29
    synced = rb24

    mov(rec_ptr, uniform)
    mov(tiles, uniform)
    mov(thread, uniform)
    mov(n_threads, uniform)
    mov(kmain, uniform)
    mov(a_stride, uniform)
    mov(rec_bytes, uniform)
    mov(r_stride, uniform)
    mov(a_kstep, uniform)
    mov(synced, uniform)
    if act == "relu6":
        ldi(six, 6.0)
    band(bank, thread, 1, set_flags=False)           # VPM bank (used when there are two)
    launching.emit_bank_locks_init(asm, thread, BANK_LOCKS[:vpm_banks(nt)])

    def mac(j: int, **kw):
        """Instruction j of a k-step: accumulate column j-1's product, form column j's."""
        prev = acc[(j - 1) % nt]
        fadd(prev, prev, r0, set_flags=False, **kw).fmul(r0, r4, uniform)

    L.tile_loop
    launching.emit_barrier(asm, thread, n_threads, synced)
    mov(null, tiles, set_flags=True)
    jzs(L.tiles_done)
    mov(uniforms_address, rec_ptr)                   # delay slots: start this tile's record
    iadd(resume, rec_ptr, 12, set_flags=False)       # where the record continues after the panel
    iadd(rec_ptr, rec_ptr, rec_bytes, set_flags=False)
    for j in range(0, nt, 2):                        # also covers the uniforms_address latency
        mov(acc[j], 0.0).mov(acc[j + 1], 0.0)
    mov(r1, uniform)                                 # &A[i0, 0]
    mov(r2, uniform)                                 # valid rows - 1
    imin(r2, element_number, r2, set_flags=False)    # row of element e, clamped into A
    mov(rowsel, r2).imul24(r2, r2, a_stride)
    iadd(r1, r1, r2, set_flags=False)                # r1[e] = &A[i0 + min(e, rows-1), 0]
    mov(r3, uniform)                                 # panel address
    for _ in range(depth):                           # request columns 0 .. depth-1
        iadd(r1, r1, a_kstep, set_flags=False).mov(tmu0_s, r1)
    mov(uniforms_address, r3)                        # the panel streams from here on
    mov(r2, kmain, set_flags=True)
    mov(r0, 0.0)                                     # first fadd of mac(0) adds nothing
    nop(sig="load tmu0")                             # r4 = column 0
    jzs(L.tail)                                      # K == depth: no steady-state step
    mac(0)
    mac(1)
    mac(2)
    L.k_loop                                         # steps k = 0 .. K-depth-1
    for j in range(3, nt - 1):
        mac(j)
    mac(nt - 1, sig="load tmu0")                     # r4 = column k+1 (this fmul sees column k)
    iadd(r1, r1, a_kstep, set_flags=False).mov(tmu0_s, r1)   # request column k+depth
    isub(r2, r2, 1, set_flags=True)
    jzc(L.k_loop)
    mac(0)
    mac(1)
    mac(2)
    L.tail                                           # the last `depth` steps request nothing
    for step in range(depth):
        for j in range(3 if step == 0 else 0, nt - 1):
            mac(j)
        mac(nt - 1, **({"sig": "load tmu0"} if step < depth - 1 else {}))
    fadd(acc[nt - 1], acc[nt - 1], r0, set_flags=False)

    # ---- epilogue: bias from the stream, activation, residual ----
    for j in range(nt):
        fadd(acc[j], acc[j], uniform, set_flags=False)
    mov(uniforms_address, resume)
    if act is None:
        nop()                                        # uniforms_address latency
        nop()
    if act in ("relu", "relu6"):
        mov(r2, 0.0)
        for j in range(nt):
            fmax(acc[j], acc[j], r2, set_flags=False)
    if act == "relu6":
        mov(r3, six)
        for j in range(nt):
            fmin(acc[j], acc[j], r3, set_flags=False)
    if residual:
        mov(r1, uniform)                             # &R[i0, j0]
        mov(r2, uniform)                             # byte offset of the last valid column
        imul24(r3, rowsel, r_stride)
        iadd(r1, r1, r3, set_flags=False)            # r1[e] = &R[i0 + min(e, rows-1), j0]
        iadd(r2, r1, r2, set_flags=False)            # last valid address of that row
        mov(r3, 4)
        depth = 3

        def request():
            imin(tmu0_s, r1, r2, set_flags=False)
            iadd(r1, r1, r3, set_flags=False)

        for _ in range(min(depth, nt)):
            request()
        for j in range(nt):
            nop(sig="load tmu0")
            fadd(acc[j], acc[j], r4, set_flags=False)
            if j + depth < nt:
                request()

    # ---- store: 16x16 blocks through the VPM bank of this instance, under its lock ----
    banks = vpm_banks(nt)
    if banks > 1:
        mov(null, bank, set_flags=True)
        jzc(L.bank1)
        nop()
        nop()
        nop()
    for k in range(banks):
        if k == 1:
            L.bank1
        sema_down(BANK_LOCKS[k])
        for b in range(nb):
            mov(r2, uniform, set_flags=True)         # VDW setup, 0 = block past N
            jzs(L[f"stored{k}"])
            mov(r3, uniform)                         # delay slots: VDW stride setup,
            mov(r1, uniform)                         # C address,
            setup_vpm_write(mode="32bit vertical", Y=BANK_ROWS * k + 16 * b, X=0)   # VPM setup
            for c in range(16):
                mov(vpm, acc[16 * b + c])
            if b > 0:
                wait_dma_store()                     # block b-1 has left the VPM
            mov(vpmvcd_wr_setup, r3)
            mov(vpmvcd_wr_setup, r2)
            mov(vpm_st_addr, r1)
        L[f"stored{k}"]
        wait_dma_store()
        sema_up(BANK_LOCKS[k])
        if k + 1 < banks:
            jmp(L.store_done)
            nop()
            nop()
            nop()
    L.store_done
    jmp(L.tile_loop)
    isub(tiles, tiles, 1, set_flags=False)
    nop()
    nop()

    L.tiles_done
    launching.emit_join_and_exit(asm, thread, n_threads, BANK_LOCKS[:banks])


def panel_width(m: int, n: int, n_qpus: int = isa.NUM_QPUS) -> int:
    """The NT of `PANEL_WIDTHS` with the fewest modelled instructions on the busiest QPU."""
    def cost(nt):
        tiles = math.ceil(m / ROWS) * math.ceil(n / nt)
        return math.ceil(tiles / n_qpus) * (nt + K_STEP_OVERHEAD), -nt
    return min(PANEL_WIDTHS, key=cost)


def pack_weights(b: np.ndarray, bias: Optional[np.ndarray], m: int) -> np.ndarray:
    """B (K x N) and bias (N) in the kernel's panel layout (float32, 1-D); `m` is the row count C
    will have (it picks the panel width, as `build` does). Upload the result once."""
    b = np.asarray(b, dtype=np.float32)
    if b.ndim != 2 or b.shape[0] < 2 or b.shape[1] < 1:
        raise KernelShapeError(f"B of shape {b.shape}: give a K x N matrix with K >= 2, N >= 1")
    k, n = b.shape
    bias = np.zeros(n, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(-1)
    if bias.shape != (n,):
        raise KernelShapeError(f"bias of {bias.size} values for N = {n} columns")
    nt = panel_width(m, n)
    panels = math.ceil(n / nt)
    out = np.zeros((panels, k + 1, nt), np.float32)
    padded = np.zeros((k + 1, panels * nt), np.float32)
    padded[:k, :n] = b
    padded[k, :n] = bias
    out[:] = padded.reshape(k + 1, panels, nt).transpose(1, 0, 2)
    return out.reshape(-1)


def barrier_pays(m: int, k: int, nt: int, n_qpus: int = isa.NUM_QPUS) -> bool:
    """Whether the instances should start each tile together (launch.emit_barrier): they then
    stream one weight panel side by side instead of each from SDRAM, but also finish together and
    queue for the one VDW engine. Worth it when at least half of them work on the same panel
    (M spans n_qpus / 2 row tiles or more) and a tile's k-loop lasts five times as long as the
    queued stores of a round."""
    rounds_stores = n_qpus * (nt // 16) * STORE_BLOCK_CYCLES
    return math.ceil(m / ROWS) >= n_qpus // 2 and 4 * k * (nt + K_STEP_OVERHEAD) >= 5 * rounds_stores


def _tile_cycles(k: int, nt: int, residual: bool) -> float:
    instructions = 40 + k * (nt + K_STEP_OVERHEAD) + nt * (4 + (4 if residual else 0)) + 25 * (nt // 16)
    return 4.0 * instructions + STORE_BLOCK_CYCLES * (nt // 16)


def build(drv, m: int, k: int, n: int, a_address: int, a_stride: int, weights_address: int,
          c_address: int, c_stride: int, act: Optional[str] = None,
          residual_address: Optional[int] = None, residual_stride: Optional[int] = None,
          a_column_step: int = 4) -> List[Launch]:
    """Launches computing C = act(A @ B + bias) (+ R) for the packed weights at `weights_address`
    (`pack_weights(B, bias, m)`). Addresses are bus addresses, strides in bytes. A[i, k] is at
    a_address + i * a_stride + k * a_column_step: the default 4 is a row-major A; a_stride = 4
    with a_column_step = 4 * M reads A transposed (an NHWC tensor's channels as rows)."""
    if act not in ACTIVATIONS:
        raise KernelShapeError(f"act={act!r}: the sgemm epilogue supports {ACTIVATIONS}")
    if m < 1 or n < 1 or k < 2:
        raise KernelShapeError(f"M={m}, K={k}, N={n}: the kernel needs M >= 1, N >= 1 and K >= 2 "
                               "(run K = 1 products on the host)")
    residual = residual_address is not None
    if a_column_step == 4:
        launching.check_row_span("A", m, 4 * k, a_stride)
    elif a_column_step % 4 or a_stride % 4 or a_column_step <= 0 or a_stride <= 0:
        raise KernelShapeError(f"A strides {a_stride}, {a_column_step}: give positive multiples of 4")
    _, c_span = launching.check_row_span("C", m, 4 * n, c_stride)
    if residual:
        _, r_span = launching.check_row_span("R", m, 4 * n, residual_stride)
        if residual_address < c_address + c_span and c_address < residual_address + r_span:
            raise KernelShapeError("R overlaps C: the kernel reads R through the TMU while it "
                                   "stores C, so give R its own buffer")
    nt = panel_width(m, n)
    depth = min(MAX_TMU_DEPTH, k)
    program = launching.cached_program(drv, sgemm_kernel, nt, act, residual, depth)
    panel_bytes = 4 * (k + 1) * nt
    # panel-major: the instances running side by side stream the same panel (L2 hits)
    tiles = [(i0, p) for p in range(math.ceil(n / nt)) for i0 in range(0, m, ROWS)]
    cycles = [_tile_cycles(k, nt, residual)] * len(tiles)
    plan = launching.split_items(cycles, launching.launch_budget_cycles(drv))
    rec = record_words(nt, residual)
    barrier = barrier_pays(m, k, nt)

    def synced_tiles(instances):
        return min(map(len, instances)) if barrier else 0

    rows_per_launch = []
    for instances in plan:
        rows = []
        for t, items in enumerate(instances):
            header = [0, len(items), t, len(instances), k - depth, a_stride, 4 * rec,
                      residual_stride or 0, a_column_step, synced_tiles(instances)]
            body: List[int] = []
            vpm_y = BANK_ROWS * (t % vpm_banks(nt))
            for index in items:
                body += _tile_record(tiles[index], m, n, nt, a_address, a_stride, weights_address,
                                     panel_bytes, c_address, c_stride, residual_address,
                                     residual_stride, vpm_y)
            rows.append(header + body)
        rows_per_launch.append(rows)
    launches = launching.launch_rows(drv, program, rows_per_launch)
    for lc in launches:                              # each row's first word: its first record
        lc.uniforms[:, 0] = lc.uniforms.addresses()[:, 0] + 4 * HEADER_WORDS
    return launches


def _tile_record(tile, m, n, nt, a_address, a_stride, weights_address, panel_bytes, c_address,
                 c_stride, residual_address, residual_stride, vpm_y) -> List[int]:
    i0, p = tile
    j0 = p * nt
    rows = min(ROWS, m - i0)
    cols = min(nt, n - j0)
    words = [a_address + i0 * a_stride, rows - 1, weights_address + p * panel_bytes]
    if residual_address is not None:
        words += [residual_address + i0 * residual_stride + 4 * j0, 4 * (cols - 1)]
    for b in range(nt // 16):
        bcols = min(16, cols - 16 * b)
        if bcols <= 0:
            words += [0, 0, 0]
            continue
        words += [launching.vdw_store_setup(rows, bcols, vpm_y + 16 * b),
                  launching.vdw_stride_setup(c_stride - 4 * bcols),
                  c_address + i0 * c_stride + 4 * (j0 + 16 * b)]
    return words
