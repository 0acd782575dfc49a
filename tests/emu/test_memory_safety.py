"""Memory safety, deadlock and budget errors of the emulator, with their messages checked.

GPU memory is the set of live buffers: every DMA row, TMU word, uniform and instruction fetch
outside them must stop the launch with a MemoryFaultError naming the QPU, the PC, the instruction,
the address and the nearest buffer, before any byte is written."""
import numpy as np
import pytest

from emu_rig import Rig, words
from hostside.driver.emu import EmuBackend
from vc4infer.emu import state
from vc4infer.emu.errors import BudgetExceededError, DeadlockError, MemoryFaultError, StrayReadWarning
from vc4infer.qpu import qpu


@qpu
def dma_load_rows(asm, nrows):
    setup_dma_load(nrows=nrows)
    start_dma_load(uniform)
    wait_dma_load()
    exit()


def test_dma_load_row_outside_buffer_names_row_address_and_nearest_buffer():
    rig = Rig()
    src = rig.buffer(np.arange(16, dtype=np.uint32), "src rows")        # one 64-byte row
    prog = rig.program(dma_load_rows, 3)
    with pytest.raises(MemoryFaultError) as info:
        rig.run(prog, [[src]])
    msg = str(info.value)
    bad = src.bus_address + 64
    assert "QPU 0" in msg and "DMA load (VCD) read of 64 bytes" in msg
    assert f"0x{bad:08X}" in msg and "memory row 1" in msg
    # row 1 begins at src + 64, right at the end of the one-row buffer
    assert "nearest buffer 'src rows'" in msg and "starting right at its end" in msg
    assert "start_dma_load" in msg or "vpm_ld_addr" in msg   # the disassembled instruction
    assert f"PC 0x{prog.bus_address + 8:08X}" in msg


@qpu
def dma_store_rows(asm, nrows):
    setup_vpm_write()
    for _ in range(nrows):
        mov(vpm, 7)
    setup_dma_store(nrows=nrows)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_dma_store_fault_writes_nothing():
    rig = Rig()
    dst = rig.buffer(np.full(16, 0xAAAAAAAA, dtype=np.uint32), "dst")
    prog = rig.program(dma_store_rows, 2)
    with pytest.raises(MemoryFaultError) as info:
        rig.run(prog, [[dst]])
    assert "DMA store (VDW) write of 64 bytes" in str(info.value) and "memory row 1" in str(info.value)
    assert np.all(words(dst) == 0xAAAAAAAA)       # row 0 fitted, but nothing was written


@qpu
def strided_store_rows(asm, nrows, gap_bytes):
    setup_vpm_write()
    for _ in range(nrows):
        mov(vpm, 7)
    setup_dma_store_stride(gap_bytes)
    setup_dma_store(nrows=nrows)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_a_strided_store_whose_rows_land_in_another_buffer_is_refused():
    """Each row of the store lies inside some live buffer, but row 1 is in the next one: on a
    board that would overwrite another allocation. Refused, and nothing is written."""
    rig = Rig()
    first = rig.buffer(np.full(16, 0xAAAAAAAA, dtype=np.uint32), "first")
    second = rig.buffer(np.full(16, 0xBBBBBBBB, dtype=np.uint32), "second")
    gap = second.bus_address - first.bus_address - 64      # row 1 starts exactly at `second`
    prog = rig.program(strided_store_rows, 2, gap)
    with pytest.raises(MemoryFaultError) as info:
        rig.run(prog, [[first]])
    msg = str(info.value)
    assert "memory row 1" in msg and "lands in buffer 'second'" in msg
    assert np.all(words(first) == 0xAAAAAAAA) and np.all(words(second) == 0xBBBBBBBB)


@qpu
def tmu_read_at(asm):
    imul24(r0, element_number, 4)
    iadd(r0, r0, uniform)
    mov(tmu0_s, r0)
    nop(sig="load tmu0")
    exit()


