"""The hw backend's error paths against the simulated firmware: each fault gives an error that
names it, and no GPU memory stays allocated, no device stays open, the QPUs are powered down."""
import errno
import logging

import numpy as np
import pytest
from drv_fake_vcio import FakeVcsmCma, fd_is_open
from test_driver_hw import ALLOC, ENABLE, FREE, LOCK, NOP, UNLOCK, open_hw, setup_pi

from hostside.driver import Driver, DriverError, HwPermissionError
from hostside.driver import gpumem
from hostside.driver.errors import MailboxError, MailboxTimeoutError, QpuExecuteError

CLOCK = 0x30002


def test_unexpected_execute_status_names_it_and_the_driver_goes_on(tmp_path):
    root, fw = setup_pi(tmp_path)
    with Driver(open_hw(root, fw)) as drv:
        prog = drv.program(np.array([NOP], dtype=np.uint64))
        fw.execute_answer = 0x12345
        with pytest.raises(QpuExecuteError, match="0x00012345"):
            drv.execute(1, prog, [0])
        fw.execute_answer = 0
        drv.execute(1, prog, [0])                       # the next launch works
    assert fw.handles == {} and fw.qpu_enabled == 0


def test_close_goes_on_past_failures_and_reports_the_first(tmp_path):
    root, fw = setup_pi(tmp_path)
    drv = Driver(open_hw(root, fw))
    drv.alloc(100)
    drv.alloc(100)
    fw.parse_error_tags = {UNLOCK}                      # every unlock fails
    with pytest.raises(DriverError, match="closing the hw backend: .*mem_unlock"):
        drv.close()
    # each handle was still freed, the QPUs powered off, the device closed
    assert fw.handles == {} and fw.qpu_enabled == 0 and fw.closed
    assert [t for t, _ in fw.calls[-2:]] == [FREE, ENABLE]


def test_close_powers_the_qpus_down_even_when_every_free_fails(tmp_path):
    root, fw = setup_pi(tmp_path)
    drv = Driver(open_hw(root, fw))
    drv.alloc(100)
    fw.parse_error_tags = {UNLOCK, FREE}
    with pytest.raises(DriverError, match="closing the hw backend"):
        drv.close()
    assert fw.qpu_enabled == 0 and fw.closed


def test_a_failed_free_keeps_the_block_for_close(tmp_path):
    """free() that fails half-way forgets nothing: close() finishes the job, without unlocking or
    freeing a handle twice."""
    root, fw = setup_pi(tmp_path)
    backend = open_hw(root, fw)
    block = backend.alloc(100)
    handle = max(fw.handles)
    fw.parse_error_tags = {FREE}
    with pytest.raises(MailboxError, match="mem_free"):
        backend.free(block)
    assert handle in fw.handles
    fw.parse_error_tags = set()
    backend.close()
    assert fw.handles == {}
    assert [v[0] for t, v in fw.calls if t == UNLOCK].count(handle) == 1


def test_double_free_is_refused(tmp_path):
    root, fw = setup_pi(tmp_path)
    backend = open_hw(root, fw)
    block = backend.alloc(100)
    backend.free(block)
    frees = len([t for t, _ in fw.calls if t == FREE])
    with pytest.raises(DriverError, match="freed twice"):
        backend.free(block)
    assert len([t for t, _ in fw.calls if t == FREE]) == frees       # nothing sent
    backend.close()
    assert fw.handles == {}


def test_a_failed_clock_read_is_a_warning_and_launches_still_run(tmp_path, caplog):
    root, fw = setup_pi(tmp_path)
    fw.parse_error_tags = {CLOCK}
    with caplog.at_level(logging.WARNING, logger="hostside.driver.hw"):
        backend = open_hw(root, fw)
    assert backend.clock_hz is None
    assert any("cannot read the V3D clock" in r.getMessage() for r in caplog.records)
    with Driver(backend) as drv:
        stats = drv.execute(1, drv.program(np.array([NOP], dtype=np.uint64)), [0])
        assert stats.clock_hz is None


