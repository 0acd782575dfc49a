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
follows the panel and is added from the same stream. A uniforms-cache miss stalls the QPU for a
whole SDRAM fetch, so TMU1 reads the panel a few rows ahead (its data dropped): the uniform
stream then finds the rows in the L2C. Rows past M read a clamped row (row M-1) and are never
stored. The epilogue adds bias, applies relu/relu6, adds R (TMU reads of R, clamped to
its valid columns), then writes column j of the tile into VPM row j (16 rows of C across the
row) and stores it with vertical DMAs (memory row r = VPM column r), whose row and column counts
cut the M and N edges. The VPM is shared by all QPUs: tiles of up to 32 columns use one of two
32-row banks (even instances bank 0, odd ones bank 1), each guarded by a semaphore used as a lock,
so one bank is filled while the other one's DMA runs, and leave in one DMA (one start-up per tile:
the stores bound the wide-output layers); 48-column tiles use one 48-row bank and leave in three
16-column DMAs, the VPM writes of block b+1 overlapping the DMA of block b.

The instances store in turn (`tile_sync`): instance t waits for its token semaphore, stores,
and raises instance t+1's once its DMA has started (with one bank: once it has finished), so
no instance starves on a busy lock, whatever order the hardware wakes semaphore waiters in.
Shapes with long k-loops start each tile at a barrier instead (`barrier_pays`).

Tiles are ordered panel-major (or row-tile-major for a few small panels: `rows_first`) and dealt
to 12 QPUs round-robin (`launch.split_items`), so the QPUs running side by side stream the same
panel, or read the same A rows (L2 hits); every QPU reads its own uniforms row:
a header, then one record per tile. A may also be read transposed (`a_column_step`), which makes
a global average pool an SGEMM (qpu_kernels.pooling). The *gather* variant reads A[i, k] at
A_row(i) + offset[k], the offsets streamed with the panel (`gather_depth`): an im2col read of
a convolution's input, done by the TMU with no copy (qpu_kernels.conv_stem). The program is
assembled once per (NT, activation, residual, TMU depth, gather, ordered) and shared by all launches of
all layers.
"""
from __future__ import annotations

import functools
import math
from typing import List, Optional

import numpy as np

from vc4infer.emu import timing
from vc4infer.qpu import isa, qpu
from vc4infer.qpu.macros import vpm_write_setup_word
from vc4infer.qpu import ra as REGFILE_A
from vc4infer.qpu import rb as REGFILE_B

from . import launch as launching
from .launch import KernelShapeError, Launch

ACTIVATIONS = (None, "relu", "relu6")
PANEL_WIDTHS = (16, 32, 48)
ROWS = isa.SIMD_WIDTH                     # rows of C per tile: one per SIMD element
HEADER_WORDS = 10
#: instructions per k-step beyond the NT multiply-adds: A request, panel prefetch, loop counter,
#: branch
K_STEP_OVERHEAD = 4
#: VPM rows of one bank; tiles of up to 32 columns use two banks (instances alternate), wider ones
#: the whole 48 rows
BANK_ROWS = 32
#: semaphores guarding the VPM banks (semaphore 0 is launch.DONE_SEMAPHORE)
BANK_LOCKS = (1, 2)
#: semaphores passing the turn to store (`ordered`): instance t waits on the t-th, then raises
#: the next instance's. They reuse the barrier's numbers: a program has one or the other.
STORE_TOKENS = tuple(range(3, 3 + isa.NUM_QPUS))
#: bytes of one semaphore stub (4 instructions): stub i is at table + (i << STUB_SHIFT)
STUB_SHIFT = 5
#: A columns in flight through the TMU (4: the most the FIFO holds reliably, spec section 11)
MAX_TMU_DEPTH = 4
#: panel prefetches in flight through TMU1 (`prefetch_in_flight`): with MAX_TMU_DEPTH A columns
#: on TMU0, 7 of the 8 results a QPU's receive FIFOs hold
MAX_PREFETCH_IN_FLIGHT = 3


def prefetch_in_flight(depth: int, gather: bool) -> int:
    """TMU1 requests in flight that bring the weight panel's next rows into the L2C before the
    uniform stream reaches them (a uniforms-cache miss stalls the QPU for the whole SDRAM fetch,
    a TMU request does not). Each k-step requests the row `prefetch_lead_steps` ahead and pops
    the request made `prefetch_in_flight` steps before (its data is dropped); the last `depth`
    steps request nothing, so no prefetch reads past the panel's bias row. 0: no prefetch (the
    gather variant, whose stream interleaves offsets, is used for short panels only)."""
    return 0 if gather else min(MAX_PREFETCH_IN_FLIGHT, depth - 1)


def prefetch_lead_steps(depth: int, gather: bool) -> int:
    """How many k-steps ahead of the uniform stream the panel prefetch reads: one more than the
    requests in flight, about 4 x 80 cycles at NT = 16, over the ~170-cycle SDRAM fetch at 400
    MHz. Longer leads model slower: the 12 QPUs' A lines evict the rows before they are read."""
    return prefetch_in_flight(depth, gather) + 1


