"""The timing model on programs whose cycle counts follow by hand from timing.py's parameters:
4 cycles per instruction, VPM read setup latency, VDW start-up + bytes / rate through the shared
engine and SDRAM, TMU hit latency and SDRAM line fills; stalls reported by cause. Each program's
code comes from SDRAM a 64-byte line (8 instructions) at a time, through its slice's empty
instruction cache (test_qic.py)."""
import math

import numpy as np
import pytest

from emu_rig import Rig
from vc4infer.emu import timing
from vc4infer.qpu import assemble, qpu

ISSUE = timing.ISSUE_CYCLES


def n_words(kernel, *args):
    return len(assemble(kernel, *args)) // 8


def dram_line(start, dram_free, clock_hz):
    """(ready cycle, new SDRAM-free cycle) of one 64-byte line fetched from SDRAM at `start`."""
    per_byte = clock_hz / timing.DRAM_BYTES_PER_SECOND
    begin = max(start, dram_free)
    return begin + timing.DRAM_LATENCY_SECONDS * clock_hz + 64 * per_byte, begin + 64 * per_byte


def line_fill(clock_hz=250e6):
    """Cycles a lone QPU waits for a line from an idle SDRAM (a code, uniform or TMU line)."""
    return math.ceil(dram_line(0, 0.0, clock_hz)[0])


def code_lines(kernel, *args):
    return math.ceil(n_words(kernel, *args) / 8)


@qpu
def straight_line(asm, n):
    for _ in range(n):
        nop()
    exit()


@pytest.mark.parametrize("clock_hz", timing.CLOCKS_HZ)
def test_straight_line_code_issues_every_four_cycles(clock_hz):
    rig = Rig(clock_hz=clock_hz)
    stats = rig.run(rig.program(straight_line, 10), [[]])
    n = n_words(straight_line, 10)
    fetch = code_lines(straight_line, 10) * line_fill(clock_hz)
    assert stats.instructions == (n,)
    assert stats.cycles == (ISSUE * n + fetch,)
    assert stats.modelled_seconds == pytest.approx((ISSUE * n + fetch) / clock_hz)
    assert stats.stalls["instruction_fetch"] == sum(stats.stalls.values()) == fetch


@qpu
def early_vpm_read(asm):
    setup_vpm_read(nrows=1)          # cycle 0
    mov(r0, vpm)                     # issues at 4, data ready at VPM_READ_SETUP_CYCLES
    exit()


def test_vpm_read_right_after_setup_stalls_until_the_data_is_there():
    rig = Rig()
    stats = rig.run(rig.program(early_vpm_read), [[]])
    stall = timing.VPM_READ_SETUP_CYCLES - ISSUE
    assert stats.stalls["vpm_read"] == stall
    assert stats.stalls["instruction_fetch"] == line_fill()                 # one code line
    assert stats.cycles == (ISSUE * n_words(early_vpm_read) + stall + line_fill(),)


@qpu
def read_uniforms(asm, n):
    for _ in range(n):
        mov(r0, uniform)
    exit()


def test_uniform_stream_pays_for_each_new_line():
    rig = Rig()
    stats = rig.run(rig.program(read_uniforms, 17), [list(range(17))])
    # reads 0 and 16 enter uniform lines 0 and 1, instructions 0, 8 and 16 code lines 0, 1 and
    # 2: one SDRAM fill at a time, each while the QPU waits for it
    assert stats.stalls["uniforms"] == 2 * line_fill()
    assert stats.stalls["instruction_fetch"] == 3 * line_fill()
    assert stats.extra["uniform_lines"] == 2 and stats.extra["uniform_l2_misses"] == 2
    assert stats.cycles == (ISSUE * n_words(read_uniforms, 17) + 5 * line_fill(),)


@qpu
def one_row_store(asm):
    mov(ra0, uniform)                # 0: the uniform line comes from SDRAM
    setup_vpm_write()
    mov(vpm, 1)
    setup_dma_store(nrows=1)
    start_dma_store(ra0)             # the transfer starts
    wait_dma_store()                 # stalls until it ends
    exit()


def _store(start, engine_free, dram_free, nbytes, clock_hz):
    """(end, engine free, SDRAM free) of a VDW transfer requested at `start`."""
    dram_bpc = timing.DRAM_BYTES_PER_SECOND / clock_hz
    begin = max(start, engine_free)
    data = max(begin + timing.VDW_STARTUP_SECONDS * clock_hz, dram_free)
    end = data + nbytes / min(timing.VDW_BYTES_PER_SECOND / clock_hz, dram_bpc)
    return end, end, data + nbytes / dram_bpc


