"""The uniform stream's fast cases, shared by the general loop (core.py) and the fast path.

A uniform read normally comes from the buffer of the previous one, with no uniforms_address
write pending: `uniform_in_buffer` tells, `pop_uniform` reads it. A read that enters a new
64-byte line goes through the uniforms cache model: `uniform_line_stall` (timing.py).
"""
import numpy as np

from vc4infer.emu import tmu
from vc4infer.emu.jit import jit, jit_inline
from vc4infer.emu.state import (
    GS_DRAM_BYTES, GS_L2_CLOCK, GS_UNIFORM_L2_MISSES, GS_UNIFORM_LINES, GT_DRAM_FREE,
    QS_CYCLE, QS_UBUF_HI, QS_UBUF_LO, QS_ULINE, QS_UNIF_READS, QS_UPTR, QS_UPTR_AT)
from vc4infer.emu.timing import (
    CACHE_LINE_BYTES, TP_DRAM_BPC, TP_DRAM_LATENCY, TP_TMU_L2_LINE)


@jit_inline
def uniform_in_buffer(qs, q):
    """Whether the next uniform lies in the buffer of the previous one with no uniforms_address
    write pending: the common case, which `pop_uniform` reads without core's `_read_uniform`
    and its checks (a call with many array arguments, which costs more than the read itself)."""
    a = qs[q, QS_UPTR]
    return qs[q, QS_UPTR_AT] < 0 and qs[q, QS_UBUF_LO] <= a and a + 4 <= qs[q, QS_UBUF_HI] and (a & 3) == 0


@jit_inline
def pop_uniform(qs, q, mem32, membase):
    a = qs[q, QS_UPTR]
    qs[q, QS_UPTR] = a + 4
    qs[q, QS_UNIF_READS] += 1
    return mem32[(a - membase) >> 2]


@jit
def uniform_line_stall(q, addr, qs, gs, gt, mem, membase, l2tag, l2state, l2data, tp):
    """Modelled cycles a uniform read at `addr` waits when it enters a new 64-byte line (timing.py)."""
    line = addr // CACHE_LINE_BYTES
    if line == qs[q, QS_ULINE]:
        return 0
    qs[q, QS_ULINE] = line
    gs[GS_UNIFORM_LINES] += 1
    cycle = float(qs[q, QS_CYCLE])
    s, way, missed = tmu.l2_line(mem, membase, line, l2tag, l2state, l2data, gs[GS_L2_CLOCK])
    gs[GS_L2_CLOCK] += 1
    if not missed:                              # the line may still be on its way
        arrival = tmu.pending_arrival(l2state, s, way, tmu.own_fetch_arrival(cycle, tp))
        return np.int64(max(tp[TP_TMU_L2_LINE], np.ceil(arrival - cycle)))
    gs[GS_UNIFORM_L2_MISSES] += 1
    gs[GS_DRAM_BYTES] += CACHE_LINE_BYTES
    start = max(cycle, gt[GT_DRAM_FREE])
    gt[GT_DRAM_FREE] = start + CACHE_LINE_BYTES / tp[TP_DRAM_BPC]
    ready = start + tp[TP_DRAM_LATENCY] + CACHE_LINE_BYTES / tp[TP_DRAM_BPC]
    l2state[s, way, tmu.L2_READY] = np.int64(np.ceil(ready))
    return np.int64(np.ceil(ready - cycle))
