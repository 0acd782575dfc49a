"""py-videocore's Driver arguments: `max_threads`, `cache_mode` with rpi_vcsm's constants, and
Array.clean() / invalidate()."""
import numpy as np
import pytest
from drv_fake_vcio import FakeVcsmCma
from test_driver_hw import NOP, setup_pi

from hostside.driver import (CACHE_BOTH, CACHE_HOST, CACHE_NONE, CACHE_VC, DEFAULT_CODE_AREA_SIZE,
                             DEFAULT_DATA_AREA_SIZE, DEFAULT_MAX_THREADS, Driver, DriverError,
                             OutOfGpuMemoryError, ThreadCountError)
from hostside.driver.mailbox import Mailbox
from vc4infer.qpu import qpu


def test_cache_mode_constants_are_libvcsms():
    # VCSM_CACHE_TYPE_NONE, _HOST, _VC, _HOST_AND_VC of the Raspberry Pi userland's user-vcsm.h
    assert (CACHE_NONE, CACHE_HOST, CACHE_VC, CACHE_BOTH) == (0, 1, 2, 3)


@qpu
def end(asm):
    exit()  # noqa: F821 (a DSL name)


def test_max_threads_bounds_a_launch():
    with Driver(backend="emu", max_threads=4, cache_mode=CACHE_BOTH) as drv:
        prog = drv.program(end)
        drv.execute(4, prog)
        with pytest.raises(ThreadCountError, match="max_threads=4"):
            drv.execute(5, prog)
        a = drv.alloc(16, np.float32)
        a.clean()
        a.invalidate()                  # py-videocore's cache operations exist; nothing to do


def test_default_area_sizes_are_py_videocores_and_bound_the_driver():
    """py-videocore's test_memory: the whole default data area can be allocated, one byte more
    cannot; the same for code (py-videocore's defaults: 32 MiB of data, 1 MiB of code)."""
    assert (DEFAULT_DATA_AREA_SIZE, DEFAULT_CODE_AREA_SIZE) == (32 << 20, 1 << 20)
    assert DEFAULT_MAX_THREADS == 12                     # one instance per QPU
    with Driver(backend="emu") as drv:
        assert drv.alloc(DEFAULT_DATA_AREA_SIZE, np.uint8).nbytes == DEFAULT_DATA_AREA_SIZE
    with Driver(backend="emu") as drv, pytest.raises(OutOfGpuMemoryError):
        drv.alloc(DEFAULT_DATA_AREA_SIZE + 1, np.uint8)
    nop = bytes(8)
    with Driver(backend="emu") as drv:
        assert drv.program(nop * (DEFAULT_CODE_AREA_SIZE // 8)).size == DEFAULT_CODE_AREA_SIZE
        with pytest.raises(DriverError):
            drv.program(nop * (DEFAULT_CODE_AREA_SIZE // 8 + 1))


def test_execute_takes_py_videocores_early_num_threads():
    with Driver(backend="emu") as drv:
        prog = drv.program(end)
        assert drv.execute(num_threads=3, program=prog).n_threads == 3
        with pytest.raises(DriverError, match="not both"):
            drv.execute(2, prog, num_threads=2)


def test_bad_cache_mode_is_refused():
    with pytest.raises(DriverError, match="cache_mode=7"):
        Driver(backend="emu", cache_mode=7)


def test_cache_host_on_hw_maps_the_memory_cached_and_syncs_around_launches(tmp_path):
    root, fw = setup_pi(tmp_path, devices=("vcio", "vcsm-cma"))
    vcsm = FakeVcsmCma()
    fw.other_memory = vcsm
    with Driver(backend="hw", cache_mode=CACHE_HOST, root=root,
                mailbox=Mailbox(fw, pointer_size=fw.pointer_size),
                vcsm_device=vcsm.make_device()) as drv:
        drv.alloc(10, np.float32)
        assert vcsm.allocs[-1][2] == 1              # allocated with the HOST cache type
        del vcsm.syncs[:]
        drv.execute(1, drv.program(np.array([NOP], dtype=np.uint64)))
        assert vcsm.syncs                          # cleaned before, invalidated after