def _acc(j: int):
    """Register holding column j of the tile: alternate files so that neighbours never collide."""
    return REGFILE_A[j // 2] if j % 2 == 0 else REGFILE_B[j // 2]


def vpm_banks(nt: int) -> int:
    """VPM banks for tiles of `nt` columns: two when a tile fits in BANK_ROWS rows."""
    return 2 if nt <= BANK_ROWS else 1


def store_block_cols(nt: int) -> int:
    """C columns per VDW store of a tile of `nt` columns: the whole tile in one transfer when the
    instances have two banks; with one bank, 16-column blocks, so that writing block b+1 into
    the VPM overlaps block b's transfer while the other instances wait for the bank."""
    return nt if vpm_banks(nt) > 1 else 16


def store_cycles(nt: int) -> float:
    """Modelled VDW cycles (at timing.DEFAULT_CLOCK_HZ, the planning clock) to store one tile of
    16 rows x `nt` columns (`store_block_cols` blocks, each a start-up plus its bytes)."""
    block = store_block_cols(nt)
    return (nt // block) * timing.dma_cycles(4 * ROWS * block, store=True)


def record_words(nt: int, residual: bool) -> int:
    """Words of one tile record in the uniforms (see `tile_record`)."""
    return 3 + (2 if residual else 0) + 3 * (nt // store_block_cols(nt))


@qpu
def sgemm_kernel(asm, nt: int, act: Optional[str], residual: bool, depth: int,
                 gather: bool = False, ordered: bool = False):
    """`depth` (2..4): A columns in flight in the TMU FIFO (K >= depth). `ordered`: the instances
    store their tiles in turn (`STORE_TOKENS`); otherwise a VPM bank goes to whichever instance
    the semaphore wakes, and tiles may start at a barrier. `gather`: A columns at
    the row addresses plus streamed offsets (the panel opens with the first `depth`; each panel
    row of a steady-state step ends with the one of column k + depth) instead of a fixed step.
    The panel is also read ahead through TMU1 (`prefetch_in_flight`).
    Uniforms: header (first record address, tile count, instance index, instance count, K - depth,
    A row stride, record bytes, R row stride, A column step, tiles that start at a barrier), then
    per tile: A[i0, 0], rows - 1,
    panel address, [R[i0, j0], byte offset of the last valid column], and per store block
    (`store_block_cols`: VDW setup or 0 = not stored, VDW stride setup, C address)."""
    acc = [_acc(j) for j in range(nt)]
    rec_ptr, tiles, a_stride, kmain = ra24, ra30, rb31, rb25
    thread, rec_bytes, n_threads, six = ra26, rb26, ra27, rb27
    resume, r_stride, rowsel, a_kstep = ra28, rb28, ra29, rb29
    vpm_setup, synced = rb30, rb24
    # stub offsets (branch registers are in regfile A): this instance's stubs, the next one's
    my_stub, next_stub = ra31, ra25
    banks = vpm_banks(nt)
    bank_locks = BANK_LOCKS[:banks] if banks > 1 or not ordered else ()
    raised = bank_locks + (STORE_TOKENS[:1] if ordered else ())   # by instance 0, at the start

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
    prefetch = prefetch_in_flight(depth, gather)
    if prefetch:
        ldi(broadcast, 4 * nt)                       # r5: bytes of one panel row
    band(r0, thread, banks - 1, set_flags=False)     # VPM bank: instance parity, or 0
    shl(my_stub, (thread if ordered else r0), STUB_SHIFT, set_flags=False)
    bank0_setup = vpm_write_setup_word("32bit horizontal", Y=0)
    ldi(r1, vpm_write_setup_word("32bit horizontal", Y=BANK_ROWS) - bank0_setup)
    imul24(r0, r0, r1)
    ldi(r1, bank0_setup)
    iadd(vpm_setup, r1, r0, set_flags=False)         # column j of the tile -> bank row j
    if ordered:
        iadd(r0, thread, 1, set_flags=False)
        isub(null, r0, n_threads)
        mov(r0, 0, cond="zs")                        # the last instance hands on to instance 0
        shl(next_stub, r0, STUB_SHIFT, set_flags=False)
    launching.emit_bank_locks_init(asm, thread, raised)

    def mac(j: int, **kw):
        """Instruction j of a k-step: accumulate column j-1's product, form column j's."""
        prev = acc[(j - 1) % nt]
        fadd(prev, prev, r0, set_flags=False, **kw).fmul(r0, r4, uniform)

    L.tile_loop
    if not ordered:
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
    if gather:
        mov(uniforms_address, r3)                    # the panel opens with the first offsets
        mov(r2, kmain, set_flags=True)
        mov(r0, 0.0)                                 # first fadd of mac(0) adds nothing
        nop()                                        # (the new stream starts 3 instructions on)
        for _ in range(depth):                       # request columns 0 .. depth-1
            iadd(tmu0_s, r1, uniform, set_flags=False)
    else:
        for _ in range(depth):                       # request columns 0 .. depth-1
            iadd(r1, r1, a_kstep, set_flags=False).mov(tmu0_s, r1)
        mov(uniforms_address, r3)                    # the panel streams from here on
        if prefetch:                                 # r3[e]: word e x NT/16 of panel row
            imul24(r2, element_number, 4 * (nt // ROWS))     # lead - prefetch
            iadd(r3, r3, r2, set_flags=False)
            ldi(r2, 4 * nt * (prefetch_lead_steps(depth, gather) - prefetch))
            iadd(r3, r3, r2, set_flags=False)
            for _ in range(prefetch):
                iadd(r3, r3, r5, set_flags=False).mov(tmu1_s, r3)
            imul24(r2, kmain, r5)                    # the k counter steps by r5: no small
            mov(null, r2, set_flags=True)            # immediate, so the step can pop TMU0
        else:
            mov(r2, kmain, set_flags=True)
        mov(r0, 0.0)                                 # first fadd of mac(0) adds nothing
    nop(sig="load tmu0")                             # r4 = column 0
    jzs(L.tail)                                      # K == depth: no steady-state step
    mac(0)
    mac(1)
    mac(2)
    L.k_loop                                         # steps k = 0 .. K-depth-1
    for j in range(3, nt - 1):
        mac(j)
    # r4 = column k+1 (this fmul sees column k); with prefetch, after dropping the oldest one
    mac(nt - 1, sig="load tmu1" if prefetch else "load tmu0")
    if gather:                                       # request column k+depth
        iadd(tmu0_s, r1, uniform, set_flags=False)
    else:
        iadd(r1, r1, a_kstep, set_flags=False).mov(tmu0_s, r1)
    if prefetch:                                     # panel row k + lead
        iadd(r3, r3, r5, set_flags=False).mov(tmu1_s, r3)
    if prefetch:
        isub(r2, r2, r5, set_flags=True, sig="load tmu0")
    else:
        isub(r2, r2, 1, set_flags=True)
    jzc(L.k_loop)
    mac(0)
    mac(1)
    mac(2)
    L.tail                                           # the last `depth` steps request nothing
    for step in range(depth):
        for j in range(3 if step == 0 else 0, nt - 1):
            mac(j)
        if step < prefetch:                          # drop a prefetch, then take column k+1
            mac(nt - 1, sig="load tmu1")
            nop(sig="load tmu0")
        else:
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

    # ---- store: the tile as C columns in VPM rows, leaving in vertical DMAs. Ordered: wait for
    # this instance's turn (and bank), hand the turn on once the DMA has started (with one bank:
    # once it has left the VPM). Otherwise: take the bank, store, give the bank back. ----
    jmp(L.take, reg=my_stub)
    mov(vpmvcd_wr_setup, vpm_setup)
    nop()
    nop()
    L.taken
    block = store_block_cols(nt)
    for b in range(nt // block):
        mov(r2, uniform, set_flags=True)             # VDW setup, 0 = block past N
        jzs(L.stored)
        mov(r3, uniform)                             # delay slots: VDW stride setup,
        mov(r1, uniform)                             # C address
        nop()
        for c in range(block):
            mov(vpm, acc[block * b + c])
        if b > 0:
            wait_dma_store()                         # block b-1 has left the VPM
        mov(vpmvcd_wr_setup, r3)
        mov(vpmvcd_wr_setup, r2)
        mov(vpm_st_addr, r1)
    L.stored
    if ordered and bank_locks:
        jmp(L.hand_on, reg=next_stub)
        nop()
        nop()
        nop()
        L.handed_on
    wait_dma_store()
    if ordered and not bank_locks:
        jmp(L.hand_on, reg=next_stub)
        nop()
        nop()
        nop()
        L.handed_on
    if bank_locks:
        jmp(L.give, reg=my_stub)
        nop()
        nop()
        nop()
        L.given
    jmp(L.tile_loop)
    isub(tiles, tiles, 1, set_flags=False)
    nop()
    nop()

    # ---- semaphore stubs, one per instance (ordered) or bank, picked by a register offset (a
    # semaphore number is an immediate of the instruction) ----
    def stubs(name, back, ops):
        L[name]
        for i in range(isa.NUM_QPUS if ordered else banks):
            jmp(L[back])
            for op, sems in ops:
                op(sems[i % len(sems)])
            for _ in range(3 - len(ops)):
                nop()

    if ordered:
        take = [(sema_down, STORE_TOKENS)] + ([(sema_down, bank_locks)] if bank_locks else [])
        stubs("take", "taken", take)
        stubs("hand_on", "handed_on", [(sema_up, STORE_TOKENS)])
    else:
        stubs("take", "taken", [(sema_down, bank_locks)])
    if bank_locks:
        stubs("give", "given", [(sema_up, bank_locks)])

    L.tiles_done
    launching.emit_join_and_exit(asm, thread, n_threads, raised)


def panel_width(m: int, k: int, n: int, n_qpus: int = isa.NUM_QPUS) -> int:
    """The NT of `PANEL_WIDTHS` whose busiest QPU or VDW finishes first (modelled cycles): the
    k-loops of the busiest instance, or the stores of every tile, which queue for the one VDW
    engine, and with one VPM bank (NT = 48) also for the bank, while the VPM is written."""
    def cost(nt):
        tiles = math.ceil(m / ROWS) * math.ceil(n / nt)
        compute = math.ceil(tiles / n_qpus) * _tile_cycles(k, nt, False)
        locked_writes = 4 * nt if vpm_banks(nt) == 1 else 0
        stores = tiles * (store_cycles(nt) + locked_writes)
        return max(compute, stores), -nt
    return min(PANEL_WIDTHS, key=cost)


def pack_weights(b: np.ndarray, bias: Optional[np.ndarray], m: int,
                 gather_depth: int = 0) -> np.ndarray:
    """B (K x N) and bias (N) in the kernel's panel layout (float32, 1-D); `m` is the row count C
    will have (it picks the panel width, as `build` does); `gather_depth` > 0 leaves the offset
    slots of the gather variant (`set_gather_offsets`). Upload the result once."""
    b = np.asarray(b, dtype=np.float32)
    if b.ndim != 2 or b.shape[0] < 2 or b.shape[1] < 1:
        raise KernelShapeError(f"B of shape {b.shape}: give a K x N matrix with K >= 2, N >= 1")
    k, n = b.shape
    bias = np.zeros(n, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(-1)
    if bias.shape != (n,):
        raise KernelShapeError(f"bias of {bias.size} values for N = {n} columns")
    nt = panel_width(m, k, n)
    panels = math.ceil(n / nt)
    padded = np.zeros((k + 1, panels * nt), np.float32)
    padded[:k, :n] = b
    padded[k, :n] = bias
    rows = padded.reshape(k + 1, panels, nt).transpose(1, 0, 2)       # panel, row, column
    if not gather_depth:
        return np.ascontiguousarray(rows).reshape(-1)
    # gather: `depth` offset slots open the panel; each steady-state row k (k < K - depth) ends
    # with a slot for the offset of column k + depth
    d, steady = gather_depth, k - gather_depth
    out = np.zeros((panels, panel_words(k, nt, d)), np.float32)
    out[:, d:d + steady * (nt + 1)].reshape(panels, steady, nt + 1)[:, :, :nt] = rows[:, :steady]
    out[:, d + steady * (nt + 1):] = rows[:, steady:].reshape(panels, -1)
    return out.reshape(-1)


def panel_words(k: int, nt: int, gather_depth: int = 0) -> int:
    """Words of one packed panel: K rows of NT and the bias row, and with gather K offset slots."""
    return (k + 1) * nt + (k if gather_depth else 0)


def set_gather_offsets(panels: np.ndarray, k: int, nt: int, depth: int, offsets) -> None:
    """Write the K column offsets (bytes) into the slots of packed gather panels (a float32
    array laid out by `pack_weights(..., gather_depth=depth)`)."""
    words = panels.view(np.uint32).reshape(-1, panel_words(k, nt, depth))
    offsets = np.asarray(offsets, np.int64) & 0xFFFFFFFF
    words[:, :depth] = offsets[:depth]
    steady = k - depth
    slots = words[:, depth:depth + steady * (nt + 1)].reshape(words.shape[0], steady, nt + 1)
    slots[:, :, nt] = offsets[depth:]


def barrier_pays(m: int, k: int, nt: int, n_qpus: int = isa.NUM_QPUS) -> bool:
    """Whether the instances should start each tile together (launch.emit_barrier): they then
    stream one weight panel side by side instead of each from SDRAM, but also finish together and
    queue for the one VDW engine. Worth it when at least half of them work on the same panel
    (M spans n_qpus / 2 row tiles or more) and a tile's k-loop lasts five times as long as the
    queued stores of a round."""
    rounds_stores = n_qpus * store_cycles(nt)
    return math.ceil(m / ROWS) >= n_qpus // 2 and 4 * k * (nt + K_STEP_OVERHEAD) >= 5 * rounds_stores


def tile_sync(m: int, k: int, nt: int) -> str:
    """How the instances pace their tiles: "barrier" where `barrier_pays`, else "ordered": they
    store in turn. A VPM bank lock is busy most of the time whenever the stores, which queue
    for the one VDW engine, take a good part of a tile's time; which waiting instance a
    semaphore then wakes decides who progresses, and an instance that keeps losing ends long
    after the others (the guide does not say how the hardware picks). Taking turns keeps every
    instance within a round of stores of the others."""
    return "barrier" if barrier_pays(m, k, nt) else "ordered"


def _tile_cycles(k: int, nt: int, residual: bool) -> float:
    instructions = 40 + k * (nt + K_STEP_OVERHEAD) + nt * (4 + (4 if residual else 0)) + 25 * (nt // 16)
    return 4.0 * instructions + store_cycles(nt)


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
    nt = panel_width(m, k, n)
    panel_bytes = 4 * panel_words(k, nt)
    records = []
    panels, row_tiles = math.ceil(n / nt), math.ceil(m / ROWS)
    tiles = [(p, i0) for p in range(panels) for i0 in range(0, m, ROWS)]
    if rows_first(row_tiles, panels, 4 * ROWS * k, panel_bytes):
        tiles.sort(key=lambda tile: (tile[1], tile[0]))
    for p, i0 in tiles:
        r_row0 = None if residual_address is None else residual_address + i0 * residual_stride
        records.append(functools.partial(
            tile_record, a_address + i0 * a_stride, min(ROWS, m - i0),
            weights_address + p * panel_bytes, c_address + i0 * c_stride, c_stride, p * nt, n,
            nt, r_row0=r_row0))
    return launches_of(drv, records, k, nt, act, residual, a_stride, residual_stride or 0,
                       a_column_step, tile_sync(m, k, nt))


#: how much more an SDRAM byte of the weight panel costs than one of A (`rows_first`); chosen
#: between the two pure cases: 1 when latency is fully hidden, 2 when fully exposed
PANEL_MISS_WEIGHT = 1.5


def rows_first(row_tiles: int, panels: int, a_tile_bytes: int, panel_bytes: int,
               n_qpus: int = isa.NUM_QPUS) -> bool:
    """Whether to deal the tiles row-tile-major instead of panel-major. The instances running
    side by side share, through the L2, the panels and A tiles they read at the same time; the
    order whose round of n_qpus tiles fetches fewer bytes from SDRAM wins: panel-major (a panel
    shared by up to n_qpus row tiles) for many or large panels, row-major (A shared by the
    panels) for a few small ones. Panel bytes weigh PANEL_MISS_WEIGHT times as much: a miss in
    the uniform stream stalls the QPU for the whole fetch, where four TMU requests in flight
    hide part of an A fetch."""
    def round_bytes(outer: int, inner: int, outer_bytes: float, inner_bytes: float) -> float:
        outer_in_round = math.ceil(n_qpus / inner) if inner < n_qpus else 1
        return min(outer_in_round, outer) * outer_bytes + min(n_qpus, inner) * inner_bytes
    weighted_panel = PANEL_MISS_WEIGHT * panel_bytes
    return round_bytes(row_tiles, panels, a_tile_bytes, weighted_panel) < \
        round_bytes(panels, row_tiles, weighted_panel, a_tile_bytes)


def launches_of(drv, records: list, k: int, nt: int, act: Optional[str], residual: bool,
                a_stride: int, residual_stride: int, a_column_step: int, sync: Optional[str],
                gather: bool = False) -> List[Launch]:
    """Launches running one tile per entry of `records` (functions of the instance's VPM row,
    `tile_record` with all else bound, giving the tile's record words), dealt to the QPUs in
    order; `sync` as `tile_sync` gives it."""
    depth = min(MAX_TMU_DEPTH, k)
    ordered = sync == "ordered"
    program = launching.cached_program(drv, sgemm_kernel, nt, act, residual, depth, gather, ordered)
    cycles = [_tile_cycles(k, nt, residual)] * len(records)
    plan = launching.split_items(cycles, launching.launch_budget_cycles(drv))
    rec = record_words(nt, residual)
    store_words = 3 * (nt // store_block_cols(nt))
    rows_per_launch = []
    for instances in plan:
        synced = min(map(len, instances)) if sync == "barrier" else 0
        turns = max(map(len, instances))
        rows = []
        for t, items in enumerate(instances):
            vpm_y = BANK_ROWS * (t % vpm_banks(nt))
            words = [w for index in items for w in records[index](vpm_y)]
            if ordered:           # every instance takes every turn: a short one idles through
                idle = records[items[0]](vpm_y)[:rec - store_words] + [0] * store_words
                words += idle * (turns - len(items))
            header = [0, turns if ordered else len(items), t, len(instances), k - depth, a_stride,
                      4 * rec, residual_stride, a_column_step, synced]
            rows.append(header + words)
        rows_per_launch.append(rows)
    return launching.launch_rows(drv, program, rows_per_launch, record_pointer_words=HEADER_WORDS)


def tile_record(a_row0: int, rows: int, panel_address: int, c_row0: int, c_stride: int, j0: int,
                n: int, nt: int, vpm_y: int, r_row0: Optional[int] = None) -> List[int]:
    """The uniforms of one tile: A's first row, valid rows - 1, its panel, R's first row and
    last valid column, then per 16-column block its VDW store (setup, stride, C address; zeros
    for a block past N)."""
    cols = min(nt, n - j0)
    words = [a_row0, rows - 1, panel_address]
    if r_row0 is not None:
        words += [r_row0 + 4 * j0, 4 * (cols - 1)]
    block = store_block_cols(nt)
    for b in range(nt // block):
        bcols = min(block, cols - block * b)
        if bcols <= 0:
            words += [0, 0, 0]
            continue
        words += [launching.vdw_store_setup(rows, bcols, vpm_y + block * b, vertical=True),
                  launching.vdw_stride_setup(c_stride - 4 * bcols),
                  c_row0 + 4 * (j0 + block * b)]
    return words
