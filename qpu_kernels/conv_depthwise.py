"""NHWC depthwise 3x3 convolution on the QPUs: stride 1 or 2, explicit padding, fused bias and
relu/relu6, any channel count.

SIMD element e works on channel c0 + e of a 16-channel block. One work item is up to 16 output
pixels of one output row in one channel block. The item's 9 tap weights and its bias arrive
through the TMU into registers; then, for each of the 16 pixels and each of the 9 taps, the 16
input channels of that tap are one TMU request (eight in flight, alternating between the two
TMUs) and one multiply-add, the bias
being the sum's starting value. The host computes every tap's address once, at load, and passes
it through the uniform stream (`iadd(tmu0_s, uniform, lane offset)`); taps in the padding point
at a zero vector stored after the packed weights, so the kernel has no edge cases and never
reads outside the input. Elements past the last channel read the last channel (lane offsets are
clamped) and are not stored. The item's 16 output vectors go to 16 VPM rows (horizontal) and
leave with one DMA store of npix rows x valid channels. The VPM is shared by all QPUs: it is cut
into two banks of 16 rows, each guarded by a semaphore used as a lock, even instances using one
and odd instances the other, so that one bank is filled while the other one's DMA runs.

The layer is memory-bound (each 16-channel output vector costs 9 multiply-adds and 64 stored
bytes), so the kernel aims at keeping the VDW busy rather than at the ALU peak.
"""
from __future__ import annotations

import math
from typing import List, Optional

import numpy as np

from vc4infer.qpu import isa, qpu

from . import launch as launching
from .launch import KernelShapeError, Launch

ACTIVATIONS = (None, "relu", "relu6")
LANES = isa.SIMD_WIDTH
PIXELS = 16                                 # output pixels per work item
TAPS = 9                                    # 3 x 3
#: words per channel block in the packed weights: 9 tap vectors and the bias vector
BLOCK_WORDS = (TAPS + 1) * LANES
HEADER_WORDS = 3
RECORD_WORDS = 5 + PIXELS * TAPS
#: TMU requests in flight per TMU FIFO (the depth that is reliable on hardware, spec section 11)
TMU_DEPTH = 4
#: input taps in flight: both TMUs, TMU_DEPTH each (the ~36-cycle TMU latency needs > 4)
TAPS_IN_FLIGHT = 2 * TMU_DEPTH
#: modelled cycles of one item: 2 instructions per tap, ~60 more, the 1 KiB store
ITEM_CYCLES = 4 * (2 * PIXELS * TAPS + 60) + 270
#: semaphores guarding VPM rows 0-15 and 16-31 (semaphore 0 is launch.DONE_SEMAPHORE)
BANK_LOCKS = (1, 2)


