"""Every parameter of the emulator's timing model, each with its source or the reasoning behind it.

Figures produced with these parameters are *modelled*: no Raspberry Pi measured them. Published
measurements exist only for the QPU issue rate and for VPM DMA throughput; everything else is an
estimate, said so below, chosen to be plausible and to keep relative costs (hit < L2 < DRAM) right.
All cycle counts are V3D clock cycles; the model runs at `clock_hz` (250, 300 or 400 MHz).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from vc4infer.qpu import isa

#: One instruction issues every 4 clocks per QPU: "instruction cycle time of four system clocks"
#: (reference guide p.16; each instruction runs 4 quads through a 4-wide ALU).
ISSUE_CYCLES = 4

#: VPM generic read: the guide makes data available 3 instructions after the read setup (p.56);
#: hardware stalls an earlier read instead of returning garbage (vc4asm addendum), so an early read
#: waits until then.
VPM_READ_SETUP_CYCLES = isa.VPM_READ_SETUP_INSTRUCTIONS * ISSUE_CYCLES

#: A QPU stalled on a semaphore or the mutex issues again at the first instruction slot after the
#: release: the guide says only that it stalls until the operation can complete (p.24, p.34); no
#: wake-up latency is published, so the whole next slot is charged (the pessimistic reading of a
#: release seen at the end of the releasing instruction).
SYNC_WAKE_CYCLES = ISSUE_CYCLES

# VCD (DMA load) and VDW (DMA store) are modelled as: a fixed start-up + bytes / rate, and each
# engine handles one transfer at a time (requests queue in order). Both are set by published
# benchmarks (Pi 2, V3D at 250 MHz; research/anchors.md section 4b), two sizes per direction:
#: (bytes per transfer, bytes per second) of the published VPM DMA benchmarks: one QPU moving
#: blocks back to back (vc4infer.benchmarks.calibration runs the same transfers)
DMA_LOAD_POINTS = ((64, 200e6), (16 * 64, 690e6))          # one vector; 16 x 16 words
DMA_STORE_POINTS = ((64, 300e6), (128 * 64, 1.12e9))       # one vector; 128 vectors
DMA_POINTS_CLOCK_HZ = 250e6
#: instructions the published loops spent per transfer besides waiting for it (setup, start,
#: count, branch, 3 delay slots). Their code is not published: a minimal loop is assumed, which
#: leaves the most of each period to the transfer itself (the pessimistic reading).
DMA_LOOP_INSTRUCTIONS = 7


def _dma_fit(points) -> tuple:
    """(start-up seconds, bytes per second) of a transfer, from two (bytes, bytes per second)
    benchmark points less the benchmark loop's own instructions."""
    loop = DMA_LOOP_INSTRUCTIONS * ISSUE_CYCLES / DMA_POINTS_CLOCK_HZ
    (small, small_rate), (large, large_rate) = points
    small_s, large_s = small / small_rate - loop, large / large_rate - loop
    per_byte = (large_s - small_s) / (large - small)
    return small_s - small * per_byte, 1.0 / per_byte


# The engines move data between the VPM and the SDRAM, whose clock does not follow the V3D's:
# whether their start-up and rate scale with the V3D clock is not published, so both are kept
# in seconds (the pessimistic reading: at 400 MHz a transfer takes as long as at 250 MHz).
#: VCD start-up (s) and sustained rate (bytes/s): ~130 ns, ~0.82 GB/s
VCD_STARTUP_SECONDS, VCD_BYTES_PER_SECOND = _dma_fit(DMA_LOAD_POINTS)
#: VDW start-up (s) and sustained rate (bytes/s): ~43 ns, ~1.15 GB/s
VDW_STARTUP_SECONDS, VDW_BYTES_PER_SECOND = _dma_fit(DMA_STORE_POINTS)

def dma_cycles(nbytes: int, store: bool, clock_hz: Optional[float] = None) -> float:
    """Modelled V3D cycles of one lone VDW store (VCD load) of `nbytes` at `clock_hz` (default
    DEFAULT_CLOCK_HZ): for the kernels' own planning (contention with other transfers and the
    SDRAM not counted)."""
    startup, rate = ((VDW_STARTUP_SECONDS, VDW_BYTES_PER_SECOND) if store
                     else (VCD_STARTUP_SECONDS, VCD_BYTES_PER_SECOND))
    return (startup + nbytes / rate) * (clock_hz or DEFAULT_CLOCK_HZ)


#: Shared SDRAM bandwidth that DMA and TMU line fills compete for. Not published; derived as
#: 2 x sdram_freq (450 MHz on Pi 2/3/Zero) x 4 bytes for 32-bit LPDDR2 (anchors.md §4b, DERIVED).
DRAM_BYTES_PER_SECOND = 3.6e9
#: Latency of a line fill from SDRAM (a TMU or uniforms-cache miss in the L2C). Not published;
#: calibrated: the value with which py-videocore's 12-thread SGEMM, whose time goes mostly to
#: uniform-stream line fills (~35,000 per QPU, the B matrix), models at its published 8.32
#: GFLOPS at 250 MHz (vc4infer.benchmarks.calibration: 8.36 modelled; py-videocore's own code,
#: run here, 8.44). A bare LPDDR2 access takes ~100-150 ns; the rest is the way from the V3D's
#: L2C through the VideoCore memory system and the wait behind the other QPUs' fills, which one
#: published figure cannot tell apart from lower bandwidth: it is all charged as latency (the
#: reading that also slows kernels which cannot keep several fills in flight).
DRAM_LATENCY_SECONDS = 430e-9