def test_mem_lock_answering_0_frees_the_handle(tmp_path):
    root, fw = setup_pi(tmp_path)
    with Driver(open_hw(root, fw)) as drv:
        fw.forced[LOCK] = [0]
        with pytest.raises(DriverError, match="could not lock GPU memory handle"):
            drv.alloc(100)
        del fw.forced[LOCK]
        assert len(fw.handles) == 1                     # only the control list's
    assert fw.handles == {}


def test_dev_mem_refused_on_a_later_allocation(tmp_path, monkeypatch):
    root, fw = setup_pi(tmp_path)
    with Driver(open_hw(root, fw)) as drv:
        first = drv.alloc(100)
        real = gpumem.HostMapping

        def refused(fd, nbytes, offset):
            raise OSError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(gpumem, "HostMapping", refused)
        with pytest.raises(HwPermissionError, match="refused to map /dev/mem"):
            drv.alloc(100)
        monkeypatch.setattr(gpumem, "HostMapping", real)
        assert len(fw.handles) == 2                     # control list + first: nothing leaked
        first[:] = 3                                    # the earlier block still works
    assert fw.handles == {}


def test_a_closed_mailbox_is_a_driver_error(tmp_path):
    root, fw = setup_pi(tmp_path)
    backend = open_hw(root, fw)
    drv = Driver(backend)
    prog = drv.program(np.array([NOP], dtype=np.uint64))
    fw.closed = True                                    # the device went away under us
    with pytest.raises(MailboxError, match="Bad file descriptor"):
        drv.execute(1, prog, [0])
    with pytest.raises(DriverError):
        drv.close()


def test_a_mailbox_timeout_is_a_driver_error_and_a_timeout(tmp_path):
    root, fw = setup_pi(tmp_path)

    def timeout(tag, values):
        if tag == ALLOC:
            raise OSError(errno.ETIMEDOUT, "Connection timed out")

    with Driver(open_hw(root, fw)) as drv:
        fw.on_call = timeout
        with pytest.raises(MailboxTimeoutError, match="mem_alloc.*ETIMEDOUT") as info:
            drv.alloc(100)
        assert isinstance(info.value, DriverError) and isinstance(info.value, TimeoutError)
        fw.on_call = None
    assert fw.handles == {}


def _vcsm(tmp_path):
    root, fw = setup_pi(tmp_path, devices=("vcio", "vcsm-cma"))
    vcsm = FakeVcsmCma()
    fw.other_memory = vcsm
    return root, fw, vcsm


def test_vcsm_cma_ioctl_failure(tmp_path):
    root, fw, vcsm = _vcsm(tmp_path)
    with Driver(open_hw(root, fw, vcsm_device=vcsm.make_device())) as drv:
        vcsm.alloc_error = OSError(errno.EIO, "Input/output error")
        with pytest.raises(DriverError, match="vcsm-cma allocation of 4096 bytes failed"):
            drv.alloc(100)
        vcsm.alloc_error = None
        drv.alloc(100)


@pytest.mark.parametrize("bus", [0, 0xC0000800, 0xFFFFF000, 1 << 32])
def test_vcsm_cma_unusable_block_closes_its_fd(tmp_path, bus):
    # no address, not a page, 8 KiB from 4 KiB below the end of the VideoCore's 1 GiB, > 32 bits
    root, fw, vcsm = _vcsm(tmp_path)
    with Driver(open_hw(root, fw, vcsm_device=vcsm.make_device())) as drv:
        vcsm.bus_answer = bus
        with pytest.raises(DriverError, match="unusable block"):
            drv.alloc(5000)
        fd = vcsm.allocs[-1][4]
        assert not fd_is_open(fd)


def test_vcsm_cma_mapping_failure_closes_its_fd(tmp_path, monkeypatch):
    root, fw, vcsm = _vcsm(tmp_path)
    with Driver(open_hw(root, fw, vcsm_device=vcsm.make_device())) as drv:
        def refused(fd, nbytes, offset):
            raise OSError(errno.ENOMEM, "Cannot allocate memory")

        monkeypatch.setattr(gpumem, "HostMapping", refused)
        with pytest.raises(OSError):
            drv.alloc(100)
        assert not fd_is_open(vcsm.allocs[-1][4])
    assert ALLOC not in [t for t, _ in fw.calls]