def test_tmu_read_outside_buffer_names_element():
    rig = Rig()
    data = rig.buffer(np.zeros(8, dtype=np.uint32), "eight words")
    prog = rig.program(tmu_read_at)
    with pytest.raises(MemoryFaultError) as info:
        rig.run(prog, [[data]])
    msg = str(info.value)
    assert "TMU read of 4 bytes" in msg and "element 8" in msg
    assert f"0x{data.bus_address + 32:08X}" in msg and "'eight words'" in msg


@qpu
def tmu_gather_two(asm):
    """Uniforms: A, B - 32, output address. Elements 0-7 read A[e], elements 8-15 B[e - 8]."""
    mov(r2, uniform)
    mov(r3, uniform)
    mov(ra0, uniform)
    imul24(r0, element_number, 4)
    isub(null, element_number, 8, set_flags=True)          # N set in elements 0-7
    mov(r1, r3)
    mov(r1, r2, cond="ns")
    iadd(tmu0_s, r0, r1, set_flags=False)
    nop(sig="load tmu0")
    setup_vpm_write(mode="32bit horizontal", Y=0)
    mov(vpm, r4)
    setup_dma_store(mode="32bit horizontal", Y=0, nrows=1)
    start_dma_store(ra0)
    wait_dma_store()
    exit()


def test_tmu_lookup_gathers_from_two_buffers():
    """One lookup whose elements fall in two buffers: every element is inside a live buffer, so
    it reads both (the check is per element, not per lookup)."""
    rig = Rig()
    first = rig.buffer(np.arange(16, dtype=np.uint32), "first")
    second = rig.buffer(np.arange(1000, 1016, dtype=np.uint32), "second")
    out = rig.buffer(np.zeros(16, dtype=np.uint32), "out")
    rig.run(rig.program(tmu_gather_two), [[first, second.bus_address - 32, out]])
    assert list(words(out)) == list(range(8)) + list(range(1000, 1008))


@qpu
def read_uniforms(asm, n):
    for _ in range(n):
        mov(r0, uniform)
    exit()


def test_uniform_read_past_the_uniforms_buffer():
    rig = Rig()
    prog = rig.program(read_uniforms, 3)
    with pytest.raises(MemoryFaultError) as info:
        rig.run(prog, [[1, 2]])                 # two words: the third read is outside
    msg = str(info.value)
    assert "uniform read of 4 bytes" in msg and "uniform #2" in msg and "'uniforms0'" in msg


@qpu
def runs_off_the_end(asm):
    nop()
    nop()


def test_instruction_fetch_past_the_code_buffer():
    rig = Rig()
    prog = rig.program(runs_off_the_end)
    with pytest.raises(MemoryFaultError) as info:
        rig.run(prog, [[]])
    msg = str(info.value)
    assert "instruction fetch of 8 bytes" in msg
    assert f"0x{prog.bus_address + 16:08X}" in msg and "'code'" in msg


def test_launch_at_an_address_outside_every_buffer():
    rig = Rig()
    with pytest.raises(MemoryFaultError, match="outside every live buffer"):
        rig.backend.execute([(0, 0x1000)], 1.0)


def test_freed_buffer_is_no_longer_gpu_memory():
    rig = Rig()
    src = rig.buffer(np.arange(16, dtype=np.uint32), "freed")
    prog = rig.program(dma_load_rows, 1)
    rig.backend.free(src)
    with pytest.raises(MemoryFaultError, match="DMA load"):
        rig.run(prog, [[src.bus_address]])


@qpu
def wait_forever(asm):
    sema_down(0)
    exit()


def test_deadlock_lists_every_waiting_qpu():
    rig = Rig()
    prog = rig.program(wait_forever)
    with pytest.raises(DeadlockError) as info:
        rig.run(prog, [[], [], []])
    msg = str(info.value)
    for q in range(3):
        assert f"QPU {q} at PC 0x{prog.bus_address:08X}" in msg
    assert msg.count("waits to decrement semaphore 0 (value 0)") == 3
    assert "sema_down(0)" in msg


@qpu
def hold_mutex(asm):
    mov(null, uniform)
    mutex_acquire()
    exit()


def test_deadlock_on_a_mutex_held_by_an_ended_qpu():
    rig = Rig(strict=False)
    prog = rig.program(hold_mutex)
    with pytest.raises(DeadlockError) as info:
        rig.run(prog, [[0], [1]])
    msg = str(info.value)
    assert "QPU 0: ended" in msg and "waits for the mutex (held by QPU 0)" in msg


