"""NHWC depthwise 3x3 convolution on the QPUs: stride 1 or 2, padding of 0 or 1 per side, fused
bias and relu/relu6, any channel count.

SIMD element e works on channel c0 + e of a 16-channel block. One work item is `pixels` (up to 16)
neighbouring output pixels of one output row in one channel block. The item's 9 tap weights and
its bias arrive through the TMU into registers; then, for each pixel and each of the 9 taps, the
16 input channels of that tap are one TMU request (eight in flight, alternating between the two
TMUs) and one multiply-add, the bias being the sum's starting value.

Tap addresses are made in registers, not read from the uniform stream (a uniform cache line
costs an SDRAM round trip, ~430 ns, and every uniform read behind it waits): a pixel pointer
steps by stride x pixel pitch, and nine per-item offsets (three input rows x three columns) are
added to it. The item's few uniforms say where its rows are and which of its taps fall in the
padding:
- a padding row (top or bottom) is read from the centre row and multiplied by zero: the item's
  weights are one of four variants per channel block with the top, the bottom, both or no row
  zeroed (`pack_weights`);
- a padding column can only be the left tap of the item's first pixel or the right tap of its
  last one: those taps read the centre column instead and their multiply-add is skipped by a
  condition on flags set per item.
So every request reads inside the input and the kernel has no edge-case code. The centre tap is
never in the padding (pads <= 1) and starts each pixel's sum. A row whose width is not a multiple
of `pixels` ends with an item that overlaps the one before (the overlap is stored twice with the
same values). Elements past the last channel read the last channel (lane offsets are clamped) and
are not stored. The item's output vectors go to VPM rows (horizontal) and leave with one DMA store
of pixels x valid channels. The VPM is shared by all QPUs: it is cut into two banks of 16 rows,
each guarded by a semaphore used as a lock, even instances using one and odd instances the other,
so that one bank is filled while the other one's DMA runs.

The layer is memory-bound (each 16-channel output vector costs 9 multiply-adds and 64 stored
bytes), so the kernel aims at keeping the TMUs and the VDW busy rather than at the ALU peak.
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
MAX_PIXELS = 16                             # output pixels per work item (one VPM bank of rows)
TAPS = 9                                    # 3 x 3, tap q = 3 * dy + dx
CENTRE = 4
#: the order of a pixel's taps: the centre (never padding) starts the sum, the left column's
#: taps (skipped at a left edge) and then the right column's (skipped at a right edge) come last
TAP_ORDER = (4, 1, 7, 0, 3, 6, 2, 5, 8)
#: weight variants per channel block: bit 0 zeroes the top row's taps, bit 1 the bottom row's
ROW_VARIANTS = 4
#: words per channel block and variant in the packed weights: 9 tap vectors and the bias vector
BLOCK_WORDS = (TAPS + 1) * LANES
RECORD_WORDS = 11
#: TMU requests in flight per TMU FIFO (the depth that is reliable on hardware, spec section 11)
TMU_DEPTH = 4
#: input taps in flight: both TMUs, TMU_DEPTH each (the ~36-cycle TMU latency needs > 4)
TAPS_IN_FLIGHT = 2 * TMU_DEPTH
#: semaphores guarding VPM rows 0-15 and 16-31 (semaphore 0 is launch.DONE_SEMAPHORE)
BANK_LOCKS = (1, 2)


def item_cycles(pixels: int) -> int:
    """Modelled cycles of one item, for planning launches: 2 instructions per tap, one pointer
    step per pixel, ~80 more, the store."""
    return 4 * ((2 * TAPS + 1) * pixels + 80) + 270


@qpu
def depthwise_kernel(asm, act: Optional[str], pixels: int):
    """Uniforms: header (item count, instance index, instance count, input pixel pitch, stride x
    input pixel pitch, all in bytes), then per item: packed weights of its channel block and row
    variant, valid channels - 1, VDW setup, VDW stride setup, output address of its first pixel,
    the address of its first pixel's top-left tap at channel c0 (row 0 of the input), the byte
    offsets of the input rows read by the top, centre and bottom taps, and the left and right
    edge fixes (0, or the pixel pitch when that column of the first / last pixel is padding)."""
    w = [ra[q] for q in range(TAPS + 1)]        # w[9] = bias
    items, thread, n_threads = ra10, ra11, ra12
    st_setup, st_stride, st_addr, six = ra14, ra15, ra16, ra17
    pitch, step, left_fix, right_fix = ra18, ra19, ra20, ra21
    acc = [rb[p] for p in range(pixels)]
    off = [[rb[16 + 3 * dy + dx] for dx in range(3)] for dy in range(3)]
    off_left = [rb[25 + dy] for dy in range(3)]     # the first pixel's left column
    off_right = [rb[28 + dy] for dy in range(3)]    # the last pixel's right column

    mov(items, uniform)
    mov(thread, uniform)
    mov(n_threads, uniform)
    mov(pitch, uniform)
    mov(step, uniform)
    if act == "relu6":
        ldi(six, 6.0)
    launching.emit_bank_locks_init(asm, thread, BANK_LOCKS)

    L.item_loop
    mov(null, items, set_flags=True)
    jzs(L.items_done)
    nop()
    nop()
    nop()
    mov(r1, uniform)                            # packed weights of this block and variant
    mov(r2, uniform)                            # valid channels - 1
    imin(r2, element_number, r2, set_flags=False)
    shl(r3, r2, 2, set_flags=False)             # r3[e]: byte offset of channel min(e, last)
    mov(st_setup, uniform)
    mov(st_stride, uniform)
    mov(st_addr, uniform)
    shl(r2, element_number, 2, set_flags=False)
    iadd(r1, r1, r2, set_flags=False)           # weights are padded: no clamp
    ldi(r2, LANES * 4)
    launching.emit_tmu_row_loads(asm, w, TMU_DEPTH)     # weights and bias through the TMU
    # the tap offsets: off[dy][dx] = row offset + dx x pitch; the edge columns read the centre one
    iadd(r1, uniform, r3, set_flags=False)      # r1: the current pixel's top-left tap, per lane
    for dy in range(3):
        mov(r2, uniform)
        mov(off[dy][0], r2)
        iadd(off[dy][1], r2, pitch, set_flags=False)
        iadd(r2, r2, pitch, set_flags=False)
        iadd(off[dy][2], r2, pitch, set_flags=False)
    mov(left_fix, uniform)
    mov(right_fix, uniform)
    for dy in range(3):
        iadd(off_left[dy], off[dy][0], left_fix, set_flags=False)
    for dy in range(3):
        isub(off_right[dy], off[dy][2], right_fix, set_flags=False)
    mov(null, left_fix, set_flags=True)         # Z: the first pixel's left column is in the input

    # the tap stream: (pixel, tap) in order; requests run TAPS_IN_FLIGHT taps ahead of the sums
    stream = [(p, q) for p in range(pixels) for q in TAP_ORDER]
    fifo = [tmu0_s, tmu1_s]                     # tap t goes through TMU t % 2: 8 in flight
    pop = ["load tmu0", "load tmu1"]

    def tap_offset(p, q):
        dy, dx = divmod(q, 3)
        if p == 0 and dx == 0:
            return off_left[dy]
        if p == pixels - 1 and dx == 2:
            return off_right[dy]
        return off[dy][dx]

    def request(u):                             # the add half of the instruction that issues tap u
        return iadd(fifo[u % 2], r1, tap_offset(*stream[u]), set_flags=False)

    def after_request(u):                       # the pointer moves on once a pixel's taps are out
        if u % TAPS == TAPS - 1 and u + 1 < len(stream):
            iadd(r1, r1, step, set_flags=False)

    for u in range(min(TAPS_IN_FLIGHT, len(stream))):
        request(u)
        after_request(u)
    nop(sig=pop[0])
    for t, (p, q) in enumerate(stream):
        u = t + TAPS_IN_FLIGHT
        if u < len(stream):
            request(u).fmul(r0, r4, w[q])
        else:
            fmul(r0, r4, w[q])
        dx = q % 3
        if p == pixels - 1 and q == TAP_ORDER[6]:
            mov(null, right_fix, set_flags=True)    # Z: the last pixel's right column is in the input
        cond = "zs" if (p == 0 and dx == 0) or (p == pixels - 1 and dx == 2) else "always"
        start = w[TAPS] if q == CENTRE else acc[p]  # the bias starts each pixel's sum
        sig = {"sig": pop[(t + 1) % 2]} if t + 1 < len(stream) else {}
        fadd(acc[p], start, r0, cond=cond, set_flags=False, **sig)
        if u < len(stream):
            after_request(u)

    if act in ("relu", "relu6"):
        mov(r2, 0.0)
        for p in range(pixels):
            fmax(acc[p], acc[p], r2, set_flags=False)
    if act == "relu6":
        mov(r2, six)
        for p in range(pixels):
            fmin(acc[p], acc[p], r2, set_flags=False)

    # the VPM is shared: two banks of 16 rows, each guarded by a lock (launch.emit_banked_store)
    def write_rows():
        for p in range(pixels):
            mov(vpm, acc[p])
    launching.emit_banked_store(asm, thread, write_rows, st_stride, st_setup, st_addr, BANK_LOCKS,
                                MAX_PIXELS)
    jmp(L.item_loop)
    isub(items, items, 1, set_flags=False)
    nop()
    nop()

    L.items_done
    launching.emit_join_and_exit(asm, thread, n_threads, BANK_LOCKS)


def output_size(size: int, pad_before: int, pad_after: int, stride: int) -> int:
    """Output length of a 3-tap window along one axis."""
    return (size + pad_before + pad_after - 3) // stride + 1


def window_output(h: int, w: int, c: int, stride: int, pads) -> tuple:
    """(Ho, Wo) of a 3x3 window over H x W x C with `stride` and `pads` (top, left, bottom,
    right), after checking them against what the 3x3 kernels run (KernelShapeError)."""
    if stride not in (1, 2):
        raise KernelShapeError(f"stride={stride}: the 3x3 kernels run strides 1 and 2")
    pt, pl, pb, pr = pads
    if min(pads) < 0 or max(pads) > 1:
        raise KernelShapeError(f"pads={pads}: the 3x3 kernels take 0 or 1 per side")
    ho, wo = output_size(h, pt, pb, stride), output_size(w, pl, pr, stride)
    if min(h, w, c, ho, wo) < 1:
        raise KernelShapeError(f"input {h}x{w}x{c} with pads {pads}, stride {stride}: empty output")
    return ho, wo


def item_pixels(wo: int) -> int:
    """Output pixels per item for rows of `wo` pixels: the fewest items of at most MAX_PIXELS,
    as even as they come (56 -> 4 x 14, 112 -> 7 x 16, 7 -> 1 x 7)."""
    return math.ceil(wo / math.ceil(wo / MAX_PIXELS))


def pack_weights(w: np.ndarray, bias: Optional[np.ndarray]) -> np.ndarray:
    """OHWI depthwise weights (C, 3, 3, 1) (or (C, 3, 3)) and bias (C) in the kernel's layout:
    per 16-channel block, ROW_VARIANTS copies of 9 tap vectors and the bias vector (zero past C),
    copy v with the top row's taps zeroed if v & 1 and the bottom row's if v & 2. float32, 1-D;
    upload once."""
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
    table = np.zeros((ROW_VARIANTS, TAPS + 1, blocks * LANES), np.float32)
    table[:, :TAPS, :c] = w.reshape(c, TAPS).T
    table[:, TAPS, :c] = bias
    table[1::2, 0:3] = 0                        # top row of variants 1 and 3
    table[2:, 6:9] = 0                          # bottom row of variants 2 and 3
    return table.reshape(ROW_VARIANTS, TAPS + 1, blocks, LANES).transpose(2, 0, 1, 3).reshape(-1)


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
    ho, wo = window_output(h, w, c, stride, pads)
    pt, pl = pads[:2]
    in_pix, in_row, out_pix, out_row = launching.nhwc_pitches(
        w, wo, c, c, in_pixel_stride, in_row_stride, out_pixel_stride, out_row_stride)
    blocks = math.ceil(c / LANES)
    pixels = item_pixels(wo)
    program = launching.cached_program(drv, depthwise_kernel, act, pixels)

    # output rows innermost: the instances running side by side (items are dealt round-robin)
    # then work on neighbouring rows of one column strip and share its input lines in the L2
    strips = sorted({min(ox0, wo - pixels) for ox0 in range(0, wo, pixels)})
    items = [(oy, ox0, cb) for cb in range(blocks) for ox0 in strips for oy in range(ho)]
    records = np.zeros((len(items), RECORD_WORDS), np.int64)
    for n, (oy, ox0, cb) in enumerate(items):
        cvalid = min(LANES, c - cb * LANES)
        iy = oy * stride - pt + np.arange(3)
        padding_row = (iy < 0) | (iy >= h)
        rows = np.where(padding_row, iy[1], iy) * in_row      # padding rows read the centre row
        variant = int(padding_row[0]) + 2 * int(padding_row[2])
        ix_first = ox0 * stride - pl                          # the first pixel's left column
        ix_last = (ox0 + pixels - 1) * stride - pl + 2        # the last pixel's right column
        records[n] = [weights_address + 4 * BLOCK_WORDS * (ROW_VARIANTS * cb + variant),
                      cvalid - 1,
                      launching.vdw_store_setup(pixels, cvalid, 0),   # VPM row 0: moved below
                      launching.vdw_stride_setup(out_pix - 4 * cvalid),
                      out_address + oy * out_row + ox0 * out_pix + 4 * LANES * cb,
                      in_address + ix_first * in_pix + 4 * LANES * cb,
                      *rows,
                      in_pix if ix_first < 0 else 0,
                      in_pix if ix_last >= w else 0]
    plan = launching.split_items([item_cycles(pixels)] * len(items),
                                 launching.launch_budget_cycles(drv))
    rows_per_launch = []
    for instances in plan:
        launch_rows = []
        for t, mine in enumerate(instances):
            mine_records = records[mine].copy()
            mine_records[:, 2] = launching.vdw_setup_at_row(mine_records[:, 2],
                                                            MAX_PIXELS * (t % len(BANK_LOCKS)))
            launch_rows.append([len(mine), t, len(instances), in_pix, stride * in_pix]
                               + mine_records.reshape(-1).tolist())
        rows_per_launch.append(launch_rows)
    return launching.launch_rows(drv, program, rows_per_launch)
