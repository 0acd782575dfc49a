"""The emulated V3D's register block (offsets and fields: vc4infer.qpu.isa's V3D tables), which
hostside.driver.v3d reads and writes.

Identity registers give the Raspberry Pi's configuration (hardware reference section 1.1: 12 KiB
VPM, 16 semaphores, 2 TMUs and 4 QPUs per slice, 3 slices; fields no source gives read 0). The
16 performance counters count, for each launch that runs while they are enabled, the emulator's
own figures for their sources (`launch_counts`); SCRATCH and the other registers keep what is
written. Cache-clear bits are accepted and do nothing more: every launch starts with clean
caches (execute_qpu's sequence clears them).
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from vc4infer.device import LaunchStats
from vc4infer.emu.state import NSLICES, QPUS_PER_SLICE, TMUS_PER_SLICE
from vc4infer.emu.timing import ISSUE_CYCLES
from vc4infer.qpu import isa

IDENT0_VALUE = (2 << 24) | 0x443356          # TVER 2, "V3D"
IDENT1_VALUE = ((isa.VPM_BYTES // 1024) << 28 | isa.NUM_SEMAPHORES << 16
                | TMUS_PER_SLICE << 12 | QPUS_PER_SLICE << 8 | NSLICES << 4)


def launch_counts(stats: LaunchStats) -> np.ndarray:
    """What each performance-counter source (0..29) would have counted during one emulated
    launch. QPU cycles are modelled V3D cycles: idle = the launch's length on every QPU minus
    each running QPU's time to its end; executing = issued instructions x ISSUE_CYCLES. An
    instruction-cache miss is a code line a QPU entered that its slice's cache did not hold
    (qic.py), every other instruction a hit. The uniforms cache misses once per 64-byte line a QPU
    enters; TMU requests are 16 elements = 4 quads, a TMU cache miss is a line fetched into its
    L1; L2C hits and misses are those of the TMU, uniform and code line fills. The sources it has
    no model of (3D pipeline, scoreboard, varyings, VPM arbitration) stay 0."""
    counts = np.zeros(len(isa.V3D_COUNTER_SOURCES), dtype=np.int64)
    length = max(stats.cycles, default=0)
    extra = stats.extra
    instructions = sum(stats.instructions)
    uniform_lines = int(extra.get("uniform_lines", 0))
    uniform_misses = int(extra.get("uniform_l2_misses", 0))
    tmu_misses, tmu_l2_misses = int(extra.get("tmu_l1_misses", 0)), int(extra.get("tmu_l2_misses", 0))
    code_misses = int(extra.get("instruction_cache_misses", 0))
    code_l2_misses = int(extra.get("instruction_l2_misses", 0))
    counts[13] = isa.NUM_QPUS * length - sum(stats.cycles)
    counts[16] = ISSUE_CYCLES * instructions
    counts[17] = int(stats.stalls.get("tmu", 0))
    counts[20] = instructions - code_misses
    counts[21] = code_misses
    counts[22] = sum(extra.get("uniforms_read", ())) - uniform_lines
    counts[23] = uniform_lines
    counts[24] = 4 * int(extra.get("tmu_requests", 0))
    counts[25] = tmu_misses
    counts[28] = ((tmu_misses - tmu_l2_misses) + (uniform_lines - uniform_misses)
                  + (code_misses - code_l2_misses))
    counts[29] = tmu_l2_misses + uniform_misses + code_l2_misses
    return counts


class EmulatedV3D:
    """Register words by byte offset (isa's V3D offsets); `record_launch` after each
    launch advances the enabled performance counters."""

    def __init__(self):
        self._words: Dict[int, int] = {isa.V3D_IDENT0: IDENT0_VALUE, isa.V3D_IDENT1: IDENT1_VALUE,
                                       isa.V3D_L2CACTL: 1}
        self._counters = np.zeros(isa.V3D_PCTR_COUNT, dtype=np.int64)

    def read_word(self, offset: int) -> int:
        counter = _counter_at(offset)
        if counter is not None:
            return int(self._counters[counter]) & 0xFFFFFFFF
        return self._words.get(offset, 0)

    def write_word(self, offset: int, value: int) -> None:
        counter = _counter_at(offset)
        if counter is not None:
            self._counters[counter] = value
        elif offset == isa.V3D_PCTRC:                       # write 1 to clear counter n
            for n in range(isa.V3D_PCTR_COUNT):
                if value >> n & 1:
                    self._counters[n] = 0
        elif offset in (isa.V3D_IDENT0, isa.V3D_IDENT1, isa.V3D_IDENT2, isa.V3D_SLCACTL):
            pass                                         # read-only / clear bits
        elif offset == isa.V3D_L2CACTL:
            self._words[offset] = value & 1              # L2CCLR and L2CDIS act, are not kept
        else:
            self._words[offset] = value & 0xFFFFFFFF

    def record_launch(self, stats: LaunchStats) -> None:
        """Add one launch's counts to every enabled counter (PCTRE bit 31 and the counter's bit)."""
        enable = self._words.get(isa.V3D_PCTRE, 0)
        if not enable & isa.V3D_PCTRE_ENABLE:
            return
        counts = launch_counts(stats)
        for n in range(isa.V3D_PCTR_COUNT):
            if enable >> n & 1:
                source = self._words.get(isa.v3d_pctrs(n), 0) & 0x1F
                if source < len(counts):
                    self._counters[n] = (self._counters[n] + counts[source]) & 0xFFFFFFFF


def _counter_at(offset: int):
    """n when `offset` is PCTRn's value register, else None."""
    n, rest = divmod(offset - isa.v3d_pctr(0), 8)
    return n if rest == 0 and 0 <= n < isa.V3D_PCTR_COUNT else None
