"""Errors a kernel author meets on the emulator where a Pi would corrupt memory or hang: DMA and
TMU accesses outside every live buffer, a uniform stream that runs off its buffer, a semaphore
nobody raises, a runaway loop, and (strict mode) a hazard whose result the guide leaves undefined.

Each error must say where it happened: the QPU, the PC and the instruction, the address, and the
nearest buffer (by its Driver label), so the author can find the bug without a debugger.
These tests are emulator-only: on a Pi the same programs would fault or hang the GPU.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import re

import pytest

from hostside.driver import Driver, LaunchTimeoutError
from vc4infer.emu.errors import (BudgetExceededError, DeadlockError, MemoryFaultError,
                                 StrayReadWarning, UndefinedBehaviourError)
from vc4infer.qpu import assemble_program, disassemble, qpu

pytestmark = pytest.mark.usefixtures("emu_only")


@pytest.fixture
def strict_drv():
    """An emulator Driver in strict mode, for the tests of strict-mode errors."""
    with Driver(backend="emu", strict=True) as driver:
        yield driver


def hex_numbers(message):
    return {int(h, 16) for h in re.findall(r"0x[0-9a-fA-F]+", message)}


def pc_of(kernel, needle, *args):
    """Byte offset of the first instruction whose disassembly contains `needle`."""
    for line in disassemble(assemble_program(kernel, *args)).splitlines():
        if needle in line and not line.startswith("L."):
            offset = line.rsplit("#", 1)[1].split(":")[0].strip()
            return int(offset, 16)
    raise AssertionError(f"{needle!r} not in {kernel.__name__}")


def assert_names_the_place(message, program_address, pc_offset, instruction_text):
    assert re.search(r"\bQPU\s*\d+", message), message
    assert re.search(r"\bPC\b", message, re.IGNORECASE), message
    numbers = hex_numbers(message)
    assert program_address + pc_offset in numbers or pc_offset in numbers, message
    assert instruction_text in message, message


@qpu
def store_two_rows(asm):
    setup_vpm_write()
    mov(vpm, 1)
    mov(vpm, 2)
    setup_dma_store(nrows=2)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_dma_store_past_the_end_of_a_buffer(drv):
    out = drv.alloc(16, "uint32")                   # one row: the second row is past its end
    program = drv.program(store_two_rows)
    with pytest.raises(MemoryFaultError) as error:
        drv.execute(n_threads=1, program=program, uniforms=[out.address])
    message = str(error.value)
    assert_names_the_place(message, program.address, pc_of(store_two_rows, "vpm_st_addr"), "vpm_st_addr")
    assert any(out.address + 64 <= n < out.address + 128 for n in hex_numbers(message)), message
    assert "array#" in message and "uint32[16]" in message, message       # the buffer by its label


@qpu
def load_from(asm, address):
    ldi(r0, address)
    setup_dma_load(nrows=1)
    start_dma_load(r0)
    wait_dma_load()
    exit()


def test_dma_load_from_an_address_outside_every_buffer(drv):
    program = drv.program(load_from, 0x100)
    with pytest.raises(MemoryFaultError) as error:
        drv.execute(n_threads=1, program=program)
    message = str(error.value)
    assert_names_the_place(message, program.address, pc_of(load_from, "vpm_ld_addr", 0x100), "vpm_ld_addr")
    assert 0x100 in hex_numbers(message), message


@qpu
def tmu_read(asm, address):
    ldi(r0, address)
    shl(r1, element_number, 2)
    iadd(r0, r0, r1)
    mov(tmu0_s, r0)
    nop(sig="load tmu0")
    exit()


def test_tmu_read_of_freed_memory(drv):
    keep = drv.alloc(16, "float32")                 # a live buffer somewhere before it
    scratch = drv.backend.alloc(1 << 16, label="scratch block")
    address = scratch.bus_address + (1 << 15)       # the middle: later small blocks will not reuse it
    drv.backend.free(scratch)
    program = drv.program(tmu_read, address)
    with pytest.raises(MemoryFaultError) as error:
        drv.execute(n_threads=1, program=program)
    message = str(error.value)
    assert_names_the_place(message, program.address, pc_of(tmu_read, "tmu0_s", address), "tmu0_s")
    assert any(address <= n < address + 64 for n in hex_numbers(message)), message
    assert keep is not None


@qpu
def read_three_uniforms(asm):
    mov(r0, uniform)
    mov(r1, uniform)
    mov(r2, uniform)
    exit()


def test_uniform_stream_running_off_its_buffer(drv):
    """Strict: refused. Default: the reads past the word are served, as a Pi serves them, and
    reported with the same detail (tests/emu/test_stray_reads.py covers every kind of read)."""
    program = drv.program(read_three_uniforms)
    expected = (pytest.raises(MemoryFaultError) if drv.backend.machine.strict
                else pytest.warns(StrayReadWarning))
    with expected as error:
        drv.execute(n_threads=1, program=program, uniforms=[7])     # one word, three reads
    message = str(error.value) if drv.backend.machine.strict else str(error.list[0].message)
    assert "uniform" in message.lower(), message
    assert_names_the_place(message, program.address, pc_of(read_three_uniforms, "r1, uniform"), "uniform")


@qpu
def wait_forever_on_semaphore(asm):
    sema_down(5)
    exit()


def test_semaphore_wait_nobody_signals(drv):
    program = drv.program(wait_forever_on_semaphore)
    with pytest.raises(DeadlockError) as error:
        drv.execute(n_threads=2, program=program)
    message = str(error.value)
    assert "semaphore" in message.lower() and "5" in message, message
    assert_names_the_place(message, program.address, 0, "sema_down")


@qpu
def spin(asm):
    L.forever
    jmp(L.forever)
    nop()
    nop()
    nop()
    exit()


def test_runaway_loop_is_stopped(drv):
    with pytest.raises((BudgetExceededError, LaunchTimeoutError)):
        drv.execute(n_threads=1, program=drv.program(spin), timeout=1.0)


@qpu
def read_right_after_write(asm):
    ldi(ra0, 5)
    mov(r0, ra0)               # regfile A written by the previous instruction: undefined
    exit()


def test_strict_mode_rejects_an_undefined_regfile_read(backend):
    with Driver(backend="emu", strict=True) as strict:
        program = strict.program(read_right_after_write)
        with pytest.raises(UndefinedBehaviourError) as error:
            strict.execute(n_threads=1, program=program)
    message = str(error.value)
    assert_names_the_place(message, program.address, 8, "ra0")


def test_emulator_errors_are_driver_errors():
    from hostside.driver import DriverError
    for cls in (MemoryFaultError, DeadlockError, BudgetExceededError, UndefinedBehaviourError):
        assert issubclass(cls, DriverError)


@qpu
def load_signal_without_request(asm):
    nop(sig="load tmu0")          # the receive FIFO is empty: the hardware would wait forever
    exit()


def test_tmu_load_signal_with_nothing_requested(drv):
    program = drv.program(load_signal_without_request)
    with pytest.raises((UndefinedBehaviourError, DeadlockError)) as error:
        drv.execute(n_threads=1, program=program)
    message = str(error.value)
    assert "tmu" in message.lower(), message
    assert_names_the_place(message, program.address, 0, "load tmu0")


@qpu
def nine_tmu_requests(asm, address):
    ldi(r0, address)
    for _ in range(9):            # the request FIFO holds 8 (guide p.39): the 9th never enters
        mov(tmu0_s, r0)
    for _ in range(9):
        nop(sig="load tmu0")
    exit()


def test_ninth_outstanding_tmu_request_even_without_strict_mode():
    with Driver(backend="emu") as lenient:
        data = lenient.alloc(16, "uint32")
        program = lenient.program(nine_tmu_requests, data.address)
        with pytest.raises((UndefinedBehaviourError, DeadlockError)) as error:
            lenient.execute(n_threads=1, program=program)
    assert_names_the_place(str(error.value), program.address, 8 * 9, "tmu0_s")


def test_strict_mode_rejects_a_fifth_outstanding_tmu_request(strict_drv):
    """More than 4 outstanding requests are unreliable on hardware (vc4asm addendum)."""
    data = strict_drv.alloc(16, "uint32")
    program = strict_drv.program(nine_tmu_requests, data.address)
    with pytest.raises(UndefinedBehaviourError) as error:
        strict_drv.execute(n_threads=1, program=program)
    assert_names_the_place(str(error.value), program.address, 8 * 5, "tmu0_s")


@qpu
def read_past_the_setup(asm):
    setup_vpm_read(nrows=1)
    mov(r0, vpm)
    mov(r1, vpm)                  # NUM was 1: the guide says this returns undefined data
    exit()


def test_strict_mode_rejects_a_vpm_read_beyond_its_setup(strict_drv):
    program = strict_drv.program(read_past_the_setup)
    with pytest.raises(UndefinedBehaviourError) as error:
        strict_drv.execute(n_threads=1, program=program)
    assert_names_the_place(str(error.value), program.address, 16, "vpm")