@qpu
def spin(asm):
    L.loop
    jmp(L.loop)
    nop()
    nop()
    nop()


def test_instruction_budget_stops_a_runaway_loop():
    rig = Rig(max_instructions=1000)
    prog = rig.program(spin)
    with pytest.raises(BudgetExceededError) as info:
        rig.run(prog, [[], []])
    msg = str(info.value)
    assert "budget of 1000 instructions" in msg and "after 1000 instructions" in msg
    assert "QPU 0 at PC" in msg and "QPU 1 at PC" in msg


def test_cycle_budget():
    rig = Rig(max_cycles=400)
    with pytest.raises(BudgetExceededError, match="budget of 400 cycles"):
        rig.run(rig.program(spin), [[]])


def test_a_kernel_that_never_ends_stops_at_the_modelled_launch_limit():
    # as on a Pi, whose kernel gives up on execute_qpu after 1 s: here 2 ms of modelled time
    # (500,000 cycles at 250 MHz), in far less host time than the execute timeout of 600 s
    from hostside.driver.errors import LaunchTimeoutError
    from vc4infer.emu.errors import ModelledTimeLimitError
    rig = Rig(max_launch_seconds=0.002, clock_hz=250e6)
    code = rig.program(spin)
    with pytest.raises(ModelledTimeLimitError, match="ran past 0.002 s of modelled V3D time at "
                                                     "250 MHz") as info:
        rig.backend.execute([(rig.buffer(4).bus_address, code.bus_address)], 600.0)
    assert isinstance(info.value, LaunchTimeoutError) and "QPU 0 at PC" in str(info.value)
    assert rig.backend.machine.qs[0, state.QS_CYCLE] == pytest.approx(500_000, abs=100)
    assert EmuBackend(memory_bytes=4096).max_launch_seconds == 1.0     # the Pi's limit


def test_a_cycle_budget_below_the_launch_limit_is_reported_as_the_budget():
    rig = Rig(max_cycles=400, max_launch_seconds=0.002)
    with pytest.raises(BudgetExceededError, match="budget of 400 cycles"):
        rig.run(rig.program(spin), [[]])


def test_wall_clock_timeout_of_execute():
    from hostside.driver.errors import LaunchTimeoutError
    rig = Rig()
    with pytest.raises(LaunchTimeoutError, match="did not finish within 0.001 s"):
        rig.backend.execute([(rig.buffer(4).bus_address, rig.program(spin).bus_address)], 0.001)


def test_row_that_starts_inside_and_runs_past_the_end():
    rig = Rig()
    dst = rig.buffer(64, "dst")
    with pytest.raises(MemoryFaultError, match="starting inside it and running 8 bytes past its end"):
        rig.run(rig.program(dma_store_rows, 1), [[dst.bus_address + 8]])


@pytest.mark.parametrize("strict", [True, False])
def test_uniforms_are_read_row_by_row_in_strict_mode(strict):
    """Two QPUs, one uniforms block of two 2-word rows: QPU 0 reading a third uniform reads
    QPU 1's row. The hardware reads on (a kernel's miscount goes unseen): strict mode refuses,
    the default mode reads on and warns."""
    from hostside.driver import Driver

    with Driver(backend="emu", strict=strict) as drv:
        rows = drv.array(np.arange(4, dtype=np.uint32).reshape(2, 2))
        prog = drv.program(read_uniforms, 3)
        if strict:
            with pytest.raises(MemoryFaultError, match=r"uniform #2 of this program.* past this "
                                                       r"QPU's row.*another QPU's"):
                drv.execute(2, prog, rows)
        else:              # served, as on a Pi, and reported: the first, QPU 0's, by its row
            with pytest.warns(StrayReadWarning, match=r"(?s)QPU 0 .*uniform #2.* past this "
                                                      r"QPU's row.*another QPU's.*2 such reads"):
                drv.execute(2, prog, rows)
        drv.execute(2, drv.program(read_uniforms, 2), rows)   # each reading its own row is fine