@pytest.mark.parametrize("clock_hz", [250e6, 400e6])
def test_dma_store_time_and_the_shared_engine(clock_hz):
    rig = Rig(clock_hz=clock_hz)
    outs = [rig.buffer(64, f"out{i}") for i in range(2)]
    stats = rig.run(rig.program(one_row_store), [[outs[0]], [outs[1]]])
    # both QPUs (slice 0) start on code line 0: QPU 0's fill, which QPU 1 waits for too
    code_ready, dram = dram_line(0, 0.0, clock_hz)
    fetched = math.ceil(code_ready)
    # both read their uniform then (QPU 0 first): two SDRAM line fetches
    ready0, dram = dram_line(fetched, dram, clock_hz)
    ready1, dram = dram_line(fetched, dram, clock_hz)
    after = [math.ceil(ready0) + ISSUE, math.ceil(ready1) + ISSUE]
    starts = [a + 3 * ISSUE for a in after]                       # start_dma_store issues
    end0, engine, dram = _store(starts[0], 0.0, dram, 64, clock_hz)
    end1, engine, dram = _store(starts[1], engine, dram, 64, clock_hz)   # queued behind QPU 0's
    ends = [math.ceil(end0), math.ceil(end1)]
    waits = [s + ISSUE for s in starts]
    # instruction 8 (the thread end's second delay slot) enters code line 1: QPU 0 fetches it
    # once the SDRAM is free of the stores; QPU 1, later, waits for the rest of that fill
    line1 = [e + 3 * ISSUE for e in ends]
    line1_ready, _ = dram_line(line1[0], dram, clock_hz)
    fetch_waits = [math.ceil(line1_ready) - line1[0], max(0, math.ceil(line1_ready) - line1[1])]
    assert list(stats.cycles) == [t + w + 2 * ISSUE for t, w in zip(line1, fetch_waits)]
    assert stats.stalls["dma_store_wait"] == sum(e - w for e, w in zip(ends, waits))
    assert stats.stalls["uniforms"] == math.ceil(ready0) + math.ceil(ready1) - 2 * fetched
    assert stats.stalls["instruction_fetch"] == 2 * fetched + sum(fetch_waits)
    assert stats.dma_store_bytes == 128 and stats.dma_load_bytes == 0


@qpu
def store_from_a_read_uniform(asm, combined):
    """A one-row DMA store whose address is the program's only uniform, read from SDRAM: by the
    store instruction itself (`combined`) or by an instruction just before it."""
    setup_vpm_write()
    mov(vpm, 1)
    setup_dma_store(nrows=1)
    if combined:
        mov(vpm_st_addr, uniform)
    else:
        mov(r0, uniform)
        mov(vpm_st_addr, r0)
    wait_dma_store()
    exit()


def test_a_dma_started_by_a_stalled_uniform_read_starts_after_the_stall():
    """The uniform's line fill holds the instruction back, and with it the DMA it starts: both
    programs end one instruction apart, not a line fill apart (the store is not booked at the
    cycle the instruction would have issued without the stall)."""
    ends = []
    for combined in (True, False):
        rig = Rig(clock_hz=250e6)
        out = rig.buffer(64, "out")
        stats = rig.run(rig.program(store_from_a_read_uniform, combined), [[out]])
        assert stats.stalls["uniforms"] > 20 * ISSUE              # a real SDRAM line fill
        ends.append(stats.cycles[0])
    assert ends[1] - ends[0] == ISSUE                             # the separate read's instruction


@qpu
def one_tmu_read(asm):
    mov(ra0, uniform)                # 0: the uniform line comes from SDRAM
    imul24(r0, element_number, 4)
    iadd(r0, r0, ra0)
    mov(tmu0_s, r0)                  # one 64-byte line, missing both caches
    nop(sig="load tmu0")             # waits for the data
    mov(tmu0_s, r0)                  # the same line again: an L1 hit
    nop(sig="load tmu0")
    exit()


def test_tmu_miss_then_hit_latency():
    clock = 250e6
    rig = Rig(clock_hz=clock)
    data = rig.buffer(np.arange(16, dtype=np.uint32))     # 4096-aligned: one cache line
    stats = rig.run(rig.program(one_tmu_read), [[data]])
    code_ready, dram = dram_line(0, 0.0, clock)           # code line 0, then the uniform's line
    ready, dram = dram_line(math.ceil(code_ready), dram, clock)
    request = math.ceil(ready) + 3 * ISSUE                # cycle of the first TMU write
    line_ready, _ = dram_line(request, dram, clock)
    miss_ready = math.ceil(max(request + timing.TMU_HIT_LATENCY_CYCLES, line_ready))
    first_stall = miss_ready - (request + ISSUE)
    second_stall = timing.TMU_HIT_LATENCY_CYCLES - ISSUE
    assert stats.stalls["tmu"] == first_stall + second_stall
    assert stats.extra["tmu_l1_misses"] == 1 and stats.extra["tmu_l2_misses"] == 1
    # the TMU line, the uniforms' line and two code lines (code line 1 from instruction 8 on)
    assert stats.tmu_bytes == 128 and stats.extra["dram_bytes"] == 4 * 64
    assert stats.stalls["instruction_fetch"] == math.ceil(code_ready) + line_fill(clock)
    assert stats.cycles == (ISSUE * n_words(one_tmu_read) + math.ceil(ready) + first_stall + second_stall
                            + line_fill(clock),)


@qpu
def tmu_read_line(asm):
    mov(r0, uniform)                 # the line's address
    imul24(r1, element_number, 4)
    iadd(tmu0_s, r0, r1)
    nop(sig="load tmu0")
    exit()


