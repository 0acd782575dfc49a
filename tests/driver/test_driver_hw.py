"""The hw backend against a simulated firmware (/dev/vcio), a sparse file standing in for /dev/mem
and a simulated /dev/vcsm-cma: launch sequence, flags per SoC, control lists, memory mapping,
failure answers, and that nothing leaks."""
import os
import signal
import struct

import numpy as np
import pytest
from drv_fake_boards import make_tree
from drv_fake_vcio import FakeFirmware, FakeVcsmCma, fd_is_open

from hostside.driver import (Driver, DriverClosedError, DriverError, GpuMemoryTooSmallError,
                             HardwareUnavailableError, HwPermissionError, KmsOwnsV3dError,
                             LaunchTimeoutError,
                             OutOfGpuMemoryError, QpuEnableRefusedError)
from hostside.driver import hw as hw_module
from hostside.driver.hw import HwBackend
from hostside.driver.mailbox import Mailbox

NOP = 0x100009E7009E7000
ENABLE, EXECUTE, ALLOC, LOCK, UNLOCK, FREE = 0x30012, 0x30011, 0x3000C, 0x3000D, 0x3000E, 0x3000F


def setup_pi(tmp_path, board="pi3", soc="BCM2837", **tree):
    root = make_tree(tmp_path / "root", board, devices=tree.pop("devices", ("vcio", "mem")), **tree)
    fw = FakeFirmware(tmp_path / "devmem", soc=soc)
    return root, fw


def open_hw(root, fw, **kw):
    return HwBackend(root=root, mailbox=Mailbox(fw, pointer_size=fw.pointer_size),
                     mem_path=fw.mem_file, **kw)


@pytest.mark.parametrize("board, soc, flags", [
    ("pi3", "BCM2837", 0x4),       # MEM_FLAG_DIRECT: the ARM of BCM2836/7 cannot see the VC L2
    ("pi2", "BCM2836", 0x4),
    ("zero", "BCM2835", 0xC),      # MEM_FLAG_L1_NONALLOCATING on BCM2835 (hello_fft's default)
    ("pi1", "BCM2835", 0xC),
])
def test_open_sequence_and_flags(tmp_path, board, soc, flags):
    root, fw = setup_pi(tmp_path, board, soc)
    backend = open_hw(root, fw)
    assert fw.calls[0] == (ENABLE, (1,))
    assert backend.clock_hz == 400e6
    allocs = [v for t, v in fw.calls if t == ALLOC]
    assert allocs == [(4096, 4096, flags)]                      # the control list's page
    backend.close()
    assert fw.handles == {} and fw.qpu_enabled == 0
    assert fw.calls[-1] == (ENABLE, (0,)) and fw.closed


def test_memory_is_mapped_at_the_physical_address(tmp_path):
    root, fw = setup_pi(tmp_path)
    with Driver(open_hw(root, fw)) as drv:
        a = drv.alloc((1024,), np.uint32)
        a[:] = np.arange(1024, dtype=np.uint32) * 3
        assert a.address >> 30 == 3                            # the 0xC alias of DIRECT memory
        raw = fw.read_bus(a.address, 4096)                     # what the QPUs would read
        np.testing.assert_array_equal(np.frombuffer(raw, np.uint32), a)
        fw.write_bus(a.address + 8, struct.pack("<I", 12345))  # what a QPU store would leave
        assert a[2] == 12345
        big = drv.alloc((3, 5000), np.float32)                 # several pages in one block
        assert [v for t, v in fw.calls if t == ALLOC][-1] == (61440, 4096, 4)
        assert big.address % 4096 == 0


