"""MobileNet v2's expansion and depthwise convolution as one QPU kernel: a 1x1 convolution of K
input channels to C (bias, relu/relu6), then a 3x3 depthwise convolution of that (stride 1 or 2,
padding 0 or 1 per side, bias, relu/relu6), NHWC, batch 1. The expanded tensor, C/K times larger
than the input, is never written: stored, it bounds both layers at the VDW's speed.

SIMD element e works on expanded channel c0 + e of a 16-channel block. One work item is a strip
of `pixels` (P) neighbouring output columns of one channel block over a band of output rows; the
QPU walks down the band one output row per iteration, keeping the partial sums of the output rows
that the current input rows reach in registers (three rows at stride 1, two at stride 2), so each
input pixel of the strip is expanded once per item.

The expansion of one input pixel is a subroutine (`expand`): the uniform stream runs through the
pixel's K input values themselves (its address is the pixel's, moved to each pixel in turn), so
`fmul(r0, uniform, We[k])` multiplies the broadcast input value by the 16 channels' weights held
in registers, and the next instruction's `fadd` accumulates; the subroutine adds the bias and
applies the activation in its return's delay slots. The caller's delay slots hold the previous
pixel's depthwise multiply-adds into the partial sums. At stride 1 a pixel costs K + 17
instructions, K + 9 of them the two layers' multiply-adds (a multiply and an add each).

The uniform stream waits for every line it enters that is not in the L2C, and the 12 QPUs reading
the same rows would wait together: each call site also reads its pixel of the next row through
the TMU (alternating TMU0 and TMU1, PREFETCH_LAG requests in flight), so the L2C holds a row
before the stream gets there.

Padding: rows above and below the input are not processed (bit masks per item say which
iterations process which rows and store which output rows); a padding column (the first or last
pixel of a strip at the image's edge) reads the nearest real pixel, whose expanded value is then
replaced by zero. Every read stays inside the input. An output row (P pixels x the block's valid
channels) leaves through VPM rows of the instance's own when 12 x P fit in the VPM, otherwise
through one of two shared banks (launch.emit_banked_store).

Registers bound P: the K expansion weights, 9 depthwise taps and 13 pointers and constants
(15 at stride 2) leave the rest of the 64 for the partial sums (`max_pixels`); MobileNet v2's
first expansions (K = 16 and 24) get strips of 6 to 8 pixels.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import numpy as np

from vc4infer.qpu import isa, qpu
from vc4infer.qpu import ra as REGFILE_A
from vc4infer.qpu import rb as REGFILE_B
from vc4infer.qpu.macros import vpm_write_setup_word

from . import launch as launching
from .conv_depthwise import window_output
from .launch import KernelShapeError, Launch

ACTIVATIONS = (None, "relu", "relu6")
LANES = isa.SIMD_WIDTH
TAPS = 9                                    # 3 x 3, tap q = 3 * dy + dx
MAX_PIXELS = 16                             # output pixels per item: one VPM bank of rows
#: at stride 2 an iteration's code holds two rows of 2P + 1 call sites: wider strips outgrow the
#: 4 KiB instruction cache (modelled, 112x112x16 -> 96: P = 8 2.45 ms, 10 2.56, 12 2.66)
MAX_PIXELS_STRIDE_2 = 8
#: iterations per item: one bit each in the item's process and store masks
MAX_ITERATIONS = 32
#: semaphores guarding VPM rows 0-15 and 16-31 (semaphore 0 is launch.DONE_SEMAPHORE)
BANK_LOCKS = (1, 2)
TMU_DEPTH = 4
#: regfile A: link, the two edge steps, 9 taps and 7 scalars (expansion bias, 6.0, process and
#: store masks, output address, record pointer, input pixel pitch); regfile B:
#: the stream pointer, the row pointer and the depthwise bias (a sum's start, read beside a tap).
#: Stride 2 adds row b's mask (A) and pointer (B).
FIXED_A = 3 + TAPS + 7
FIXED_B = 3
#: record words: weights block, first row pointers (2), edge steps (2), masks (3), output address,
#: input step, then the words the row ends read: VPM write setup, VDW stride setup, VDW setup,
#: output row step, input step
RECORD_WORDS = 15
ROW_END_WORD = 10
#: prefetch requests in flight at every row's start: site j pops the one made PREFETCH_LAG sites
#: before (across rows: a row's last ones are popped by the next row, a request's data then has
#: a whole row to arrive); an item starts with that many dummy requests and ends popping them.
#: Sites alternate between the two TMUs: a TMU completes requests in order, so one QPU's miss
#: holds the hits of the slice's other QPUs behind it.
PREFETCH_LAG = 4


def sums_rows(stride: int) -> int:
    """Output rows whose partial sums an iteration holds: the rows one input row reaches."""
    return 3 if stride == 1 else 2


def fixed_registers(stride: int) -> tuple:
    """Registers of regfiles A and B the kernel holds whatever K and the strip width."""
    return FIXED_A + (stride == 2), FIXED_B + (stride == 2)


def register_budget(stride: int) -> int:
    """Registers left for the K expansion weights and the partial sums."""
    return 64 - sum(fixed_registers(stride))


def private_vpm_rows(pixels: int) -> bool:
    """Whether every instance has VPM rows of its own for a strip (no locks, no waiting for the
    DMA: the next store comes an output row later) or shares two locked banks."""
    return pixels * isa.NUM_QPUS <= isa.VPM_USER_ROWS


def max_pixels(k: int, stride: int) -> int:
    """The widest strip (output pixels) whose partial sums fit in the registers K weights leave
    (they live in regfile B: the taps they are multiplied with are in A)."""
    rows = sums_rows(stride)
    in_b = (32 - fixed_registers(stride)[1]) // rows
    widest = MAX_PIXELS if stride == 1 else MAX_PIXELS_STRIDE_2
    return max(0, min(widest, (register_budget(stride) - k) // rows, in_b))


def strip_inputs(pixels: int, stride: int) -> int:
    """Input columns a strip of `pixels` outputs reads."""
    return (pixels - 1) * stride + 3


def block_rows(k: int) -> int:
    """16-float rows of one channel block's packed weights: K expansion rows, its bias, 9 taps,
    the depthwise bias."""
    return k + 1 + TAPS + 1


@qpu
def expand_depthwise_kernel(asm, k: int, stride: int, pixels: int, act_expand: Optional[str],
                            act_depthwise: Optional[str]):
    """Uniforms: header (record address, input pixel pitch, instance index | instance count <<
    8), then per item (RECORD_WORDS; read through uniforms_address): packed weights of its
    block, the first iteration's row pointers (row a; row b = a + input row: stride 2 only) at
    the strip's first real pixel, step after the first pixel (0 at a left edge), step before
    the last (0 at a right edge), process masks of rows a and b, store mask (bit i: iteration
    i), output address of iteration 0's row, input step; then the words each row end reads:
    the instance's VPM write setup (private rows) or bank (shared), VDW stride setup, VDW setup,
    output row bytes, input step. A 0 ends the list, followed by the instance word again."""
    n_in = strip_inputs(pixels, stride)
    rows = sums_rows(stride)
    if not 2 <= k <= register_budget(stride) - rows * pixels or pixels < 1:
        raise KernelShapeError(f"K={k} with {pixels} pixels at stride {stride}: the registers "
                               f"hold K + {rows} x pixels <= {register_budget(stride)}")
    free_a = iter(REGFILE_A[q] for q in range(32))
    free_b = iter(REGFILE_B[q] for q in range(32))
    link, step_first, step_last = next(free_a), next(free_a), next(free_a)
    tap = [next(free_a) for _ in range(TAPS)]
    bias_e, six, proc_a, store, st_addr, rec, pitch = [next(free_a) for _ in range(7)]
    ptr, row_a, bias_d = next(free_b), next(free_b), next(free_b)
    proc_b, row_b = (next(free_a), next(free_b)) if stride == 2 else (null, null)
    sums = [[next(free_b) for _ in range(pixels)] for _ in range(rows)]
    w_exp = list(free_a) + list(free_b)
    w_exp = w_exp[:k]
    prefetch = r3                               # an accumulator: the hot loop leaves it alone
    PREFETCH_TMUS = (tmu0_s, tmu1_s)            # site j's prefetch goes to TMU j % 2

    def pop_of(j: int) -> str:
        """The signal popping site j's prefetch (its TMU's receive FIFO)."""
        return f"load tmu{j % 2}"

    private = private_vpm_rows(pixels)
    locks = () if private else BANK_LOCKS
    mov(rec, uniform)
    mov(pitch, uniform)
    mov(r1, uniform)                            # instance index | count << 8
    if "relu6" in (act_expand, act_depthwise):
        ldi(six, 6.0)
    if locks:
        ldi(r2, 255)
        band(sums[0][0], r1, r2, set_flags=False)   # the instance index alone
        nop()
        launching.emit_bank_locks_init(asm, sums[0][0], locks)
    jmp(L.item_loop)
    nop()
    nop()
    nop()

    # -- the expansion of one pixel: r1 = act(x . We + be), uniform stream at the pixel -------
    L.expand
    fmul(r2, uniform, w_exp[0])
    fmul(r0, uniform, w_exp[1])
    for q in range(2, k):
        fadd(r2, r2, r0, set_flags=False).fmul(r0, uniform, w_exp[q])
    fadd(r2, r2, r0, set_flags=False)
    jmp(reg=link, absolute=True)
    if act_expand is None:
        fadd(r1, r2, bias_e, set_flags=False)
        nop()
        nop()
    else:
        fadd(r2, r2, bias_e, set_flags=False)
        if act_expand == "relu":
            fmax(r1, r2, 0.0, set_flags=False)
            nop()
        else:
            fmax(r2, r2, 0.0, set_flags=False)
            fmin(r1, r2, six, set_flags=False)

    # -- one input row: (sums row, dy) pairs it adds to -----------------------------------
    def pixel_macs(j: int, reach: Sequence[tuple]) -> list:
        """(partial sum, tap) multiply-adds of input column j of the strip."""
        out = []
        for r, dy in reach:
            for dx in range(3):
                ox, rem = divmod(j - dx, stride)
                if rem == 0 and 0 <= ox < pixels:
                    out.append((sums[r][ox], tap[3 * dy + dx]))
        return out

    def mac_chain(macs: list, request=None, tmu=None, fresh: Optional[set] = None) -> list:
        """Instructions (as callables) of multiply-adds of r1: each fadd is paired with the next
        fmul, so n of them take n + 1 instructions. `request` (an address register): the first
        one's free add half also makes a prefetch request at it + `prefetch` to `tmu`. A sum in
        `fresh` starts from the depthwise bias (and leaves the set)."""
        if not macs:
            return []
        starts = []
        for acc, _ in macs:
            starts.append(bias_d if fresh is not None and acc in fresh else acc)
            if fresh is not None:
                fresh.discard(acc)
        if request is None:
            chain = [lambda w=macs[0][1]: fmul(r0, r1, w)]
        else:
            chain = [lambda w=macs[0][1]: iadd(tmu, request, prefetch,
                                               set_flags=False).fmul(r0, r1, w)]
        for (acc, _), start, (_, w) in zip(macs, starts, macs[1:]):
            chain.append(lambda acc=acc, start=start, w=w:
                         fadd(acc, start, r0, set_flags=False).fmul(r0, r1, w))
        last, start = macs[-1][0], starts[-1]
        chain.append(lambda: fadd(last, start, r0, set_flags=False))
        return chain

    def emit_row(row_ptr, reach: Sequence[tuple]) -> None:
        """One input row: each pixel's expansion (the subroutine) and depthwise multiply-adds
        into the sums rows of `reach`; the last sums row starts here from the bias."""
        previous: list = []
        fresh = set(sums[-1]) if (len(sums) - 1, 0) in reach else None
        for j in range(n_in):
            src = row_ptr if j == 0 else ptr
            # this pixel in the next row, in the chain's first instruction when it comes
            # before the stream moves on
            early = len(previous) + 1 > 3
            chain = mac_chain(previous, src if early else None, PREFETCH_TMUS[j % 2], fresh)
            before, slots = chain[:max(0, len(chain) - 3)], chain[max(0, len(chain) - 3):]
            for c in before:
                c()
            if not early:
                iadd(PREFETCH_TMUS[j % 2], src, prefetch, set_flags=False)
            step = step_first if j == 0 else step_last if j == n_in - 2 else pitch
            iadd(ptr, src, step, set_flags=False).mov(uniforms_address, src,
                                                     sig=pop_of((j - PREFETCH_LAG) % n_in))
            jmp(L.expand, link=link)
            for c in slots:
                c()
            for _ in range(3 - len(slots)):
                nop()
            if j in (0, n_in - 1):             # a padding column reads a real pixel: zero it
                mov(null, step_first if j == 0 else step_last, set_flags=True)
                mov(r1, 0.0, cond="zs")
            previous = pixel_macs(j, reach)
        for c in mac_chain(previous, fresh=fresh):
            c()
        assert not fresh, "every output pixel reads a tap of its dy = 0 row"

    def row_if(mask, row_ptr, reach, name: str) -> None:
        """`emit_row` when bit 0 of `mask` is set (a row inside the input), shifting it."""
        band(null, mask, 1, set_flags=True)
        jzc(L[f"row_{name}"])
        shr(mask, mask, 1, set_flags=False)
        nop()
        nop()
        if (len(sums) - 1, 0) in reach:        # a padding row: the new sums start at the bias
            for acc in sums[-1]:
                mov(acc, bias_d)
        jmp(L[f"skip_{name}"])
        nop()
        nop()
        nop()
        L[f"row_{name}"]
        emit_row(row_ptr, reach)
        L[f"skip_{name}"]

    def processed_rows():
        """The register whose bit i says iteration i processes all its rows (a prefetch's row is
        inside the input): proc_a, or at stride 2 r2 = proc_a & proc_b."""
        if stride == 1:
            return proc_a
        mov(r2, proc_b)
        band(r2, proc_a, r2, set_flags=False)
        return r2

    def set_prefetch() -> None:
        """`prefetch` = the input step r1 (0 when the next iteration processes no row: a read
        past the input) + per lane (e & 1) x (pitch - 4), so that a request touches both lines
        of a pixel that spans two. Every site reads its pixel of the next iteration's row
        through the TMU into the L2C before the uniform stream gets there (a uniform line that
        misses waits for the SDRAM; 12 QPUs reading the same rows wait together)."""
        band(r2, element_number, 1, set_flags=False)
        imul24(r0, r2, pitch)
        shl(r2, r2, 2, set_flags=False)
        isub(r0, r0, r2, set_flags=False)
        band(null, processed_rows(), 2, set_flags=True)     # bit 1: the row after the current
        mov(prefetch, r0)
        iadd(prefetch, r0, r1, cond="zc", set_flags=False)

    def update_prefetch() -> None:
        """At an iteration's end (masks shifted: bit 0 is the next iteration's row, bit 1 the
        one after, which the next iteration prefetches): drop the input step r1 from `prefetch`
        when the row after is the first outside the input (rows only leave it at the bottom)."""
        band(r2, processed_rows(), 3, set_flags=False)
        isub(null, r2, 1, set_flags=True)
        isub(prefetch, prefetch, r1, cond="zs", set_flags=False)

    # -- items ------------------------------------------------------------------------------
    L.item_loop
    mov(uniforms_address, rec)
    shl(r2, element_number, 2, set_flags=False)
    nop()
    nop()
    mov(r1, uniform, set_flags=True)            # the weights block; 0 ends the list
    jzs(L.items_done)
    iadd(r1, r1, r2, set_flags=False)           # delay slots: r1[e] = &block[row 0][e]
    ldi(r2, 4 * LANES)
    nop()
    mov(row_a, uniform)
    mov(row_b, uniform)                         # stride 1: skipped (null)
    mov(step_first, uniform)
    mov(step_last, uniform)
    mov(proc_a, uniform)
    mov(proc_b, uniform)
    mov(store, uniform)
    mov(st_addr, uniform)
    mov(prefetch, uniform)                      # the input step, for set_prefetch
    launching.emit_tmu_row_loads(asm, w_exp + [bias_e] + tap + [bias_d], TMU_DEPTH)
    for row in sums[:-1]:                       # r4 still holds the depthwise bias
        for acc in row:
            mov(acc, r4)
    mov(r1, prefetch)
    set_prefetch()
    for j in range(n_in - PREFETCH_LAG, n_in):  # stand-ins for a previous row's prefetches
        mov(PREFETCH_TMUS[j % n_in % 2], rec)

    # -- iterations: one output row each ----------------------------------------------------
    L.iteration
    if stride == 1:
        row_if(proc_a, row_a, ((0, 2), (1, 1), (2, 0)), "a")
    else:
        row_if(proc_a, row_a, ((0, 1),), "a")
        row_if(proc_b, row_b, ((0, 2), (1, 0)), "b")
    ldi(r2, 4 * ROW_END_WORD)
    band(null, store, 1, set_flags=True)
    jzc(L.store_row)
    iadd(uniforms_address, rec, r2, set_flags=False)
    shr(store, store, 1, set_flags=False)
    nop()
    for _ in range(3):                          # no store (the band's first rows): skip its words
        mov(null, uniform)
    jmp(L.advance)
    nop()
    nop()
    nop()

    def write_rows():
        mov(r0, 0.0)                            # the sums are in regfile B: no small immediate
        for acc in sums[0]:
            if act_depthwise is None:
                mov(vpm, acc)
            elif act_depthwise == "relu":
                fmax(vpm, acc, r0, set_flags=False)
            else:
                fmax(r2, acc, r0, set_flags=False)
                fmin(vpm, r2, six, set_flags=False)
    L.store_row
    if private:
        wait_dma_store()                        # the instance's last row has left its VPM rows
        mov(vpmvcd_wr_setup, uniform)
        write_rows()
        mov(vpmvcd_wr_setup, uniform)
        mov(vpmvcd_wr_setup, uniform)
        mov(vpm_st_addr, st_addr)
    else:
        launching.emit_banked_store(asm, uniform, write_rows, uniform, uniform, st_addr,
                                    BANK_LOCKS, MAX_PIXELS)     # the first word: the bank
    L.advance
    iadd(st_addr, st_addr, uniform, set_flags=False)
    mov(r1, uniform)                            # input step
    iadd(row_a, row_a, r1, set_flags=False)
    if stride == 2:
        iadd(row_b, row_b, r1, set_flags=False)
    update_prefetch()
    for upper, lower in zip(sums, sums[1:]):   # the next rows' row starts from the bias
        for acc, nxt in zip(upper, lower):
            mov(acc, nxt)
    mov(null, store, set_flags=True)
    jzc(L.iteration)
    nop()
    nop()
    nop()

    for j in range(n_in - PREFETCH_LAG, n_in):
        nop(sig=pop_of(j % n_in))
    ldi(r2, 4 * RECORD_WORDS)
    jmp(L.item_loop)
    iadd(rec, rec, r2, set_flags=False)
    nop()
    nop()

    L.items_done
    wait_dma_store()
    thread, n_threads = sums[0][0], sums[1][0]
    mov(r1, uniform)                            # after the list: instance index | count << 8
    ldi(r2, 255)
    band(thread, r1, r2, set_flags=False)
    shr(n_threads, r1, 8, set_flags=False)
    launching.emit_join_and_exit(asm, thread, n_threads, locks)


def pack_weights(w_expand: np.ndarray, b_expand: Optional[np.ndarray], w_depthwise: np.ndarray,
                 b_depthwise: Optional[np.ndarray]) -> np.ndarray:
    """Expansion weights OHWI (C, 1, 1, K) or (C, K) and bias (C), depthwise weights (C, 3, 3, 1)
    or (C, 3, 3) and bias (C) in the kernel's layout: per 16-channel block, `block_rows(K)` rows
    of 16 floats (K expansion rows, its bias, taps 0-8, the depthwise bias), zero past C. float32,
    1-D; upload once."""
    we = np.asarray(w_expand, np.float32)
    we = we.reshape(we.shape[0], -1) if we.ndim == 4 and we.shape[1:3] == (1, 1) else we
    wd = np.asarray(w_depthwise, np.float32)
    wd = wd[..., 0] if wd.ndim == 4 and wd.shape[3] == 1 else wd
    if we.ndim != 2:
        raise KernelShapeError(f"expansion weights of shape {we.shape}: give (C, 1, 1, K)")
    c, k = we.shape
    if wd.shape != (c, 3, 3):
        raise KernelShapeError(f"depthwise weights of shape {np.shape(w_depthwise)} after a "
                               f"{c}-channel expansion: give ({c}, 3, 3, 1)")
    biases = []
    for name, b in (("expansion", b_expand), ("depthwise", b_depthwise)):
        b = np.zeros(c, np.float32) if b is None else np.asarray(b, np.float32).reshape(-1)
        if b.shape != (c,):
            raise KernelShapeError(f"{name} bias of {b.size} values for {c} channels")
        biases.append(b)
    blocks = math.ceil(c / LANES)
    table = np.zeros((block_rows(k), blocks * LANES), np.float32)
    table[:k, :c] = we.T
    table[k, :c] = biases[0]
    table[k + 1:k + 1 + TAPS, :c] = wd.reshape(c, TAPS).T
    table[k + 1 + TAPS, :c] = biases[1]
    return np.ascontiguousarray(table.reshape(-1, blocks, LANES).transpose(1, 0, 2)).reshape(-1)


def strip_pixels(wo: int, k: int, stride: int) -> int:
    """Output pixels per strip for rows of `wo`: the fewest strips the registers allow, as even
    as they come."""
    most = max_pixels(k, stride)
    if most < 1:
        raise KernelShapeError(f"K = {k} input channels: the expansion weights leave no "
                               "registers for partial sums")
    return math.ceil(wo / math.ceil(wo / most))


def item_cycles(k: int, stride: int, pixels: int, iterations: int) -> float:
    """Modelled cycles of one item, for planning launches: per iteration `stride` rows of the
    strip's input pixels (the expansion, the call, up to 9 multiply-adds), the row end."""
    per_pixel = k + 6 + 2 + 9 // stride + 1
    return 4.0 * iterations * (stride * strip_inputs(pixels, stride) * per_pixel
                               + (sums_rows(stride) + 2) * pixels + 40) + 300