#: TMU direct lookup that hits in its L1 cache: cycles from the TMU write to data in the receive
#: FIFO. Estimate (not published): 9 instructions, what Mesa-era kernels hide between a TMU write
#: and its ldtmu when they can.
TMU_HIT_LATENCY_CYCLES = 36
#: A TMU accepts one 16-element request per this many cycles (4 lanes per clock like the QPU's
#: quads). Estimate.
TMU_CYCLES_PER_REQUEST = 4
# Requests complete in the order a TMU received them: the guide returns each QPU's requests in
# order (p.39) and says nothing of a hit overtaking another QPU's miss at the same TMU, so none
# does (the pessimistic reading; it also makes a hit on an L1 line still on its way wait for it).

#: Extra cycles for each 64-byte line that misses the TMU L1 and hits the V3D L2C. Estimate.
TMU_L2_HIT_CYCLES_PER_LINE = 8
#: Geometry of the modelled caches. TMU L1: 4 KiB, 64-byte lines (vc4asm addendum, measured); its
#: associativity is not published: direct-mapped is modelled, which matches the addendum's
#: observation that 4 KiB-aliasing addresses evict each other. L2C: "32 KiB ?", 4-way, 64-byte
#: lines (vc4asm addendum, size uncertain); LRU replacement is an assumption.
CACHE_LINE_BYTES = 64
TMU_L1_LINES = 4096 // CACHE_LINE_BYTES
L2_WAYS = 4
L2_SETS = 32768 // CACHE_LINE_BYTES // L2_WAYS

#: Uniforms: the stream is read through a per-slice uniforms cache backed by the L2C (guide p.14);
#: its size is not published (spec U15). Modelled: each QPU keeps its current 64-byte line; a read
#: that enters another line costs that line's L2C access (TMU_L2_HIT_CYCLES_PER_LINE on a hit, SDRAM
#: latency + transfer on a miss, the rest of the fetch on a hit in a line still on its way: tmu.py)
#: as a stall, with no prefetch credit. Estimate. The reading
#: instruction issues after the stall, and so do its effects (a DMA it starts).
#: SFU: result in r4 three instructions after the write (guide p.23); no further stall is modelled.
#: Instructions: each slice's QPUs share one instruction cache (QIC) of 4 KiB, 4-way, 64-byte lines
#: (vc4asm addendum, "Cache details", measured), backed by the L2C (guide p.14). Modelled like the
#: uniforms: a fetch that enters another line looks it up in its slice's QIC (LRU, an assumption);
#: a miss costs that line's L2C access as a stall, the same as a uniform line's. Nothing published
#: says the QIC prefetches the next line, so it does not (the pessimistic reading): straight code
#: longer than the cache misses every 8 instructions, and a loop body above 4 KiB every pass.
QIC_WAYS = 4
QIC_SETS = 4096 // CACHE_LINE_BYTES // QIC_WAYS
CLOCKS_HZ = (250e6, 300e6, 400e6)
DEFAULT_CLOCK_HZ = 250e6

# indices of the parameter vector handed to the compiled loop
(TP_ISSUE, TP_VPM_READ, TP_VCD_STARTUP, TP_VCD_BPC, TP_VDW_STARTUP, TP_VDW_BPC, TP_DRAM_BPC,
 TP_DRAM_LATENCY, TP_TMU_HIT, TP_TMU_ISSUE, TP_TMU_L2_LINE, TP_N) = range(12)


def parameters(clock_hz: float = DEFAULT_CLOCK_HZ) -> np.ndarray:
    """The timing parameters in cycles of a V3D clock of `clock_hz`, as the loop's float64 vector."""
    if clock_hz <= 0:
        raise ValueError(f"clock_hz must be positive, got {clock_hz}")
    tp = np.zeros(TP_N, dtype=np.float64)
    tp[TP_ISSUE] = ISSUE_CYCLES
    tp[TP_VPM_READ] = VPM_READ_SETUP_CYCLES
    tp[TP_VCD_STARTUP] = VCD_STARTUP_SECONDS * clock_hz
    tp[TP_VCD_BPC] = VCD_BYTES_PER_SECOND / clock_hz
    tp[TP_VDW_STARTUP] = VDW_STARTUP_SECONDS * clock_hz
    tp[TP_VDW_BPC] = VDW_BYTES_PER_SECOND / clock_hz
    tp[TP_DRAM_BPC] = DRAM_BYTES_PER_SECOND / clock_hz
    tp[TP_DRAM_LATENCY] = DRAM_LATENCY_SECONDS * clock_hz
    tp[TP_TMU_HIT] = TMU_HIT_LATENCY_CYCLES
    tp[TP_TMU_ISSUE] = TMU_CYCLES_PER_REQUEST
    tp[TP_TMU_L2_LINE] = TMU_L2_HIT_CYCLES_PER_LINE
    return tp
