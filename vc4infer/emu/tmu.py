"""TMU direct memory lookups through the modelled caches (spec §11).

Each of the 6 TMUs (2 per slice) has an L1 cache (4 KiB, 64-byte lines, direct-mapped; see
timing.py); all share the V3D L2C (32 KiB, 4-way, LRU). Caches hold *copies* of the data they
fetched, and VDW DMA stores do not update them (no coherency mechanism is documented; vc4asm issue
#5: "VPM writer (VDW) writes data to the memory directly"), so a kernel that TMU-reads data DMA-
stored earlier in the same launch gets the stale copy, as it would on a board. Caches are
invalidated at every launch (execute_qpu with noflush = 0 flushes them).

Elements are looked up in element order (vc4asm: "the items are loaded in order of the QPU element
number"). The bottom two address bits are ignored (guide p.41).

An L2C line's data arrives some time after the miss that installed it: each line keeps that
cycle beside its LRU stamp (`l2state`), and whoever hits the line before then (another TMU
request, a uniform read) waits for it. A TMU L1 line filled from a line still on its way needs
no date of its own: a TMU completes its requests in order (core.py, timing.py), so a later hit on
it waits for the request that filled it.
"""
import numpy as np

from vc4infer.emu.jit import jit, jit_inline
from vc4infer.emu.memory import buffer_index, in_buffer, load_u32, stray_read
from vc4infer.emu.state import GS_DRAM_BYTES, GS_L2_CLOCK, GT_DRAM_FREE
from vc4infer.emu.timing import (
    CACHE_LINE_BYTES, L2_SETS, L2_WAYS, TMU_L1_LINES, TP_DRAM_BPC, TP_DRAM_LATENCY, TP_TMU_L2_LINE)


#: l2state[set, way, L2_STAMP]: LRU stamp; [.., L2_READY]: cycle the line's data arrives
L2_STAMP, L2_READY = 0, 1
#: L2_READY of a line whose fill the current TMU request started (`settle_fills` dates it)
FILL_PENDING = np.iinfo(np.int64).max


def new_caches(n_tmus: int):
    """Empty cache state: (l1 tags, l1 data, l2 tags, l2 state (stamp, ready cycle), l2 data)."""
    return (np.full((n_tmus, TMU_L1_LINES), -1, dtype=np.int64),
            np.zeros((n_tmus, TMU_L1_LINES, CACHE_LINE_BYTES), dtype=np.uint8),
            np.full((L2_SETS, L2_WAYS), -1, dtype=np.int64),
            np.zeros((L2_SETS, L2_WAYS, 2), dtype=np.int64),
            np.zeros((L2_SETS, L2_WAYS, CACHE_LINE_BYTES), dtype=np.uint8))


def invalidate(caches) -> None:
    """Forget every cached line (what a launch with noflush = 0 does)."""
    caches[0][:] = -1
    caches[2][:] = -1
    caches[3][:] = 0


@jit
def _fill_from_memory(mem, membase, line, dst):
    base = line * CACHE_LINE_BYTES - membase
    if 0 <= base and base + CACHE_LINE_BYTES <= mem.shape[0]:
        for k in range(CACHE_LINE_BYTES):
            dst[k] = mem[base + k]
        return
    for k in range(CACHE_LINE_BYTES):           # a line at the edge of emulated memory
        o = base + k
        dst[k] = mem[o] if 0 <= o < mem.shape[0] else 0


@jit
def l2_line(mem, membase, line, l2tag, l2state, l2data, stamp):
    """Look up (and on a miss, fill) 64-byte line `line` in the L2C. Returns (set, way, missed);
    the caller dates a fill's arrival in l2state[set, way, L2_READY]."""
    s = line % L2_SETS
    way = -1
    for w in range(L2_WAYS):
        if l2tag[s, w] == line:
            way = w
    missed = way < 0
    if missed:
        way = 0
        for w in range(1, L2_WAYS):
            if l2state[s, w, L2_STAMP] < l2state[s, way, L2_STAMP]:
                way = w
        l2tag[s, way] = line
        _fill_from_memory(mem, membase, line, l2data[s, way])
    l2state[s, way, L2_STAMP] = stamp
    return s, way, missed


