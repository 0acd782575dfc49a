"""The shared L2C of the timing model: a line keeps the cycle its data arrives, and whoever reads
it before then waits for it; the LRU order is one clock for TMU and uniform accesses alike."""
import math

import numpy as np

from emu_rig import Rig
from vc4infer.emu import state, timing, tmu
from vc4infer.emu.uniforms import uniform_line_stall
from vc4infer.qpu import qpu

CLOCK_HZ = 250e6
MEMBASE = 0x10000


def machine(n_qpus=12):
    qs = np.zeros((n_qpus, state.QS_N), np.int64)
    qs[:, state.QS_ULINE] = -1
    return (qs, np.zeros(state.GS_N, np.int64), np.zeros(state.GT_N, np.float64),
            np.zeros(1 << 16, np.uint8), tmu.new_caches(state.NSLICES * state.TMUS_PER_SLICE))


def read_line(q, at_cycle, addr, qs, gs, gt, mem, caches, tp):
    """Modelled stall of QPU q's uniform read entering the line of `addr` at `at_cycle`."""
    qs[q, state.QS_CYCLE] = at_cycle
    qs[q, state.QS_ULINE] = -1
    _, _, l2tag, l2state, l2data = caches
    return uniform_line_stall(q, addr, qs, gs, gt, mem, MEMBASE, l2tag, l2state, l2data, tp)


def test_a_line_on_its_way_makes_later_readers_wait_for_it():
    tp = timing.parameters(CLOCK_HZ)
    qs, gs, gt, mem, caches = machine()
    latency = timing.DRAM_LATENCY_SECONDS * CLOCK_HZ + 64 * CLOCK_HZ / timing.DRAM_BYTES_PER_SECOND
    addr = MEMBASE + 256
    first = read_line(0, 1000, addr, qs, gs, gt, mem, caches, tp)        # misses: the SDRAM fetch
    assert first == math.ceil(latency)
    arrival = 1000 + first
    # 10 cycles later another QPU finds the line in the L2C, but its data is not there yet
    assert read_line(1, 1010, addr, qs, gs, gt, mem, caches, tp) == arrival - 1010
    # once it has arrived, a hit costs the L2C access only
    assert read_line(2, arrival + 50, addr, qs, gs, gt, mem, caches, tp) == timing.TMU_L2_HIT_CYCLES_PER_LINE
    assert gs[state.GS_UNIFORM_L2_MISSES] == 1


def test_a_reader_earlier_in_modelled_time_waits_no_longer_than_its_own_fetch():
    # the QPUs are emulated in turn: a line may carry the arrival of a fetch that starts later
    tp = timing.parameters(CLOCK_HZ)
    qs, gs, gt, mem, caches = machine()
    addr = MEMBASE + 512
    late = read_line(0, 5000, addr, qs, gs, gt, mem, caches, tp)
    own = read_line(1, 100, addr, qs, gs, gt, mem, caches, tp)
    assert own == late                       # an SDRAM fetch of its own, from cycle 100
    # and the line now arrives at that earlier time for everyone
    assert read_line(2, 100 + own + 1, addr, qs, gs, gt, mem, caches, tp) == timing.TMU_L2_HIT_CYCLES_PER_LINE


@qpu
def uniforms_then_tmu(asm, lines, set_stride_bytes):
    mov(r3, uniform)                     # T0: the first of four lines in the set of the last
    mov(uniforms_address, uniform)       # the uniform stream moves into the data buffer
    ldi(r2, set_stride_bytes)
    nop()
    for _ in range(16 * lines):          # `lines` lines through the uniforms cache
        mov(r0, uniform)
    mov(r1, r3)
    for _ in range(4):                   # T0 .. T3 through the TMU: T3 evicts the LRU line
        mov(tmu0_s, r1)
        nop(sig="load tmu0")
        iadd(r1, r1, r2)
    mov(tmu0_s, r3)                      # T0 again
    nop(sig="load tmu0")
    exit()


def test_lru_order_is_one_clock_for_the_tmu_and_the_uniform_stream():
    """Twenty lines stream through the uniforms cache, the last (U) in set S; then the TMU reads
    four more lines of S (T0..T3): T3 must evict U, the least recently used, so that T0 read again
    hits in the L2C (T0..T3 alias in the TMU's direct-mapped L1, so that read reaches the L2C).
    An LRU stamped by per-path counters once evicted T0 instead (5 L2C misses for the TMU)."""
    lines, set_stride = 20, timing.L2_SETS * timing.CACHE_LINE_BYTES
    rig = Rig(clock_hz=CLOCK_HZ)
    data = rig.buffer(np.zeros((lines * 64 + 4 * set_stride) // 4, np.uint32))
    t0 = data.bus_address + (lines - 1) * 64 + set_stride
    stats = rig.run(rig.program(uniforms_then_tmu, lines, set_stride), [[t0, data.bus_address]])
    assert stats.extra["tmu_l2_misses"] == 4
    assert stats.extra["tmu_l1_misses"] == 5
