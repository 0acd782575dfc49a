"""The instruction caches of the timing model (qic.py): one 4 KiB, 4-way QIC per slice, filled
64-byte line by line through the L2C, no prefetch.

Expected counts come from the code's layout (a code buffer starts on a 4 KiB boundary, so line i
holds instructions 8i .. 8i + 7) and costs from timing.py's published or stated parameters."""
import math

import pytest

from emu_rig import both_paths, Rig
from vc4infer.emu import timing
from vc4infer.qpu import assemble, qpu

CLOCK_HZ = 250e6
LINE_INSTRUCTIONS = timing.CACHE_LINE_BYTES // 8


@pytest.fixture(autouse=True, params=["strict", "fast"])
def _mode(request, monkeypatch):
    both_paths(request, monkeypatch)


def sdram_fetch_cycles() -> int:
    """A lone line fill from SDRAM: latency plus the line's transfer (timing.py)."""
    return math.ceil(timing.DRAM_LATENCY_SECONDS * CLOCK_HZ
                     + timing.CACHE_LINE_BYTES * CLOCK_HZ / timing.DRAM_BYTES_PER_SECOND)


@qpu
def straight(asm, n):
    for _ in range(n):
        nop()
    exit()


@qpu
def loop(asm, body, passes):
    ldi(r0, passes)
    L.top
    for _ in range(body):
        nop()
    isub(r0, r0, 1, set_flags=True)
    jzc(L.top)
    nop()
    nop()
    nop()
    exit()


def n_lines(kernel, *args) -> int:
    return math.ceil(len(assemble(kernel, *args)) / timing.CACHE_LINE_BYTES)


def line_entries(body: int, passes: int) -> int:
    """How many times the fetches of `loop` enter a line other than the last one's: the PC trace
    (instruction indices) of the program, walked."""
    top, last = 1, 1 + body + 4                    # ldi, body, isub, branch, 3 delay slots
    trace = [0] + [i for _ in range(passes) for i in range(top, last + 1)]
    trace += list(range(last + 1, last + 5))       # exit: interrupt, thread end, 2 nops
    lines = [i // LINE_INSTRUCTIONS for i in trace]
    return 1 + sum(a != b for a, b in zip(lines, lines[1:]))


def test_straight_code_misses_each_line_once_and_waits_for_the_sdram():
    rig = Rig(clock_hz=CLOCK_HZ)
    n = 200
    stats = rig.run(rig.program(straight, n), [[]])
    lines = n_lines(straight, n)
    assert stats.extra["instruction_cache_misses"] == lines
    assert stats.extra["instruction_l2_misses"] == lines
    # one QPU: each fill starts when the QPU reaches the line, the SDRAM idle by then
    assert stats.stalls["instruction_fetch"] == lines * sdram_fetch_cycles()
    assert stats.cycles[0] == stats.instructions[0] * timing.ISSUE_CYCLES + lines * sdram_fetch_cycles()


def test_a_loop_that_fits_the_cache_fetches_its_code_once():
    body, passes = 300, 6                          # 2.4 KiB of loop: 39 lines in a 64-line cache
    rig = Rig(clock_hz=CLOCK_HZ)
    stats = rig.run(rig.program(loop, body, passes), [[]])
    assert stats.extra["instruction_cache_misses"] == n_lines(loop, body, passes)


def test_a_loop_larger_than_the_cache_misses_every_line_on_every_pass():
    # 700 instructions (5.6 KiB): every set holds at least 5 of the loop's lines, so LRU evicts
    # each line before its next pass needs it
    body, passes = 700, 3
    rig = Rig(clock_hz=CLOCK_HZ)
    stats = rig.run(rig.program(loop, body, passes), [[]])
    entries = line_entries(body, passes)
    assert entries > passes * (body // LINE_INSTRUCTIONS)
    assert stats.extra["instruction_cache_misses"] == entries
    # the code's lines are read from SDRAM once; later passes find them in the 32 KiB L2C
    assert stats.extra["instruction_l2_misses"] == n_lines(loop, body, passes)


def test_the_qpus_of_a_slice_share_its_cache_and_wait_for_the_same_fill():
    n = 120
    lines = n_lines(straight, n)
    rig = Rig(clock_hz=CLOCK_HZ)
    code = rig.program(straight, n)
    two = rig.run(code, [[], []])                  # QPUs 0 and 1: slice 0
    assert two.extra["instruction_cache_misses"] == lines
    # the second QPU reaches each line as the first starts its fill, and waits as long
    assert two.stalls["instruction_fetch"] == 2 * lines * sdram_fetch_cycles()
    twelve = rig.run(code, [[]] * 12)              # three slices, three caches, one L2C
    assert twelve.extra["instruction_cache_misses"] == 3 * lines
    assert twelve.extra["instruction_l2_misses"] == lines


def test_each_launch_starts_with_empty_caches():
    rig = Rig(clock_hz=CLOCK_HZ)
    code = rig.program(straight, 40)
    first = rig.run(code, [[]])
    again = rig.run(code, [[]])
    assert again.extra["instruction_cache_misses"] == first.extra["instruction_cache_misses"] > 0