def test_execute_writes_the_control_list(tmp_path):
    root, fw = setup_pi(tmp_path)
    with Driver(open_hw(root, fw)) as drv:
        prog = drv.program(np.array([NOP] * 4, dtype=np.uint64))
        u = drv.array(np.arange(6, dtype=np.uint32).reshape(3, 2))
        stats = drv.execute(3, prog, u, timeout=0.25)
        launch = fw.launches[-1]
        assert launch["n"] == 3 and launch["noflush"] == 0 and launch["timeout_ms"] == 250
        assert launch["pairs"] == [(u.address, prog.address), (u.address + 8, prog.address),
                                   (u.address + 16, prog.address)]
        assert fw.read_bus(prog.address, 32) == np.array([NOP] * 4, "<u8").tobytes()
        assert stats.backend == "hw" and stats.n_threads == 3 and stats.clock_hz == 400e6
        drv.execute(1, prog, timeout=30)
        assert fw.launches[-1]["timeout_ms"] == 1000            # capped at max_launch_seconds
        assert fw.launches[-1]["pairs"] == [(0, prog.address)]
        assert drv.max_launch_seconds == 1.0


def test_firmware_timeout_is_a_launch_timeout(tmp_path):
    root, fw = setup_pi(tmp_path)
    fw.execute_answer = 0x80000000
    with Driver(open_hw(root, fw)) as drv:
        prog = drv.program(np.array([NOP], dtype=np.uint64))
        with pytest.raises(LaunchTimeoutError) as e:
            drv.execute(2, prog, [1, 2], timeout=0.5)
        assert "'code of 1 instructions'" in str(e.value) and "0.5 s" in str(e.value)
        fw.execute_answer = 0
        fw.execute_raises = OSError(110, "Connection timed out")   # the kernel's 1 s limit
        with pytest.raises(LaunchTimeoutError, match="1 s"):
            drv.execute(1, prog, timeout=5)
    assert fw.handles == {}


def test_gpu_memory_exhausted(tmp_path):
    root, fw = setup_pi(tmp_path)
    fw.vc_size = 64 * 1024
    with Driver(open_hw(root, fw)) as drv:
        with pytest.raises(GpuMemoryTooSmallError) as e:
            drv.alloc((1 << 20,), np.uint8)
        assert isinstance(e.value, OutOfGpuMemoryError) and isinstance(e.value, HardwareUnavailableError)
        assert "gpu_mem=" in str(e.value) and "reboot" in str(e.value)
        drv.alloc(100, np.uint8)                                 # smaller requests still work
    assert fw.handles == {}


def test_qpu_enable_refused(tmp_path):
    root, fw = setup_pi(tmp_path)
    fw.enable_answer = 1
    with pytest.raises(QpuEnableRefusedError, match="vc4 DRM driver") as e:
        open_hw(root, fw)
    assert "gpu_mem=16" in str(e.value)
    assert fw.handles == {} and fw.closed
    assert not any(b.mailbox.device is fw for b in hw_module._LIVE)


def test_qpu_enable_parse_error(tmp_path):
    root, fw = setup_pi(tmp_path)
    fw.parse_error_tags.add(ENABLE)
    with pytest.raises(QpuEnableRefusedError, match="parse error"):
        open_hw(root, fw)


def test_already_enabled_answer_is_accepted(tmp_path):
    root, fw = setup_pi(tmp_path)
    fw.enable_answer = 0x80000000
    open_hw(root, fw).close()


def test_kms_board_is_refused_before_the_mailbox(tmp_path):
    root, fw = setup_pi(tmp_path, kms="kms")
    with pytest.raises(KmsOwnsV3dError, match="#dtoverlay=vc4-kms-v3d"):
        open_hw(root, fw)
    assert fw.calls == []


def test_close_releases_everything_and_is_idempotent(tmp_path):
    root, fw = setup_pi(tmp_path)
    drv = Driver(open_hw(root, fw))
    arrays = [drv.alloc((100,), np.float32) for _ in range(5)]
    drv.program(np.array([NOP], dtype=np.uint64))
    assert len(fw.handles) == 7
    stale_bus = arrays[1].address
    drv.close()
    drv.close()
    assert fw.handles == {}
    unlocked = [v[0] for t, v in fw.calls if t == UNLOCK]
    freed = [v[0] for t, v in fw.calls if t == FREE]
    assert sorted(unlocked) == sorted(freed) == list(range(1, 8))
    assert fw.calls[-1] == (ENABLE, (0,))
    with pytest.raises(DriverClosedError):
        arrays[0][0] = 1
    # even code that bypasses the checks cannot reach the released GPU memory: the mapping was
    # replaced by private memory
    view = arrays[1].view(np.ndarray)
    view[:] = 7.0
    assert view.tolist() == [7.0] * 100
    assert fw.read_bus(stale_bus, 400) == b"\0" * 400


