"""The uniform stream's fast cases, shared by the general loop (core.py) and the fast path.

A uniform read normally comes from the buffer of the previous one, with no uniforms_address
write pending: `uniform_in_buffer` tells, `pop_uniform` reads it. A read that enters a new
64-byte line goes through the uniforms cache model: `uniform_line_stall` (timing.py).
"""
from vc4infer.emu import tmu
from vc4infer.emu.jit import jit, jit_inline
from vc4infer.emu.state import (
    GS_UNIFORM_L2_MISSES, GS_UNIFORM_LINES, QS_CYCLE, QS_UBUF_HI, QS_UBUF_LO, QS_ULINE, QS_UNIF_READS,
    QS_UPTR, QS_UPTR_AT)
from vc4infer.emu.timing import CACHE_LINE_BYTES


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
    wait, missed = tmu.line_read_stall(line, float(qs[q, QS_CYCLE]), gs, gt, mem, membase, l2tag,
                                       l2state, l2data, tp)
    if missed:
        gs[GS_UNIFORM_L2_MISSES] += 1
    return wait