@qpu
def depthwise_kernel(asm, act: Optional[str]):
    """Uniforms: header (item count, instance index, instance count), then per item: packed
    weights of its channel block, valid channels - 1, VDW setup, VDW stride setup, output address
    of its first pixel, and 16 x 9 tap addresses (input pixel at channel c0, or the zero vector)."""
    acc = [ra[p] for p in range(PIXELS)]
    w = [rb[q] for q in range(TAPS + 1)]        # w[9] = bias
    items, thread, n_threads, bank = ra16, ra17, ra18, ra19
    st_setup, st_stride, st_addr, six = rb10, rb11, rb12, rb13

    mov(items, uniform)
    mov(thread, uniform)
    mov(n_threads, uniform)
    if act == "relu6":
        ldi(six, 6.0)
    band(bank, thread, 1, set_flags=False)      # VPM bank of this instance
    launching.emit_bank_locks_init(asm, thread, BANK_LOCKS)

    L.item_loop
    mov(null, items, set_flags=True)
    jzs(L.items_done)
    nop()
    nop()
    nop()
    mov(r1, uniform)                            # packed weights of this channel block
    mov(r2, uniform)                            # valid channels - 1
    imin(r2, element_number, r2, set_flags=False)
    shl(r3, r2, 2, set_flags=False)             # r3[e]: byte offset of channel min(e, last)
    mov(st_setup, uniform)
    mov(st_stride, uniform)
    mov(st_addr, uniform)
    shl(r2, element_number, 2, set_flags=False)
    iadd(r1, r1, r2, set_flags=False)           # weights are padded: no clamp
    ldi(r2, LANES * 4)
    for _ in range(TMU_DEPTH):                  # weights and bias through the TMU
        iadd(r1, r1, r2, set_flags=False).mov(tmu0_s, r1)
    for q in range(TAPS + 1):
        nop(sig="load tmu0")
        mov(w[q], r4)
        if q + TMU_DEPTH < TAPS + 1:
            iadd(r1, r1, r2, set_flags=False).mov(tmu0_s, r1)

    total = PIXELS * TAPS
    fifo = [tmu0_s, tmu1_s]                     # tap t goes through TMU t % 2: 8 in flight
    pop = ["load tmu0", "load tmu1"]
    for t in range(TAPS_IN_FLIGHT):
        iadd(fifo[t % 2], uniform, r3, set_flags=False)
    nop(sig=pop[0])
    for t in range(total):
        p, q = divmod(t, TAPS)
        if t + TAPS_IN_FLIGHT < total:
            iadd(fifo[t % 2], uniform, r3, set_flags=False).fmul(r0, r4, w[q])
        else:
            fmul(r0, r4, w[q])
        start = w[TAPS] if q == 0 else acc[p]   # the bias starts each pixel's sum
        if t + 1 < total:
            fadd(acc[p], start, r0, set_flags=False, sig=pop[(t + 1) % 2])
        else:
            fadd(acc[p], start, r0, set_flags=False)

    if act in ("relu", "relu6"):
        mov(r2, 0.0)
        for p in range(PIXELS):
            fmax(acc[p], acc[p], r2, set_flags=False)
    if act == "relu6":
        mov(r2, six)
        for p in range(PIXELS):
            fmin(acc[p], acc[p], r2, set_flags=False)

    # The VPM is shared: two banks of 16 rows, each guarded by a semaphore used as a lock; even
    # instances use bank 0, odd ones bank 1, so one bank's DMA runs while the other is filled.
    mov(null, bank, set_flags=True)
    jzc(L.bank1)
    nop()
    nop()
    nop()
    for b in range(len(BANK_LOCKS)):
        if b == 1:
            L.bank1
        sema_down(BANK_LOCKS[b])
        setup_vpm_write(mode="32bit horizontal", Y=PIXELS * b)
        for p in range(PIXELS):
            mov(vpm, acc[p])
        mov(vpmvcd_wr_setup, st_stride)
        mov(vpmvcd_wr_setup, st_setup)
        mov(vpm_st_addr, st_addr)
        wait_dma_store()
        sema_up(BANK_LOCKS[b])
        if b == 0:
            jmp(L.stored)
            nop()
            nop()
            nop()
    L.stored
    jmp(L.item_loop)
    isub(items, items, 1, set_flags=False)
    nop()
    nop()

    L.items_done
    launching.emit_join_and_exit(asm, thread, n_threads, BANK_LOCKS)


def output_size(size: int, pad_before: int, pad_after: int, stride: int) -> int:
    """Output length of a 3-tap window along one axis."""
    return (size + pad_before + pad_after - 3) // stride + 1