def build(drv, h: int, w: int, k: int, c: int, in_address: int, weights_address: int,
          out_address: int, stride: int = 1, pads=(1, 1, 1, 1), act_expand: Optional[str] = None,
          act_depthwise: Optional[str] = None, in_pixel_stride: Optional[int] = None,
          in_row_stride: Optional[int] = None, out_pixel_stride: Optional[int] = None,
          out_row_stride: Optional[int] = None) -> List[Launch]:
    """Launches of out = act_d(depthwise3x3(act_e(in @ We.T + be), Wd, stride, pads) + bd) for an
    NHWC input of H x W x K (batch 1), C expanded channels and the packed weights at
    `weights_address` (`pack_weights`). `pads` is (top, left, bottom, right); strides in bytes
    default to dense NHWC."""
    for name, act in (("act_expand", act_expand), ("act_depthwise", act_depthwise)):
        if act not in ACTIVATIONS:
            raise KernelShapeError(f"{name}={act!r}: the kernel fuses {ACTIVATIONS}")
    ho, wo = window_output(h, w, min(k, c), stride, pads)
    pt, pl = pads[:2]
    pixels = strip_pixels(wo, k, stride)
    if k < 2 or k + sums_rows(stride) * pixels > register_budget(stride):
        raise KernelShapeError(f"K = {k} input channels: the kernel holds 2 to "
                               f"{register_budget(stride) - sums_rows(stride)} expansion weights")
    in_pix, in_row, out_pix, out_row = launching.nhwc_pitches(
        w, wo, k, c, in_pixel_stride, in_row_stride, out_pixel_stride, out_row_stride)
    program = launching.cached_program(drv, expand_depthwise_kernel, k, stride, pixels,
                                       act_expand, act_depthwise)
    blocks = math.ceil(c / LANES)
    block_bytes = 4 * LANES * block_rows(k)
    n_in = strip_inputs(pixels, stride)
    warm = 3 - stride                           # iterations before the band's first output row
    band_rows = MAX_ITERATIONS - warm
    bands = [(oy0, min(ho, oy0 + band_rows)) for oy0 in range(0, ho, band_rows)]
    strips = sorted({min(ox0, wo - pixels) for ox0 in range(0, wo, pixels)})
    private = private_vpm_rows(pixels)

    # channel blocks innermost: the instances running side by side read the same input pixels
    items = [(band, ox0, cb) for band in bands for ox0 in strips for cb in range(blocks)]
    records = np.zeros((len(items), RECORD_WORDS), np.int64)
    cycles = []
    for n, ((oy0, oy1), ox0, cb) in enumerate(items):
        first = oy0 - warm                      # output row of iteration 0
        outs = range(first, oy1)
        # rows of iteration i: a = (o + 2 - pt) at stride 1; a = 2o - pt + 1, b = a + 1 at 2
        row_of = (lambda o: (o + 2 - pt, None)) if stride == 1 else \
            (lambda o: (2 * o - pt + 1, 2 * o - pt + 2))
        proc = [[0 <= y < h for y in row_of(o) if y is not None] for o in outs]
        mask_a = sum(1 << i for i, p in enumerate(proc) if p[0])
        mask_b = sum(1 << i for i, p in enumerate(proc) if len(p) > 1 and p[1])
        mask_store = sum(1 << i for i, o in enumerate(outs) if o >= oy0)
        xs = ox0 * stride - pl                  # the strip's first input column
        x_last = xs + n_in - 1
        a0 = row_of(first)[0]
        cvalid = min(LANES, c - cb * LANES)
        records[n] = [weights_address + cb * block_bytes,
                      in_address + a0 * in_row + max(xs, 0) * in_pix,
                      in_address + (a0 + 1) * in_row + max(xs, 0) * in_pix,
                      0 if xs < 0 else in_pix,
                      0 if x_last >= w else in_pix,
                      mask_a, mask_b, mask_store,
                      out_address + first * out_row + ox0 * out_pix + 4 * LANES * cb,
                      stride * in_row,
                      0,                        # VPM write setup or bank: per instance, below
                      launching.vdw_stride_setup(out_pix - 4 * cvalid),
                      launching.vdw_store_setup(pixels, cvalid, 0),
                      out_row, stride * in_row]
        cycles.append(item_cycles(k, stride, pixels, len(outs)))
    rows_per_launch = []
    for instances in launching.split_items(cycles, launching.launch_budget_cycles(drv)):
        launch_rows = []
        for t, mine in enumerate(instances):
            mine_records = records[mine].copy()
            if private:
                vpm_y = t * pixels
                mine_records[:, ROW_END_WORD] = vpm_write_setup_word(Y=vpm_y)
            else:
                bank = t % len(BANK_LOCKS)
                vpm_y = MAX_PIXELS * bank
                mine_records[:, ROW_END_WORD] = bank
            mine_records[:, ROW_END_WORD + 2] = launching.vdw_setup_at_row(
                mine_records[:, ROW_END_WORD + 2], vpm_y)
            instance = t | len(instances) << 8
            launch_rows.append([0, in_pix, instance] + mine_records.reshape(-1).tolist()
                               + [0, instance])         # the end of the list, the instance
        rows_per_launch.append(launch_rows)
    return launching.launch_rows(drv, program, rows_per_launch, record_pointer_words=3)
