"""EmuBackend: options, allocation, LaunchStats, tracing, and the plain-Python fallback."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from emu_rig import Rig, words
from hostside.driver.backend import Backend
from hostside.driver.emu import EmuBackend
from hostside.driver.errors import DriverClosedError, DriverError, OutOfGpuMemoryError
from vc4infer.qpu import qpu


def test_is_a_backend_with_the_documented_options():
    backend = EmuBackend(memory_bytes=1 << 20, clock_hz=400e6, strict=True, trace=[0],
                         max_instructions=10, max_cycles=100)
    assert isinstance(backend, Backend) and backend.name == "emu"
    backend.close()
    backend.close()                                    # idempotent
    with pytest.raises(DriverClosedError):
        backend.alloc(64)


@pytest.mark.parametrize("options, words_", [
    ({"clock_hz": 123e6}, "250000000, 300000000, 400000000"),
    ({"max_instructions": 0}, "positive"),
    ({"memory_bytes": 8 << 30}, "end below 4 GiB"),
    ({"trace": [12]}, "numbered 0..11"),
])
def test_bad_options_are_named(options, words_):
    with pytest.raises(DriverError, match=words_):
        EmuBackend(**options)


def test_alloc_alignment_labels_free_and_exhaustion():
    backend = EmuBackend(memory_bytes=1 << 20)
    a = backend.alloc(100, 256, "a")
    b = backend.alloc(5000, 4096, "b")
    assert a.bus_address % 256 == 0 and b.bus_address % 4096 == 0
    assert b.bus_address >= a.bus_address + 100 + 256          # a red zone separates buffers
    assert a.buffer.nbytes == 100 and a.buffer.dtype == np.uint8
    a.buffer[:] = 7
    assert backend.memory.read(a.bus_address, 100) == bytes([7]) * 100
    backend.free(a)
    with pytest.raises(DriverError, match="no live buffer starts there"):
        backend.free(a)
    with pytest.raises(OutOfGpuMemoryError, match="larger memory_bytes"):
        backend.alloc(2 << 20, 4096, "huge")


@qpu
def add_one(asm, constant=1):
    """uniforms [in, out]: out = in + constant (1) for one row; the VPM is shared, so under the
    mutex."""
    mov(ra0, uniform)
    mov(ra1, uniform)
    mutex_acquire()
    setup_dma_load(nrows=1)
    start_dma_load(ra0)
    wait_dma_load()
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    mov(r0, vpm)
    iadd(vpm, r0, constant)
    setup_dma_store(nrows=1)
    start_dma_store(ra1)
    wait_dma_store()
    mutex_release()
    exit()


def test_launch_stats_of_twelve_instances():
    rig = Rig()
    prog = rig.program(add_one)
    ins = [rig.buffer(np.arange(16, dtype=np.uint32) * (q + 1), f"in{q}") for q in range(12)]
    outs = [rig.buffer(64, f"out{q}") for q in range(12)]
    stats = rig.run(prog, [[ins[q], outs[q]] for q in range(12)])
    for q in range(12):
        assert np.array_equal(words(outs[q]), np.arange(16) * (q + 1) + 1)
    assert stats.backend == "emu" and stats.n_threads == 12
    assert len(stats.instructions) == 12 and len(set(stats.instructions)) == 1
    assert stats.dma_load_bytes == 12 * 64 and stats.dma_store_bytes == 12 * 64
    assert stats.extra["host_interrupts"] == (1,) * 12
    assert stats.modelled_seconds == pytest.approx(max(stats.cycles) / 250e6)
    assert set(stats.stalls) >= {"tmu", "vpm_read", "dma_load_wait", "dma_store_wait", "semaphore", "mutex"}


def test_new_code_in_the_same_buffer_runs_the_next_launch():
    """Launches keep predecoded programs, by content: code rewritten in place between two
    launches is what the second one runs."""
    from vc4infer.qpu import assemble

    rig = Rig()
    prog = rig.program(add_one)
    src = rig.buffer(np.arange(16, dtype=np.uint32))
    out = rig.buffer(64)
    rig.run(prog, [[src, out]])
    assert np.array_equal(words(out), np.arange(16) + 1)
    code = np.frombuffer(assemble(add_one, 2), dtype=np.uint8)
    assert code.nbytes == prog.buffer.nbytes
    prog.buffer[:] = code
    rig.run(prog, [[src, out]])
    assert np.array_equal(words(out), np.arange(16) + 2)


def test_trace_records_pc_writes_and_io():
    records = []
    rig = Rig(trace=[1], trace_callback=records.append)
    prog = rig.program(add_one)
    ins = [rig.buffer(np.arange(16, dtype=np.uint32), f"in{q}") for q in range(2)]
    outs = [rig.buffer(64, f"out{q}") for q in range(2)]
    rig.run(prog, [[ins[q], outs[q]] for q in range(2)])
    assert {r.qpu for r in records} == {1}
    assert [r.pc for r in records[:3]] == [prog.bus_address + 8 * i for i in range(3)]
    assert records[0].writes["ra0"] == (ins[1].bus_address,) * 16
    read = next(r for r in records if "read vpm" in r.io)
    assert read.writes["r0"] == tuple(range(16))
    add = records[records.index(read) + 1]
    assert "write vpm" in add.io and "iadd" in add.text
    start = next(r for r in records if "write vpm_ld_addr" in r.io)
    assert "vpm_ld_addr" in start.text
    assert "thread end" in records[-3].io
    assert "qpu1" in records[0].format()


def test_plain_python_fallback_gives_the_same_result(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, sys
        sys.path.insert(0, %r)
        from vc4infer.emu import jit
        assert not jit.NUMBA_ENABLED
        from emu_rig import Rig, words
        from test_backend import add_one
        rig = Rig()
        src = rig.buffer(np.arange(16, dtype=np.uint32) * 3)
        out = rig.buffer(64)
        stats = rig.run(rig.program(add_one), [[src, out]])
        print(words(out).tolist(), stats.cycles[0])
    """ % os.path.dirname(__file__))
    env = dict(os.environ, VC4INFER_NO_NUMBA="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(__file__), timeout=120)
    assert done.returncode == 0, done.stderr
    values, cycles = done.stdout.strip().rsplit(" ", 1)
    assert values == str(list(range(1, 48, 3)))
    rig = Rig()
    src = rig.buffer(np.arange(16, dtype=np.uint32) * 3)
    out = rig.buffer(64)
    assert int(cycles) == rig.run(rig.program(add_one), [[src, out]]).cycles[0]


def test_compiled_modules_import_no_host_only_module():
    """jit.py leaves HOST_ONLY_MODULES out of the digest that decides when to recompile; that is
    right only while no module of the compiled loop imports one of them."""
    import ast

    from vc4infer.emu import jit

    host_only = {f"vc4infer.emu.{name}" for name in jit.HOST_ONLY_MODULES}
    for source in jit._SOURCES:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                names = {a.name for a in node.names}
            else:
                continue
            assert not names & host_only, f"{source.name} imports {names & host_only}"


@qpu
def copy_row(asm):
    """DMA-load 16 words from uniform 0, store them to uniform 1."""
    setup_dma_load(nrows=1)                      # noqa: F821 (DSL names)
    start_dma_load(uniform)                      # noqa: F821
    wait_dma_load()                              # noqa: F821
    setup_dma_store(nrows=1)                     # noqa: F821
    start_dma_store(uniform)                     # noqa: F821
    wait_dma_store()                             # noqa: F821
    exit()                                       # noqa: F821


def test_every_emu_driver_of_a_process_shares_one_gpu_memory():
    """As on a Pi, where every Driver allocates from the board's memory: py-videocore's
    test_rotate_r4 copies its data with one Driver and runs its program from a second one opened
    inside the first, passing the data's bus address."""
    from hostside.driver import Driver
    from vc4infer.emu.errors import MemoryFaultError

    with Driver(backend="emu") as first:
        src = first.copy(np.arange(16, dtype=np.uint32) * 7)
        out = first.alloc(16, np.uint32)
        prog = first.program(copy_row)
        uniforms = first.alloc(2, np.uint32)
        with Driver(backend="emu") as second:
            dst = second.alloc(16, np.uint32)
            assert dst.address not in (src.address, out.address)   # unique across Drivers
            second.execute(1, second.program(copy_row), [src.address, dst.address])
            assert np.array_equal(dst, np.arange(16, dtype=np.uint32) * 7)
            uniforms[:] = [dst.address, out.address]
        # the second Driver is closed: its buffers are freed, and reading one faults
        with pytest.raises(MemoryFaultError, match="DMA load"):
            first.execute(1, prog, uniforms)


def test_each_backend_is_held_to_its_own_memory_bytes():
    from hostside.driver.emu import EmuBackend
    from hostside.driver.errors import OutOfGpuMemoryError

    small = EmuBackend(memory_bytes=64 << 10)
    try:
        small.alloc(48 << 10)
        with pytest.raises(OutOfGpuMemoryError, match="memory_bytes=65536"):
            small.alloc(32 << 10)
    finally:
        small.close()


def test_a_backend_dropped_without_close_gives_its_memory_back():
    import gc

    from vc4infer.emu.memory import shared_memory

    backend = EmuBackend()
    address = backend.alloc(4096).bus_address
    assert shared_memory().find(address) is not None
    del backend
    gc.collect()
    assert shared_memory().find(address) is None
