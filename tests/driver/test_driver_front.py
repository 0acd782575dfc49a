"""The Driver front-end against a small fake Backend: arrays, addresses, programs, uniform rows,
limits and misuse errors."""
import pickle
import sys
import types

import numpy as np
import pytest
from drv_fake_backend import BUS_BASE, FakeBackend, timeout_run

from hostside.driver import (Array, Driver, DriverClosedError, DriverError, ForeignObjectError,
                             LaunchTimeoutError, NotAProgramError, OutOfGpuMemoryError, Program,
                             ThreadCountError, UniformsLayoutError)

NOP_WORD = 0x100009E7009E7000     # py-videocore's nop() (spec Appendix A.1)


@pytest.fixture
def fake():
    return FakeBackend()


@pytest.fixture
def drv(fake):
    with Driver(fake) as d:
        yield d


def test_alloc_shape_dtype_positional_and_zeroed(drv, fake):
    a = drv.alloc((3, 5), "float32")
    assert isinstance(a, Array) and isinstance(a, np.ndarray)
    assert a.shape == (3, 5) and a.dtype == np.float32 and a.flags.c_contiguous
    assert np.all(a == 0)
    assert a.address == BUS_BASE and a.address % 4096 == 0
    b = drv.alloc(7, dtype=np.uint32)
    assert b.shape == (7,) and b.address == BUS_BASE + 4096      # next page: its own allocation
    assert drv.backend_name == "fake" and drv.backend_reason == "backend object given by the caller"


def test_addresses_follow_strides(drv):
    a = drv.alloc((4, 6), np.float32)
    expect = a.address + 4 * (6 * np.arange(4)[:, None] + np.arange(6)[None, :])
    np.testing.assert_array_equal(a.addresses(), expect)
    assert a.addresses().dtype == np.uint32
    v = a[1:, ::2]                                   # a view keeps its place in GPU memory
    assert isinstance(v, Array) and v.address == a.address + 24
    np.testing.assert_array_equal(v.addresses(), expect[1:, ::2])
    np.testing.assert_array_equal(a.T.addresses(), expect.T)
    assert a.reshape(-1)[5:].address == a.address + 20


def test_writes_land_in_gpu_memory(drv, fake):
    a = drv.array([[1, 2], [3, 4]], dtype=np.uint32)
    np.testing.assert_array_equal(fake.words(a.address, 4), [1, 2, 3, 4])
    a[1, 0] = 99
    assert fake.words(a.address + 8, 1)[0] == 99
    c = drv.copy(np.arange(5, dtype=np.int16))
    assert c.dtype == np.int16 and c.tolist() == [0, 1, 2, 3, 4]


def test_arithmetic_results_are_host_arrays(drv):
    a = drv.array(np.arange(4, dtype=np.float32))
    b = a + 1
    assert type(b) is np.ndarray and b.tolist() == [1, 2, 3, 4]
    a += 1                                              # in place: stays the GPU array
    assert isinstance(a, Array) and a.tolist() == [1, 2, 3, 4]
    c = a.copy()
    with pytest.raises(DriverError, match="not in GPU memory"):
        _ = c.address
    assert float(np.sum(a)) == 10.0


def test_each_buffer_is_a_labelled_allocation(drv, fake):
    drv.alloc((2, 3), "float32")
    drv.program(np.array([NOP_WORD] * 2, dtype=np.uint64))
    labels = fake.labels()
    assert labels[0] == "array#1 float32[2, 3]"
    assert labels[1].startswith("program ") and "2 instructions" in labels[1]


def test_program_from_bytes_and_uint64(drv, fake):
    words = np.array([NOP_WORD, 0x300009E7009E7000, NOP_WORD], dtype=np.uint64)
    p = drv.program(words)
    assert isinstance(p, Program) and len(p) == 3
    assert p.code == words.astype("<u8").tobytes()
    np.testing.assert_array_equal(p.words, words)
    # the code sits at p.address in GPU memory, low word first
    np.testing.assert_array_equal(fake.words(p.address, 2), [0x009E7000, 0x100009E7])
    q = drv.program(words.tobytes())
    assert q.code == p.code and q.address != p.address


def test_program_assembles_kernels(drv, fake, monkeypatch):
    # the assembler's own tests live with it; here only the Driver's plumbing is checked
    seen = []

    def fake_assemble(kernel, *args, **kwargs):
        seen.append((kernel, args, kwargs))
        return np.array([NOP_WORD], dtype=np.uint64).tobytes()

    def my_kernel(asm, n):
        pass

    qpu_module = types.ModuleType("vc4infer.qpu")
    qpu_module.assemble = fake_assemble
    monkeypatch.setitem(sys.modules, "vc4infer.qpu", qpu_module)
    p = drv.program(my_kernel, 4, unroll=2)
    assert seen == [(my_kernel, (4,), {"unroll": 2})]
    assert p.name == "my_kernel" and len(p) == 1


@pytest.mark.parametrize("bad", [123, "code", np.zeros(3, dtype=np.float64), b"", b"\0" * 12])
def test_program_rejects_non_programs(drv, bad):
    with pytest.raises(NotAProgramError):
        drv.program(bad)