def test_a_tmu_completes_its_requests_in_order():
    """QPUs 0 and 1 share TMU0 of slice 0. QPU 0's request misses both caches; QPU 1's, a few
    cycles later, finds the same line in the TMU's L1 but still comes back after QPU 0's: it
    cannot end before QPU 0 (a hit overtaking the miss would end it ~100 cycles earlier)."""
    rig = Rig()
    data = rig.buffer(np.arange(16, dtype=np.uint32))
    stats = rig.run(rig.program(tmu_read_line), [[data], [data]])
    assert stats.extra["tmu_l1_misses"] == 1
    assert stats.cycles[1] >= stats.cycles[0]
    assert stats.stalls["tmu"] > 1.5 * timing.DRAM_LATENCY_SECONDS * 250e6    # both wait ~ a fill


@qpu
def mutex_section(asm):
    mutex_acquire()                  # 0
    nop()                            # 4
    nop()                            # 8
    mutex_release()                  # 12
    exit()


def test_mutex_wait_is_the_holders_remaining_time_and_one_slot():
    rig = Rig()
    stats = rig.run(rig.program(mutex_section), [[], []])
    n = n_words(mutex_section)
    # both fetch the one code line; QPU 0 takes the mutex then and releases it 12 cycles later;
    # QPU 1 issues again one instruction slot after the release
    start = line_fill()
    wait = 12 + timing.SYNC_WAKE_CYCLES
    assert stats.cycles[0] == start + ISSUE * n
    assert stats.stalls["mutex"] == wait
    assert stats.cycles[1] == start + wait + ISSUE * n


@qpu
def semaphore_handoff(asm):
    """QPU 0 waits on semaphore 3, QPU 1 raises it after two instructions."""
    mov(r0, uniform)                     # 0: which role (both uniforms share one line)
    isub(null, r0, 1, set_flags=True)
    jzs(L.raise_it)
    nop()
    nop()
    nop()
    sema_down(3)                         # QPU 0, instruction 6
    jmp(L.done)
    nop()
    nop()
    nop()
    L.raise_it
    nop()                                # QPU 1, instruction 11
    sema_up(3)                           # 12
    nop()
    nop()
    nop()
    L.done
    exit()


def test_semaphore_waiter_issues_one_slot_after_the_raise():
    rig = Rig(trace=[0, 1])
    code = rig.program(semaphore_handoff)
    stats = rig.run(code, [[0], [1]])
    at = {(r.qpu, (r.pc - code.bus_address) // 8): r.cycle for r in rig.backend.trace_records}
    tried = at[0, 5] + ISSUE                      # QPU 0 reaches its wait here ...
    raised = at[1, 12]                            # ... before QPU 1 raises the count
    assert tried < raised
    assert at[0, 6] == raised + timing.SYNC_WAKE_CYCLES
    assert stats.stalls["semaphore"] == at[0, 6] - tried


# Published VPM DMA throughputs on a Pi 2 with the V3D at 250 MHz (Sugizaki, Terminus-IMRC blog
# QV52/QV53, http://imrc.noip.me/blog/vc4/QV52/, as cited in Stadelmann's 2017 thesis):
# (direction, bytes per DMA, bytes per second)
PUBLISHED_DMA = [
    ("load", 64, 200e6),           # one 16-word vector: "ca. 200 MB/s"
    ("load", 16 * 16 * 4, 690e6),  # 16 rows x 16 words: "最大約690MB/s"
    ("store", 64, 300e6),          # one 16-word vector: "ca. 300 MB/s"
    ("store", 128 * 64, 1.12e9),   # 128 vectors: "1,12 GB/s"
]


@pytest.mark.parametrize("direction,nbytes,bytes_per_second", PUBLISHED_DMA)
def test_dma_constants_reproduce_the_published_throughputs(direction, nbytes, bytes_per_second):
    """start-up + bytes / rate of one transfer, plus the benchmark loop's own 7 instructions at
    250 MHz, is the published time per transfer; vc4infer.benchmarks.calibration runs the loop."""
    store = direction == "store"
    loop_seconds = timing.DMA_LOOP_INSTRUCTIONS * timing.ISSUE_CYCLES / 250e6
    modelled_seconds = timing.dma_cycles(nbytes, store, 250e6) / 250e6 + loop_seconds
    assert modelled_seconds == pytest.approx(nbytes / bytes_per_second, rel=1e-9)
    # the shared SDRAM is not what limits these transfers
    rate = timing.VDW_BYTES_PER_SECOND if store else timing.VCD_BYTES_PER_SECOND
    assert timing.DRAM_BYTES_PER_SECOND > rate


def test_dma_time_does_not_shrink_with_the_v3d_clock():
    """The engines move data to and from the SDRAM, whose clock is not the V3D's: a transfer
    takes the same time at 250 and 400 MHz (the pessimistic reading, vc4infer.emu.timing)."""
    for store in (False, True):
        assert timing.dma_cycles(1024, store, 400e6) / 400e6 == pytest.approx(
            timing.dma_cycles(1024, store, 250e6) / 250e6)


