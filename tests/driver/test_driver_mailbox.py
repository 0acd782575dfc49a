"""The mailbox property calls: ioctl numbers and the exact words of every buffer, worked out from
the layout and tag tables of spec §13.2-13.3, and the handling of failure answers."""
import errno
import struct

import pytest
from drv_fake_vcio import FakeFirmware

from hostside.driver.errors import MailboxError
from hostside.driver.mailbox import Mailbox, mbox_property_ioctl_number


def test_ioctl_number_per_pointer_size():
    assert mbox_property_ioctl_number(4) == 0xC0046400
    assert mbox_property_ioctl_number(8) == 0xC0086400


@pytest.fixture
def fw(tmp_path):
    return FakeFirmware(tmp_path / "mem")


@pytest.fixture
def mbox(fw):
    return Mailbox(fw, pointer_size=8)


# (call, expected request words) — size, code 0, tag, value-buffer bytes, request bytes, values, end
EXPECTED = [
    (lambda m: m.enable_qpu(True), [28, 0, 0x00030012, 4, 4, 1, 0]),
    (lambda m: m.enable_qpu(False), [28, 0, 0x00030012, 4, 4, 0, 0]),
    (lambda m: m.mem_alloc(8192, 4096, 0x4), [36, 0, 0x0003000C, 12, 12, 8192, 4096, 4, 0]),
    (lambda m: m.mem_lock(1), [28, 0, 0x0003000D, 4, 4, 1, 0]),
    (lambda m: m.mem_unlock(1), [28, 0, 0x0003000E, 4, 4, 1, 0]),
    (lambda m: m.mem_free(1), [28, 0, 0x0003000F, 4, 4, 1, 0]),
    (lambda m: m.execute_qpu(12, 0xC0001000, 0, 1000),
     [40, 0, 0x00030011, 16, 16, 12, 0xC0001000, 0, 1000, 0]),
    (lambda m: m.get_clock_rate(5), [32, 0, 0x00030002, 8, 4, 5, 0, 0]),
    (lambda m: m.get_vc_memory(), [32, 0, 0x00010006, 8, 0, 0, 0, 0]),
    (lambda m: m.get_board_revision(), [28, 0, 0x00010002, 4, 0, 0, 0]),
]


@pytest.mark.parametrize("call, words", EXPECTED)
def test_exact_request_buffers(fw, mbox, call, words):
    if words[2] in (0x0003000D, 0x0003000E, 0x0003000F):
        mbox.mem_alloc(4096, 4096, 4)                       # so that handle 1 exists
        if words[2] == 0x0003000E:
            mbox.mem_lock(1)
    call(mbox)
    assert list(fw.buffers[-1]) == words


def test_answers_are_decoded(fw, mbox):
    assert mbox.enable_qpu(True) == 0
    h = mbox.mem_alloc(4096, 4096, 4)
    assert h == 1
    assert mbox.mem_lock(h) == 0xC0000000 | fw.vc_base          # DIRECT alias on BCM2837
    assert mbox.mem_unlock(h) == 0 and mbox.mem_free(h) == 0
    assert mbox.mem_free(h) == 1                                 # unknown handle: failure status
    assert mbox.get_clock_rate(5) == 400_000_000
    assert mbox.get_vc_memory() == (fw.vc_base, fw.vc_size)


def test_32_bit_user_space(tmp_path):
    fw = FakeFirmware(tmp_path / "mem", pointer_size=4)
    assert Mailbox(fw, pointer_size=4).enable_qpu(True) == 0
    with pytest.raises(MailboxError, match="failed"):
        Mailbox(fw, pointer_size=8).enable_qpu(True)              # wrong number: ENOTTY


def test_parse_error_answer(fw, mbox):
    fw.parse_error_tags.add(0x00030012)
    with pytest.raises(MailboxError, match="parse error"):
        mbox.enable_qpu(True)


class _SilentDevice:
    """Answers success but leaves the tag unanswered (a firmware that does not know it)."""

    def ioctl(self, request, buf):
        buf[4:8] = struct.pack("<I", 0x80000000)

    def close(self):
        pass


def test_unanswered_tag():
    with pytest.raises(MailboxError, match="did not answer"):
        Mailbox(_SilentDevice(), pointer_size=8).enable_qpu(True)


def test_kernel_timeout_becomes_timeout_error(fw, mbox):
    fw.execute_raises = OSError(errno.ETIMEDOUT, "Connection timed out")
    mbox.enable_qpu(True)
    fw.write_bus(fw.vc_base, b"\0" * 8)
    with pytest.raises(TimeoutError):
        mbox.execute_qpu(1, fw.vc_base | 0xC0000000, 0, 1000)