def test_execute_splits_uniforms_into_rows(drv, fake):
    got = {}

    def run(backend, control):
        got["rows"] = [backend.words(u, 3).tolist() for u, _ in control]

    fake.run = run
    p = drv.program(np.array([NOP_WORD], dtype=np.uint64))
    stats = drv.execute(2, p, [1, 2, 3, 4, 5, 6])
    assert got["rows"] == [[1, 2, 3], [4, 5, 6]]
    control, timeout = fake.executes[-1]
    assert [c for _, c in control] == [p.address, p.address]
    assert control[1][0] - control[0][0] == 12
    assert timeout == 10.0
    assert drv.last_stats is stats and stats.n_threads == 2
    # the uniforms block existed for the launch only
    assert any(label.startswith("uniforms of execute#1 (code of 1 instructions)")
               for label in fake.freed)
    assert not any(label.startswith("uniforms") for label in fake.labels())


def test_uniform_values_are_32_bit_words(drv, fake):
    rows = {}
    fake.run = lambda b, control: rows.update(w=b.words(control[0][0], 4).tolist())
    p = drv.program(np.array([NOP_WORD], dtype=np.uint64))
    drv.execute(1, p, [1.5, -1, 0xFFFFFFFF, np.float32(2.0)])
    assert rows["w"] == [0x3FC00000, 0xFFFFFFFF, 0xFFFFFFFF, 0x40000000]
    drv.execute(1, p, np.array([[7, 8]], dtype=np.int32))
    with pytest.raises(UniformsLayoutError, match="float32"):
        drv.execute(1, p, np.array([1.5]))
    with pytest.raises(UniformsLayoutError, match="32 bits"):
        drv.execute(1, p, [2**32])


def test_uniforms_in_a_driver_array_are_used_in_place(drv, fake):
    p = drv.program(np.array([NOP_WORD], dtype=np.uint64))
    u = drv.alloc((3, 4), np.uint32)
    drv.execute(3, p, u)
    control, _ = fake.executes[-1]
    assert [c[0] for c in control] == [u.address, u.address + 16, u.address + 32]
    assert [c[0] for c in fake.executes[-1][0]] == u.addresses()[:, 0].tolist()
    drv.execute(1, p, None)
    assert fake.executes[-1][0] == [(0, p.address)]
    with pytest.raises(UniformsLayoutError, match="contiguous"):
        drv.execute(2, p, u[:, :2].T)      # rows that are columns: not a uniform stream
    with pytest.raises(UniformsLayoutError, match="32-bit"):
        drv.execute(1, p, drv.alloc(4, np.float64))


@pytest.mark.parametrize("n", [0, 13, -1, 2.0, True])
def test_thread_count_limits(drv, n):
    p = drv.program(np.array([NOP_WORD], dtype=np.uint64))
    with pytest.raises(ThreadCountError):
        drv.execute(n, p)


def test_twelve_threads_are_fine(drv, fake):
    p = drv.program(np.array([NOP_WORD], dtype=np.uint64))
    drv.execute(12, p, list(range(24)))
    assert len(fake.executes[-1][0]) == 12


def test_uniforms_must_split_into_rows(drv):
    p = drv.program(np.array([NOP_WORD], dtype=np.uint64))
    with pytest.raises(UniformsLayoutError, match="do not split into 3 equal rows"):
        drv.execute(3, p, [1, 2, 3, 4])
    with pytest.raises(UniformsLayoutError, match="empty"):
        drv.execute(1, p, [])
    with pytest.raises(UniformsLayoutError, match="same length"):
        drv.execute(2, p, [[1, 2], [3]])


def test_execute_needs_a_program(drv):
    with pytest.raises(NotAProgramError):
        drv.execute(1, b"\0" * 8)


def test_data_and_code_areas_are_enforced(fake):
    with Driver(fake, data_area_size=10000, code_area_size=16) as d:
        d.alloc(2000, np.float32)
        with pytest.raises(OutOfGpuMemoryError, match="data_area_size=10000") as e:
            d.alloc(1000, np.float32)
        assert "at least 12000" in str(e.value)
        p = d.program(np.array([NOP_WORD] * 2, dtype=np.uint64))
        with pytest.raises(OutOfGpuMemoryError, match="code_area_size"):
            d.program(np.array([NOP_WORD], dtype=np.uint64))
        with pytest.raises(OutOfGpuMemoryError, match="uniforms"):
            d.execute(1, p, list(range(1000)))


def test_use_after_close(fake):
    d = Driver(fake)
    a = d.alloc(4, np.float32)
    v = a[1:]
    p = d.program(np.array([NOP_WORD], dtype=np.uint64))
    d.close()
    d.close()                                               # idempotent
    assert fake.closed
    for call in (lambda: d.alloc(1), lambda: d.execute(1, p), lambda: d.program(b"\0" * 8)):
        with pytest.raises(DriverClosedError):
            call()
    for use in (lambda: a[0], lambda: a.__setitem__(0, 1.0), lambda: a + 1, lambda: np.sum(v),
                lambda: repr(a), lambda: a.address, lambda: a.tobytes(), lambda: pickle.dumps(a),
                lambda: np.concatenate([a, a]), lambda: v.sum()):
        with pytest.raises(DriverClosedError, match="closed"):
            use()


