"""Strict mode: behaviour the hardware leaves undefined raises UndefinedBehaviourError naming the
QPU, the instruction and the rule; without strict mode the emulator gives the documented fallback."""
import numpy as np
import pytest

from emu_rig import Rig, words
from vc4infer.emu.errors import UndefinedBehaviourError
from vc4infer.qpu import qpu


@qpu
def regfile_read_after_write(asm):
    ldi(ra1, 5)
    mov(ra1, 9)
    mov(r0, ra1)                 # written by the previous instruction: old value (5) on hardware
    setup_vpm_write()
    mov(vpm, r0)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_regfile_read_right_after_write():
    rig = Rig()
    out = rig.buffer(64, "out")
    with pytest.raises(UndefinedBehaviourError, match="reads physical register 1 written by the previous"):
        rig.run(rig.program(regfile_read_after_write), [[out]])
    lax = Rig(strict=False)
    out = lax.buffer(64, "out")
    lax.run(lax.program(regfile_read_after_write), [[out]])
    assert np.all(words(out) == 5)      # no forwarding path: the read sees the old value


@qpu
def r4_too_early(asm):
    mov(sfu_recip, 2.0)
    mov(r0, r4)
    exit()


def test_r4_read_before_the_sfu_result():
    rig = Rig()
    with pytest.raises(UndefinedBehaviourError, match="r4 before the SFU result arrives"):
        rig.run(rig.program(r4_too_early), [[]])


@qpu
def vpm_read_beyond_num(asm):
    setup_vpm_read(nrows=1)
    nop()
    nop()
    mov(r0, vpm)
    mov(r1, vpm)
    exit()


def test_vpm_read_beyond_num():
    rig = Rig()
    with pytest.raises(UndefinedBehaviourError, match="beyond the NUM vectors"):
        rig.run(rig.program(vpm_read_beyond_num), [[]])


@qpu
def conditional_tmu_write(asm):
    imul24(r0, element_number, 4)
    iadd(r0, r0, uniform)
    mov(tmu0_s, r0, cond="zs")
    nop(sig="load tmu0")
    exit()


def test_conditional_peripheral_write():
    rig = Rig()
    data = rig.buffer(np.zeros(16, dtype=np.uint32))
    with pytest.raises(UndefinedBehaviourError, match="peripheral register 56 conditionally"):
        rig.run(rig.program(conditional_tmu_write), [[data]])


@qpu
def leave_semaphore_up(asm):
    sema_up(3)
    exit()


def test_semaphore_not_back_to_zero():
    rig = Rig()
    with pytest.raises(UndefinedBehaviourError, match="semaphore 3 not back to 0"):
        rig.run(rig.program(leave_semaphore_up), [[]])
    lax = Rig(strict=False)
    lax.run(lax.program(leave_semaphore_up), [[]])


@qpu
def store_without_wait(asm):
    setup_vpm_write()
    mov(vpm, 1)
    setup_dma_store(nrows=16)          # 1 KiB: still running when the program ends
    start_dma_store(uniform)
    exit()


def test_program_ending_with_dma_in_flight():
    rig = Rig()
    out = rig.buffer(1024)
    with pytest.raises(UndefinedBehaviourError, match="DMA it started is still running"):
        rig.run(rig.program(store_without_wait), [[out]])


@qpu
def tmu_after_dma_store(asm):
    mov(ra0, uniform)                        # address of the data
    imul24(r0, element_number, 4)
    iadd(r0, r0, ra0)
    mov(tmu0_s, r0)
    nop(sig="load tmu0")                     # caches the lines
    setup_vpm_write()
    ldi(r2, 99)
    mov(vpm, r2)
    setup_dma_store(nrows=1)
    start_dma_store(ra0)
    wait_dma_store()                         # memory now holds 99s
    mov(tmu0_s, r0)
    nop(sig="load tmu0")                     # the TMU caches still hold the old words
    mov(r1, r4)
    setup_vpm_write()
    mov(vpm, r1)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_tmu_reads_stale_cache_lines_after_a_dma_store():
    rig = Rig()
    data = rig.buffer(np.arange(16, dtype=np.uint32))
    out = rig.buffer(64)
    with pytest.raises(UndefinedBehaviourError, match="stale"):
        rig.run(rig.program(tmu_after_dma_store), [[data, out]])
    lax = Rig(strict=False)
    data = lax.buffer(np.arange(16, dtype=np.uint32))
    out = lax.buffer(64)
    stats = lax.run(lax.program(tmu_after_dma_store), [[data, out]])
    assert np.all(words(data) == 99)                      # the DMA store reached memory
    assert np.array_equal(words(out), np.arange(16))      # ... but the TMU saw its cached copy
    assert stats.extra["tmu_stale_words"] == 16


@qpu
def ldtmu_without_request(asm):
    nop(sig="load tmu0")
    exit()


def test_ldtmu_without_request_is_always_an_error():
    rig = Rig(strict=False)
    with pytest.raises(UndefinedBehaviourError, match="no outstanding request"):
        rig.run(rig.program(ldtmu_without_request), [[]])


@qpu
def nine_tmu_requests(asm):
    imul24(r0, element_number, 4)
    iadd(r0, r0, uniform)
    for _ in range(9):
        mov(tmu0_s, r0)
    exit()


def test_tmu_fifo_depth():
    rig = Rig()
    data = rig.buffer(np.zeros(16, dtype=np.uint32))
    with pytest.raises(UndefinedBehaviourError, match="more than 4 TMU requests"):
        rig.run(rig.program(nine_tmu_requests), [[data]])
    lax = Rig(strict=False)
    data = lax.buffer(np.zeros(16, dtype=np.uint32))
    with pytest.raises(UndefinedBehaviourError, match="9th TMU request"):
        lax.run(lax.program(nine_tmu_requests), [[data]])