def test_exception_inside_with_releases(tmp_path):
    root, fw = setup_pi(tmp_path)
    with pytest.raises(RuntimeError):
        with Driver(open_hw(root, fw)) as drv:
            drv.alloc(10)
            raise RuntimeError("failure in user code")
    assert fw.handles == {} and fw.qpu_enabled == 0


@pytest.fixture
def sigint_raises():
    """Ctrl-C raises KeyboardInterrupt in this test, also where the suite was started with SIGINT
    ignored (a background job of a non-interactive shell)."""
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, saved)


def test_ctrl_c_inside_with_releases(tmp_path, sigint_raises):
    root, fw = setup_pi(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with Driver(open_hw(root, fw)) as drv:
            drv.alloc(10)
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(100):            # the signal is delivered between bytecodes
                pass
    assert fw.handles == {}


def test_ctrl_c_during_allocation_loses_no_handle(tmp_path, sigint_raises):
    root, fw = setup_pi(tmp_path)
    backend = open_hw(root, fw)
    drv = Driver(backend)

    def interrupt(tag, values):
        if tag == ALLOC:
            fw.on_call = None
            os.kill(os.getpid(), signal.SIGINT)        # arrives while the handle is being made

    fw.on_call = interrupt
    with pytest.raises(KeyboardInterrupt):
        drv.alloc(100)
    assert len(fw.handles) == 2                         # control list + the interrupted block
    drv.close()
    assert fw.handles == {}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_atexit_closes_forgotten_backends(tmp_path):
    root, fw = setup_pi(tmp_path)
    drv = Driver(open_hw(root, fw))
    drv.alloc(10)
    assert any(b is drv.backend for b in hw_module._LIVE)
    hw_module._close_all_live()                        # what atexit runs
    assert fw.handles == {} and fw.qpu_enabled == 0 and not hw_module._LIVE


def test_vcsm_cma_memory(tmp_path):
    root, fw = setup_pi(tmp_path, devices=("vcio", "vcsm-cma"))
    vcsm = FakeVcsmCma()
    fw.other_memory = vcsm
    with Driver(open_hw(root, fw, vcsm_device=vcsm.make_device())) as drv:
        assert drv.backend.memory.name == "vcsm-cma"
        assert not [t for t, _ in fw.calls if t == ALLOC]       # no firmware allocations
        a = drv.alloc((3000,), np.float32)
        size, num, cached, name, fd, bus = vcsm.allocs[-1]
        assert (size, num, cached) == (12288, 1, 0) and name == b"vc4infer array#1 float32[3000]"
        assert a.address == bus
        a[:] = 1.5
        assert np.frombuffer(os.pread(fd, 12000, 0), np.float32).tolist() == [1.5] * 3000
        prog = drv.program(np.array([NOP], dtype=np.uint64))
        drv.execute(1, prog, [a.address])
        u_bus = vcsm.allocs[-1][5]                              # the uniforms block
        assert fw.launches[-1]["pairs"] == [(u_bus, prog.address)]
        assert fw.launches[-1]["first_uniforms"] == [a.address]
        assert vcsm.syncs == []                                # uncached: no maintenance
    assert not fd_is_open(fd)


def test_vcsm_cma_host_cached_syncs_around_launches(tmp_path):
    root, fw = setup_pi(tmp_path, devices=("vcio", "vcsm-cma"))
    vcsm = FakeVcsmCma()
    fw.other_memory = vcsm
    with Driver(open_hw(root, fw, vcsm_device=vcsm.make_device(), host_cached=True)) as drv:
        drv.alloc(10, np.float32)
        a_fd = vcsm.allocs[-1][4]
        prog = drv.program(np.array([NOP], dtype=np.uint64))
        del vcsm.syncs[:]
        drv.execute(1, prog)
        end_rw, start_rw = 4 | 3, 0 | 3                       # DMA_BUF_SYNC_END|RW, START|RW
        assert (a_fd, end_rw) in vcsm.syncs and (a_fd, start_rw) in vcsm.syncs
        assert vcsm.syncs.index((a_fd, end_rw)) < vcsm.syncs.index((a_fd, start_rw))


def test_vcsm_cma_large_alignment(tmp_path):
    root, fw = setup_pi(tmp_path, devices=("vcio", "vcsm-cma"))
    vcsm = FakeVcsmCma(base_bus=0xC8001000)
    backend = open_hw(root, fw, vcsm_device=vcsm.make_device())
    block = backend.alloc(100, align=65536, label="aligned")
    assert block.bus_address % 65536 == 0
    assert block.buffer.nbytes == 100
    backend.close()


def test_memory_outside_the_gpu_split_is_not_mapped(tmp_path):
    root, fw = setup_pi(tmp_path)
    fw.vc_memory_answer = (0x30000000, 16 << 20)          # the firmware says gpu_mem is elsewhere
    with pytest.raises(DriverError, match="refusing to map"):
        open_hw(root, fw)
    assert fw.handles == {} and fw.qpu_enabled == 0


def test_dev_mem_needs_root(tmp_path):
    root, fw = setup_pi(tmp_path)
    with pytest.raises(HwPermissionError, match="needs root"):
        HwBackend(root=root, mailbox=Mailbox(fw, pointer_size=8), mem_path=str(tmp_path / "nomem"))
    assert fw.qpu_enabled == 0 and fw.closed


def test_cma_pool_exhausted(tmp_path):
    root, fw = setup_pi(tmp_path, devices=("vcio", "vcsm-cma"))
    vcsm = FakeVcsmCma(capacity=1 << 20)
    with Driver(open_hw(root, fw, vcsm_device=vcsm.make_device())) as drv:
        with pytest.raises(GpuMemoryTooSmallError, match="dtoverlay=cma,cma-256"):
            drv.alloc((2 << 20,), np.uint8)


def _mapped(ptr):
    with open("/proc/self/maps") as f:
        for line in f:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= ptr < end:
                return True
    return False


def test_released_mappings_are_unmapped_once_unreferenced(tmp_path):
    root, fw = setup_pi(tmp_path)
    drv = Driver(open_hw(root, fw))
    a = drv.alloc((4096,), np.uint8)
    ptr = next(iter(drv._allocations.values())).handle.mapping.ptr
    assert _mapped(ptr)
    drv.close()
    assert _mapped(ptr)                 # retired, still mapped: `a` refers to it
    del a
    assert not _mapped(ptr)


def test_host_cached_needs_vcsm_cma(tmp_path):
    root, fw = setup_pi(tmp_path)
    with pytest.raises(DriverError, match="host_cached=True needs"):
        open_hw(root, fw, host_cached=True)
    assert fw.handles == {} and fw.qpu_enabled == 0


def test_vcsm_cma_and_dma_buf_ioctl_numbers_are_the_kernels():
    """Written out from the kernel headers, not from our constants: vc_sm_cma_ioctl.h has
    VC_SM_CMA_IOCTL_MEM_ALLOC = _IOR('J', 0x5A, struct vc_sm_cma_ioctl_alloc), a 64-byte struct
    (size, num, cached, pad, name[32], handle, vc_handle, u64 dma_addr); dma-buf.h has
    DMA_BUF_IOCTL_SYNC = _IOW('b', 0, struct dma_buf_sync { u64 flags })."""
    from hostside.driver import gpumem
    assert gpumem.VCSM_ALLOC_STRUCT.size == 64
    assert gpumem.VCSM_IOCTL_MEM_ALLOC == 0x80404A5A
    assert gpumem.DMA_BUF_IOCTL_SYNC == 0x40086200
    fields = gpumem.VCSM_ALLOC_STRUCT.unpack(bytes(range(64)))
    assert fields[7] == int.from_bytes(bytes(range(56, 64)), "little")    # dma_addr at byte 56