def pack_weights(w: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """OHWI depthwise weights (C, 3, 3, 1) (or (C, 3, 3)) and bias (C) in the kernel's layout:
    per 16-channel block 9 tap vectors and the bias vector (zero past C), then one zero vector
    (what padding taps read). float32, 1-D; upload once."""
    w = np.asarray(w, np.float32)
    if w.ndim == 4 and w.shape[3] == 1:
        w = w[..., 0]
    if w.ndim != 3 or w.shape[1:] != (3, 3):
        raise KernelShapeError(f"weights of shape {w.shape}: a 3x3 depthwise conv has OHWI "
                               "weights (C, 3, 3, 1)")
    c = w.shape[0]
    bias = np.zeros(c, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(-1)
    if bias.shape != (c,):
        raise KernelShapeError(f"bias of {bias.size} values for {c} channels")
    blocks = math.ceil(c / LANES)
    table = np.zeros((TAPS + 1, blocks * LANES), np.float32)
    table[:TAPS, :c] = w.reshape(c, TAPS).T
    table[TAPS, :c] = bias
    packed = table.reshape(TAPS + 1, blocks, LANES).transpose(1, 0, 2).reshape(-1)
    return np.concatenate([packed, np.zeros(LANES, np.float32)])


def build(drv, h: int, w: int, c: int, in_address: int, weights_address: int, out_address: int,
          stride: int = 1, pads=(1, 1, 1, 1), act: Optional[str] = None,
          in_pixel_stride: Optional[int] = None, in_row_stride: Optional[int] = None,
          out_pixel_stride: Optional[int] = None, out_row_stride: Optional[int] = None
          ) -> List[Launch]:
    """Launches of out = act(depthwise3x3(in, W, stride, pads) + bias) for an NHWC input of
    H x W x C (batch 1) and the packed weights at `weights_address` (`pack_weights`). `pads` is
    (top, left, bottom, right); strides in bytes default to dense NHWC."""
    if act not in ACTIVATIONS:
        raise KernelShapeError(f"act={act!r}: the depthwise epilogue supports {ACTIVATIONS}")
    if stride not in (1, 2):
        raise KernelShapeError(f"stride={stride}: the depthwise kernel runs strides 1 and 2")
    pt, pl, pb, pr = pads
    if min(pads) < 0 or max(pads) > 2:
        raise KernelShapeError(f"pads={pads}: give 0..2 per side")
    ho, wo = output_size(h, pt, pb, stride), output_size(w, pl, pr, stride)
    if min(h, w, c, ho, wo) < 1:
        raise KernelShapeError(f"input {h}x{w}x{c} with pads {pads}, stride {stride}: empty output")
    in_pix = 4 * c if in_pixel_stride is None else in_pixel_stride
    in_row = w * in_pix if in_row_stride is None else in_row_stride
    out_pix = 4 * c if out_pixel_stride is None else out_pixel_stride
    out_row = wo * out_pix if out_row_stride is None else out_row_stride
    launching.check_row_span("input pixels", w, 4 * c, in_pix)
    launching.check_row_span("output pixels", wo, 4 * c, out_pix)
    blocks = math.ceil(c / LANES)
    zero_address = weights_address + 4 * BLOCK_WORDS * blocks
    program = launching.cached_program(drv, depthwise_kernel, act)
    bank_delta = launching.vdw_store_setup(1, 1, PIXELS) - launching.vdw_store_setup(1, 1, 0)

    # output rows innermost: the instances running side by side (items are dealt round-robin)
    # then work on neighbouring rows of one column strip and share its input lines in the L2
    items = [(oy, ox0, cb) for cb in range(blocks) for ox0 in range(0, wo, PIXELS) for oy in range(ho)]
    records = np.zeros((len(items), RECORD_WORDS), np.int64)
    dy, dx = np.divmod(np.arange(TAPS), 3)
    for n, (oy, ox0, cb) in enumerate(items):
        npix = min(PIXELS, wo - ox0)
        cvalid = min(LANES, c - cb * LANES)
        ox = ox0 + np.arange(PIXELS)[:, None]                    # 16 pixels x 9 taps
        iy = oy * stride - pt + dy[None, :]
        ix = ox * stride - pl + dx[None, :]
        valid = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w) & (ox < wo)
        taps = np.where(valid, in_address + iy * in_row + ix * in_pix + 4 * LANES * cb, zero_address)
        records[n, :5] = [weights_address + 4 * BLOCK_WORDS * cb, cvalid - 1,
                          launching.vdw_store_setup(npix, cvalid, 0),    # bank 0; bank 1 adds 16 rows
                          launching.vdw_stride_setup(out_pix - 4 * cvalid),
                          out_address + oy * out_row + ox0 * out_pix + 4 * LANES * cb]
        records[n, 5:] = taps.reshape(-1)
    plan = launching.split_items([ITEM_CYCLES] * len(items), launching.launch_budget_cycles(drv))
    rows_per_launch = []
    for instances in plan:
        rows = []
        for t, mine in enumerate(instances):
            mine_records = records[mine].copy()
            mine_records[:, 2] += bank_delta * (t % len(BANK_LOCKS))
            rows.append([len(mine), t, len(instances)] + mine_records.reshape(-1).tolist())
        rows_per_launch.append(rows)
    return launching.launch_rows(drv, program, rows_per_launch)