def test_objects_of_another_driver_are_refused(fake):
    with Driver(FakeBackend()) as other, Driver(fake) as d:
        p = other.program(np.array([NOP_WORD], dtype=np.uint64))
        with pytest.raises(ForeignObjectError):
            d.execute(1, p)
        u = other.alloc(4, np.uint32)
        q = d.program(np.array([NOP_WORD], dtype=np.uint64))
        with pytest.raises(ForeignObjectError):
            d.execute(1, q, u)


def test_launch_timeout_names_program_and_limit(fake):
    fake.max_launch_seconds = 1.0
    fake.run = timeout_run
    with Driver(fake) as d:
        p = d.program(np.array([NOP_WORD] * 3, dtype=np.uint64))
        with pytest.raises(LaunchTimeoutError) as e:
            d.execute(4, p, timeout=5.0)
    text = str(e.value)
    assert "'code of 3 instructions'" in text and "4 QPUs" in text
    assert "1 s" in text and "max_launch_seconds=1.0" in text
    # the temporary uniforms are released even when the launch fails
    assert not any(label.startswith("uniforms") for label in fake.labels())


def test_context_manager_releases_on_exception(fake):
    with pytest.raises(RuntimeError):
        with Driver(fake) as d:
            d.alloc(10)
            raise RuntimeError("boom")
    assert fake.closed and d.closed


def test_bad_backend_names_and_options(fake):
    with pytest.raises(DriverError, match="choose one of"):
        Driver("gpu")
    with pytest.raises(DriverError, match="backend object"):
        Driver(fake, clock_hz=1)
    with pytest.raises(DriverError, match="data_area_size"):
        Driver(fake, data_area_size=0)


class _FakeEmu(FakeBackend):
    name = "emu"

    def __init__(self, memory_bytes=1 << 20, clock_hz=250e6):
        super().__init__(memory_bytes=memory_bytes)
        self.clock_hz = clock_hz


@pytest.fixture
def fake_emu_module(monkeypatch):
    mod = types.ModuleType("hostside.driver.emu")
    mod.EmuBackend = _FakeEmu
    monkeypatch.setitem(sys.modules, "hostside.driver.emu", mod)
    return mod


def test_auto_on_x86_picks_emu_and_says_why(fake_emu_module, caplog, tmp_path):
    from drv_fake_boards import make_tree

    make_tree(tmp_path, "x86")
    caplog.set_level("INFO", logger="hostside.driver.selection")
    with Driver("auto", clock_hz=300e6, root=str(tmp_path)) as d:
        assert d.backend_name == "emu" and isinstance(d.backend, _FakeEmu)
        assert d.backend.clock_hz == 300e6                 # options pass through
        assert "not a Raspberry Pi" in d.backend_reason
    assert any("using emu" in r.message and "not a Raspberry Pi" in r.message for r in caplog.records)


def test_auto_rejects_options_nobody_knows(fake_emu_module, tmp_path):
    from drv_fake_boards import make_tree

    make_tree(tmp_path, "x86")
    with pytest.raises(DriverError, match="frobnicate"):
        Driver("auto", frobnicate=1, root=str(tmp_path))


def test_explicit_emu_passes_options(fake_emu_module):
    with Driver("emu", memory_bytes=2 << 20) as d:
        assert d.backend.memory.size == 2 << 20 and d.backend_reason == "requested"


class _FakeEmuAnyOptions(FakeBackend):
    name = "emu"

    def __init__(self, **options):
        super().__init__()
        self.options = options


def test_auto_keeps_hw_options_from_an_emulator_taking_any(monkeypatch, tmp_path):
    from drv_fake_boards import make_tree

    mod = types.ModuleType("hostside.driver.emu")
    mod.EmuBackend = _FakeEmuAnyOptions
    monkeypatch.setitem(sys.modules, "hostside.driver.emu", mod)
    with Driver("auto", root=str(make_tree(tmp_path, "x86")), host_cached=True, trace=True) as d:
        assert d.backend.options == {"trace": True}


def test_auto_without_any_backend_says_why(monkeypatch, tmp_path):
    from drv_fake_boards import make_tree

    monkeypatch.setitem(sys.modules, "hostside.driver.emu", None)     # import fails
    with pytest.raises(DriverError, match="no backend can run here: hw not usable: this is not a "
                                          "Raspberry Pi.*emu backend cannot be loaded"):
        Driver("auto", root=str(make_tree(tmp_path, "x86")))


def test_cache_maintenance_around_launches(drv, fake):
    a = drv.alloc(4, np.float32)
    p = drv.program(np.array([NOP_WORD], dtype=np.uint64))
    order = []
    fake.run = lambda b, control: order.append(("run", list(b.synced_gpu), list(b.synced_cpu)))
    drv.execute(1, p, [7])
    _, gpu_before, cpu_before = order[0]
    assert a.address in gpu_before and p.address in gpu_before and cpu_before == []
    assert a.address in fake.synced_cpu
