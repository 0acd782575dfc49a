"""hostside.driver.v3d, the counterpart of py-videocore's videocore.v3d: register fields by name,
and performance counters that on the emu backend count what the emulator ran.

Expected values come from the reference guide (identity registers, counter semantics) and from
the programs themselves (instructions issued, uniforms read, lines touched), not from a run.
"""
# ruff: noqa: F821 - py-videocore style: a @qpu function finds the DSL names in its globals
import os

import numpy as np
import pytest

from drv_fake_boards import make_tree
from hostside.driver import Driver, DriverError, v3d
from vc4infer.qpu import assemble_program, qpu


@pytest.fixture
def drv():
    with Driver(backend="emu", strict=True) as driver:
        yield driver


def test_identity_registers_give_the_pi_configuration(drv):
    with v3d.RegisterMapping(drv) as regs:
        assert regs.read("TVER") == 2                                   # guide Table 49
        assert bytes([regs.read("IDSTR_V"), regs.read("IDSTR_3"), regs.read("IDSTR_D")]) == b"V3D"
        # a Raspberry Pi: 3 slices of 4 QPUs, 2 TMUs each, 16 semaphores, 12 KiB of VPM
        assert (regs.read("NSLC"), regs.read("QUPS"), regs.read("TUPS")) == (3, 4, 2)
        assert (regs.read("NSEM"), regs.read("VPMSZ")) == (16, 12)


def test_fields_read_and_write_by_name(drv):
    regs = v3d.V3DRegisters(drv)
    regs.write("SCRATCH", 0xDEADBEEF)
    assert regs.read("SCRATCH") == 0xDEADBEEF
    assert regs.read_word(0x010) == 0xDEADBEEF                         # SCRATCH's offset
    with pytest.raises(v3d.V3DRegisterError, match="read-only"):
        regs.write("TVER", 3)
    with pytest.raises(v3d.V3DRegisterError, match="write-only"):
        regs.read("CTCLR")
    with pytest.raises(v3d.V3DRegisterError, match="unknown V3D register field 'NOPE'"):
        regs.read("NOPE")
    with pytest.raises(v3d.V3DRegisterError, match="does not fit the 5-bit"):
        regs.write("PCTRS0", 32)
    with pytest.raises(v3d.V3DRegisterError, match="multiple of 4"):
        regs.read_word(0x002)


@qpu
def add_two_rows(asm):
    """py-videocore's test_v3d program: Y = X[0] + X[1] for two 16-word rows, through the VPM."""
    setup_dma_load(nrows=2)
    start_dma_load(uniform)
    wait_dma_load()
    setup_vpm_read(nrows=2)
    setup_vpm_write()
    mov(r0, vpm)
    mov(r1, vpm)
    iadd(r2, r0, r1)
    mov(vpm, r2)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


QPU_SOURCES = [13, 16, 17, 20, 21, 22, 23, 24, 25]


def _run_add(drv):
    x = drv.copy(np.arange(32, dtype=np.int32).reshape(2, 16))
    y = drv.alloc(16, np.int32)
    drv.execute(n_threads=1, program=drv.program(add_two_rows), uniforms=[x.address, y.address])
    assert np.array_equal(np.array(y), [2 * (i + 8) for i in range(16)])


