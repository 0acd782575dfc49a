"""The instruction caches (QIC): one per slice, shared by its 4 QPUs, backed by the L2C.

Geometry and policy are in timing.py (4 KiB, 4-way, 64-byte lines, LRU, no prefetch). A QPU looks
its code line up only when a fetch enters another line than its last one (`fetch_stall`), so
straight code within a line and tight loops cost nothing. A line another QPU of the slice is still
fetching makes the later reader wait for the same fill. Like the TMU caches, the QICs are
invalidated at every launch (execute_qpu with noflush = 0 flushes them).
"""
import numpy as np

from vc4infer.emu import tmu
from vc4infer.emu.jit import jit
from vc4infer.emu.state import GS_QIC_CLOCK, GS_QIC_L2_MISSES, GS_QIC_MISSES, NSLICES, QPUS_PER_SLICE
from vc4infer.emu.timing import QIC_SETS, QIC_WAYS

#: qic[slice, set, way, QIC_*]: the line held (-1: none), its LRU stamp, the cycle its data arrives
QIC_TAG, QIC_STAMP, QIC_READY = 0, 1, 2


def new_cache() -> np.ndarray:
    """Empty instruction caches for every slice."""
    qic = np.zeros((NSLICES, QIC_SETS, QIC_WAYS, 3), dtype=np.int64)
    invalidate(qic)
    return qic


def invalidate(qic: np.ndarray) -> None:
    """Forget every cached line (what a launch with noflush = 0 does)."""
    qic[...] = 0
    qic[..., QIC_TAG] = -1


@jit
def fetch_stall(q, line, cycle, gs, gt, qic, mem, membase, l2tag, l2state, l2data, tp):
    """Modelled cycles QPU q's fetch at `cycle` waits for code line `line` (not its last line).
    A compiled call, not inlined: it runs only when a fetch enters another line, and inlined into
    both loops it lengthened the emulator's first compile by ~25 s."""
    sl = q // QPUS_PER_SLICE
    s = line % QIC_SETS
    way = -1
    for w in range(QIC_WAYS):
        if qic[sl, s, w, QIC_TAG] == line:
            way = w
    gs[GS_QIC_CLOCK] += 1
    if way >= 0:                                # a hit, perhaps on a fill still on its way
        qic[sl, s, way, QIC_STAMP] = gs[GS_QIC_CLOCK]
        return max(np.int64(0), qic[sl, s, way, QIC_READY] - cycle)
    way = 0
    for w in range(1, QIC_WAYS):
        if qic[sl, s, w, QIC_STAMP] < qic[sl, s, way, QIC_STAMP]:
            way = w
    gs[GS_QIC_MISSES] += 1
    wait, missed = tmu.line_read_stall(line, float(cycle), gs, gt, mem, membase, l2tag, l2state,
                                       l2data, tp)
    if missed:
        gs[GS_QIC_L2_MISSES] += 1
    qic[sl, s, way, QIC_TAG] = line
    qic[sl, s, way, QIC_STAMP] = gs[GS_QIC_CLOCK]
    qic[sl, s, way, QIC_READY] = cycle + wait
    return wait