@jit_inline
def lookup(unit, addrs, out, mem, membase, bounds, l1tag, l1data, l2tag, l2state, l2data, clock,
           own_arrival, counts, strict):
    """Fetch the 32-bit word at each of the 16 addresses into `out`. Returns -1 on success, or the
    first element whose word is outside every live buffer (nothing is fetched then); when not
    `strict`, a word a Pi would serve from the Driver's memory (`stray_read`) is fetched and its
    element (the first such, + 1) left in counts[3]. L2C accesses are stamped clock + element:
    the caller advances its LRU clock by 16.
    counts[0] += L1 misses, counts[1] += L2 misses, counts[2] += elements whose cached copy differs
    from memory (stale data), counts[4] = the latest arrival of an L2 line still on its way that
    this request hits (0: none; `pending_arrival` with `own_arrival`, when a fetch of this
    request's own would arrive). Lines it misses are left FILL_PENDING for `settle_fills`."""
    first = buffer_index(bounds, np.int64(addrs[0]) & ~3)   # most lookups stay in one buffer
    lo = bounds[first, 0] if first >= 0 else 0
    hi = bounds[first, 1] if first >= 0 else 0
    mem_end = membase + mem.shape[0]
    for i in range(16):
        a = np.int64(addrs[i]) & ~3
        if not (lo <= a and a + 4 <= hi) and not in_buffer(bounds, a, 4):
            if strict or not stray_read(bounds, a, 4, mem_end):
                return i
            if counts[3] == 0:
                counts[3] = i + 1
    l1words = l1data.view(np.uint32)      # lines as words: one move per word, not per byte
    l2words = l2data.view(np.uint32)
    for i in range(16):
        a = np.int64(addrs[i]) & ~3
        line = a // CACHE_LINE_BYTES
        slot = line % TMU_L1_LINES
        if l1tag[unit, slot] != line:
            counts[0] += 1
            s, way, missed = l2_line(mem, membase, line, l2tag, l2state, l2data, clock + i)
            if missed:
                counts[1] += 1
                l2state[s, way, L2_READY] = FILL_PENDING
            elif l2state[s, way, L2_READY] != FILL_PENDING:
                counts[4] = max(counts[4], pending_arrival(l2state, s, way, own_arrival))
            for k in range(CACHE_LINE_BYTES // 4):
                l1words[unit, slot, k] = l2words[s, way, k]
            l1tag[unit, slot] = line
        v = np.int64(l1words[unit, slot, (a % CACHE_LINE_BYTES) >> 2])
        out[i] = v
        if v != load_u32(mem, a - membase):
            counts[2] += 1
    return -1


@jit_inline
def own_fetch_arrival(now, tp):
    """When a line fetched from SDRAM for a reader at cycle `now` would arrive (queueing aside)."""
    return np.int64(np.ceil(now + tp[TP_DRAM_LATENCY] + CACHE_LINE_BYTES / tp[TP_DRAM_BPC]))


@jit_inline
def pending_arrival(l2state, s, way, own_arrival):
    """When line (s, way), which another request may still be fetching, reaches a reader whose own
    fetch would arrive at `own_arrival`: its dated arrival, or `own_arrival` if that is sooner,
    which then becomes the line's arrival (the QPUs are emulated in turn, not in lockstep, so a
    line may carry the arrival of a fetch that starts later in modelled time: in that case this
    reader is the first to want it)."""
    ready = min(l2state[s, way, L2_READY], own_arrival)
    l2state[s, way, L2_READY] = ready
    return ready


@jit_inline
def line_read_stall(line, cycle, gs, gt, mem, membase, l2tag, l2state, l2data, tp):
    """A slice cache (uniforms, instructions) reads 64-byte line `line` through the L2C at `cycle`:
    returns (modelled cycles until its data is there, whether the L2C missed). A hit costs the L2C
    access, or the rest of the fetch of a line still on its way; a miss waits for the SDRAM, whose
    transfers queue one after another."""
    s, way, missed = l2_line(mem, membase, line, l2tag, l2state, l2data, gs[GS_L2_CLOCK])
    gs[GS_L2_CLOCK] += 1
    if not missed:
        arrival = pending_arrival(l2state, s, way, own_fetch_arrival(cycle, tp))
        return np.int64(max(tp[TP_TMU_L2_LINE], np.ceil(arrival - cycle))), False
    gs[GS_DRAM_BYTES] += CACHE_LINE_BYTES
    start = max(cycle, gt[GT_DRAM_FREE])
    gt[GT_DRAM_FREE] = start + CACHE_LINE_BYTES / tp[TP_DRAM_BPC]
    ready = start + tp[TP_DRAM_LATENCY] + CACHE_LINE_BYTES / tp[TP_DRAM_BPC]
    l2state[s, way, L2_READY] = np.int64(np.ceil(ready))
    return np.int64(np.ceil(ready - cycle)), True


@jit_inline
def settle_fills(addrs, l2tag, l2state, ready_cycle):
    """Date the arrival of the L2C lines the last `lookup` of `addrs` missed: `ready_cycle`."""
    for i in range(16):
        line = (np.int64(addrs[i]) & ~3) // CACHE_LINE_BYTES
        s = line % L2_SETS
        for w in range(L2_WAYS):
            if l2tag[s, w] == line and l2state[s, w, L2_READY] == FILL_PENDING:
                l2state[s, w, L2_READY] = ready_cycle