def test_performance_counters_count_the_program(drv):
    words = len(assemble_program(add_two_rows).code) // 8      # straight-line: every word runs once
    with v3d.RegisterMapping(drv) as regs:
        with v3d.PerformanceCounter(regs, QPU_SOURCES) as pc:
            _run_add(drv)
        counts = dict(zip(QPU_SOURCES, pc.result()))
    assert counts[16] == 4 * words          # 4 clocks per instruction, one QPU
    lines = -(-words // 8)                  # straight-line code through a cold instruction cache:
    assert counts[21] == lines              # the first fetch of each 64-byte line misses (model),
    assert counts[20] == words - lines      # every other fetch hits
    assert counts[22] + counts[23] == 2     # two uniforms read ...
    assert counts[23] == 1                  # ... from one 64-byte line
    assert counts[24] == counts[25] == 0    # no TMU request
    assert counts[17] == 0
    length = drv.last_stats.cycles[0]
    assert counts[13] == 11 * length        # the other 11 QPUs idle for the whole launch


@qpu
def gather16(asm):
    """One TMU request: 16 consecutive words (one 64-byte line) into the VPM and out."""
    mov(r0, uniform)
    shl(r1, element_number, 2)
    iadd(tmu0_s, r0, r1)
    nop(sig="load tmu0")
    setup_vpm_write()
    mov(vpm, r4)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_tmu_and_l2_counters(drv):
    x = drv.copy(np.arange(16, dtype=np.uint32))
    y = drv.alloc(16, np.uint32)
    with v3d.RegisterMapping(drv) as regs, v3d.PerformanceCounter(regs, [24, 25, 28, 29]) as pc:
        drv.execute(n_threads=1, program=drv.program(gather16), uniforms=[x.address, y.address])
    quads, tmu_misses, l2_hits, l2_misses = pc.result()
    assert np.array_equal(np.array(y), np.arange(16))
    assert quads == 4                       # 16 elements = 4 quads
    assert tmu_misses == 1                  # one line, first touch
    # cold L2: the TMU line, the uniforms' line and each code line miss
    code_lines = -(-len(assemble_program(gather16).code) // 64)
    assert (l2_hits, l2_misses) == (0, 2 + code_lines)


def test_counters_accumulate_only_while_enabled_and_clear(drv):
    with v3d.RegisterMapping(drv) as regs:
        with v3d.PerformanceCounter(regs, [20]) as pc:
            _run_add(drv)
            _run_add(drv)
        two = pc.result()[0]
        _run_add(drv)                          # disabled: not counted
        assert regs.read("PCTR0") == two
        words = len(assemble_program(add_two_rows).code) // 8
        assert two == 2 * (words - -(-words // 8))      # instruction-cache hits: not a line's first
        regs.write("CTCLR", 1)
        assert regs.read("PCTR0") == 0
        regs.write_word(v3d.PCTRE, 1)          # counter 0 enabled but bit 31 clear: no counting
        _run_add(drv)
        assert regs.read("PCTR0") == 0


def test_performance_counter_rejects_bad_sources(drv):
    regs = v3d.V3DRegisters(drv)
    with pytest.raises(v3d.V3DRegisterError, match="sources \\[30\\] do not exist"):
        v3d.PerformanceCounter(regs, [16, 30])
    with pytest.raises(v3d.V3DRegisterError, match="16 counters"):
        v3d.PerformanceCounter(regs, list(range(17)))


@pytest.mark.parametrize("board,base", [("pi3", 0x3F000000), ("pi1", 0x20000000)])
def test_hw_registers_map_the_socs_v3d_block(tmp_path, board, base):
    """On a board the block is mapped from /dev/mem at peripheral base + 0xC00000 (a sparse file
    holding TVER/"V3D" at that offset stands in for /dev/mem)."""
    root = make_tree(tmp_path / "root", board)
    mem = tmp_path / "mem"
    with open(mem, "wb") as f:
        f.truncate(base + v3d.V3D_OFFSET_FROM_PERI + 4096)
        f.seek(base + v3d.V3D_OFFSET_FROM_PERI)
        f.write((0x02443356).to_bytes(4, "little"))
    with v3d.V3DRegisters(mem_path=str(mem), root=str(root)) as regs:
        assert regs.read("TVER") == 2
        regs.write("SCRATCH", 0x1234)
    with open(mem, "rb") as f:
        f.seek(base + v3d.V3D_OFFSET_FROM_PERI + 0x10)
        assert f.read(4) == (0x1234).to_bytes(4, "little")
    os.remove(mem)


def test_hw_registers_refuse_a_machine_without_videocore_iv(tmp_path):
    root = make_tree(tmp_path / "root", "pi4")
    with pytest.raises(DriverError, match="no VideoCore IV V3D"):
        v3d.V3DRegisters(mem_path=str(tmp_path / "mem"), root=str(root))
