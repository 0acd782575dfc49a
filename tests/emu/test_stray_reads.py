"""Reads outside every live buffer (issue 24, "faithful memory rules").

On a Pi, py-videocore's arrays sit back to back in one Driver memory area: a read a few bytes past
an array returns whatever lies there, and programs that do so (py-videocore's 12-thread SGEMM
example prefetches one word past A) run. The emulator serves such a read too (the bytes that are
in its memory) with a StrayReadWarning that names the place; strict mode refuses it, and a read
further away, or any write outside a buffer, faults in both modes.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from hostside.driver import Driver
from vc4infer.emu.errors import MemoryFaultError, StrayReadWarning
from vc4infer.emu.memory import REDZONE_BYTES
from vc4infer.qpu import qpu

pytestmark = pytest.mark.usefixtures("emu_only")


@pytest.fixture(params=[False, True], ids=["default", "strict"])
def emu(request):
    with Driver(backend="emu", strict=request.param) as driver:
        yield driver


@qpu
def tmu_gather(asm):
    """out[e] = word at in_address + 4 * e (one TMU request of 16 addresses)."""
    mov(r0, uniform)                          # in address
    mov(r1, uniform)                          # out address
    shl(r2, element_number, 2)
    iadd(tmu0_s, r0, r2)
    nop(sig="load tmu0")
    mov(r3, r4)
    setup_vpm_write()
    mov(vpm, r3)
    setup_dma_store(nrows=1)
    start_dma_store(r1)
    wait_dma_store()
    exit()


@qpu
def vcd_copy(asm):
    """out[0:16] = the 16 words at in_address, through a DMA load into the VPM."""
    mov(r0, uniform)
    mov(r1, uniform)
    setup_dma_load(nrows=1)
    start_dma_load(r0)
    wait_dma_load()
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    mov(vpm, vpm)
    setup_dma_store(nrows=1)
    start_dma_store(r1)
    wait_dma_store()
    exit()


def _run(drv, kernel, first_word_offset, n_words=12):
    """Run `kernel` reading 16 words from `n_words` words of known data, starting
    `first_word_offset` words in: words past the array are read from the memory after it."""
    data = drv.copy(np.arange(1, n_words + 1, dtype=np.uint32))
    out = drv.alloc(16, np.uint32)
    behind = np.frombuffer(drv.backend.memory.read(data.address + 4 * n_words, 64), np.uint32)
    drv.execute(n_threads=1, program=drv.program(kernel),
                uniforms=[data.address + 4 * first_word_offset, out.address])
    known = np.concatenate([np.arange(1, n_words + 1, dtype=np.uint32), behind])
    return np.array(out), known[first_word_offset:first_word_offset + 16]


@pytest.mark.parametrize("kernel", [tmu_gather, vcd_copy], ids=["tmu", "dma load"])
def test_a_read_just_past_a_buffer_is_served_and_reported(emu, kernel):
    if emu.backend.machine.strict:
        with pytest.raises(MemoryFaultError, match="outside every live buffer"):
            _run(emu, kernel, 0)
        return
    with pytest.warns(StrayReadWarning) as record:
        got, expected = _run(emu, kernel, 0)
    assert np.array_equal(got, expected)                 # the array, then the bytes after it
    message = str(record[0].message)
    assert "QPU 0 at PC" in message and "its end" in message and "array#1" in message, message
    assert "strict mode refuses" in message
    assert len(record) == 1                              # one warning per launch


@qpu
def vcd_two_rows(asm):
    """A DMA load of two 16-word rows (the second past a one-row array), nothing stored."""
    setup_dma_load(nrows=2)
    start_dma_load(uniform)
    wait_dma_load()
    exit()


def test_a_stray_dma_row_is_named_by_its_own_address():
    with Driver(backend="emu") as drv:
        address = drv.alloc(16, np.uint32).address
        with pytest.warns(StrayReadWarning) as record:
            drv.execute(n_threads=1, program=drv.program(vcd_two_rows), uniforms=[address])
    message = str(record[0].message)
    assert f"read of 64 bytes at 0x{address + 64:08X} (memory row 1)" in message, message


@pytest.mark.parametrize("kernel", [tmu_gather, vcd_copy], ids=["tmu", "dma load"])
def test_a_read_far_past_a_buffer_faults_in_every_mode(emu, kernel):
    with pytest.raises(MemoryFaultError, match="outside every live buffer"):
        _run(emu, kernel, REDZONE_BYTES // 4 + 12)      # past the bytes a Driver area would hold


def test_an_in_buffer_read_says_nothing(emu, recwarn):
    got, expected = _run(emu, tmu_gather, 0, n_words=16)
    assert np.array_equal(got, expected)
    assert not [w for w in recwarn if issubclass(w.category, StrayReadWarning)]


@qpu
def store_16_words(asm):
    mov(r1, uniform)
    setup_vpm_write()
    mov(vpm, element_number)
    setup_dma_store(nrows=1)
    start_dma_store(r1)
    wait_dma_store()
    exit()


def test_a_write_just_past_a_buffer_faults_in_every_mode(emu):
    out = emu.alloc(12, np.uint32)                       # 16 words stored into 12
    with pytest.raises(MemoryFaultError, match="DMA store"):
        emu.execute(n_threads=1, program=emu.program(store_16_words), uniforms=[out.address])
    assert np.array_equal(np.array(out), np.zeros(12, np.uint32))


def test_a_stray_read_fails_any_test_of_the_suite():
    """setup.cfg turns StrayReadWarning into an error for every test: a project kernel that reads
    past its buffers fails its test even where the Driver is not strict (a model run)."""
    with Driver(backend="emu") as drv:
        with pytest.raises(StrayReadWarning):
            _run(drv, tmu_gather, 0)
