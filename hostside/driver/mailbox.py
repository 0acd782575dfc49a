"""The firmware's mailbox property interface, spoken through /dev/vcio.

A property call is one buffer of little-endian u32 words: total size in bytes, request code 0,
one tag (id, value-buffer size, request indicator = request length, values), end tag 0. The kernel
copies it to the firmware and back; the firmware overwrites the values with its answer, sets bit 31
of the indicator word (low bits = answer length) and word 1 to 0x80000000 on success
(spec §13.2-13.3). The device is injectable so that tests can answer like the firmware.
"""
from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import Optional, Protocol, Tuple

from .errors import HwPermissionError, MailboxError, MailboxTimeoutError, MailboxUnavailableError

PROCESS_REQUEST = 0x00000000
REQUEST_SUCCESS = 0x80000000
PARSE_ERROR = 0x80000001
RESPONSE_BIT = 0x80000000

# Tags (spec §13.3)
TAG_GET_FIRMWARE_REVISION = 0x00000001
TAG_GET_BOARD_REVISION = 0x00010002
TAG_GET_ARM_MEMORY = 0x00010005
TAG_GET_VC_MEMORY = 0x00010006
TAG_GET_CLOCK_RATE = 0x00030002
TAG_GET_MAX_CLOCK_RATE = 0x00030004
TAG_MEM_ALLOC = 0x0003000C
TAG_MEM_LOCK = 0x0003000D
TAG_MEM_UNLOCK = 0x0003000E
TAG_MEM_FREE = 0x0003000F
TAG_EXECUTE_QPU = 0x00030011
TAG_ENABLE_QPU = 0x00030012

# Clock ids of the clock tags
CLOCK_ARM = 3
CLOCK_CORE = 4
CLOCK_V3D = 5

# mem_alloc flags (spec §13.4)
MEM_FLAG_DISCARDABLE = 1 << 0
MEM_FLAG_NORMAL = 0 << 2
MEM_FLAG_DIRECT = 1 << 2
MEM_FLAG_COHERENT = 2 << 2
MEM_FLAG_L1_NONALLOCATING = MEM_FLAG_DIRECT | MEM_FLAG_COHERENT
MEM_FLAG_ZERO = 1 << 4
MEM_FLAG_NO_INIT = 1 << 5
MEM_FLAG_HINT_PERMALOCK = 1 << 6

#: execute_qpu's answer when the QPU programs did not finish within the timeout
EXECUTE_QPU_TIMEOUT = 0x80000000
#: qpu_enable's answer when the QPUs were already on (a firmware reference count; VC4CL accepts it)
ENABLE_QPU_ALREADY_ON = 0x80000000

#: sanity bounds of the firmware's answers: no VideoCore IV clock runs at 1.5 GHz, and the GPU's
#: view of SDRAM is 1 GiB (the largest VC4 Pi's RAM)
MAX_CLOCK_HZ = 1_500_000_000
VC_ADDRESS_SPACE_BYTES = 1 << 30

VCIO_PATH = "/dev/vcio"


def ioctl_iowr(type_: int, nr: int, size: int) -> int:
    """Linux _IOWR(type, nr, size) on ARM and x86: dir bits 3 (read|write) at 30, size at 16."""
    return (3 << 30) | (size << 16) | (type_ << 8) | nr


def mbox_property_ioctl_number(pointer_size: Optional[int] = None) -> int:
    """IOCTL_MBOX_PROPERTY = _IOWR(100, 0, char *): the size field is the pointer size of this
    process (0xC0046400 for 32-bit user space, 0xC0086400 for 64-bit)."""
    if pointer_size is None:
        pointer_size = ctypes.sizeof(ctypes.c_void_p)
    return ioctl_iowr(100, 0, pointer_size)


class MailboxDevice(Protocol):
    """What the Mailbox needs from /dev/vcio: one ioctl that rewrites `buf` in place."""

    def ioctl(self, request: int, buf: bytearray) -> None: ...

    def close(self) -> None: ...


class VcioDevice:
    """The real /dev/vcio."""

    def __init__(self, path: str = VCIO_PATH):
        try:
            # read-only suffices for the property ioctl (hello_fft and py-videocore open it so)
            self.fd: Optional[int] = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise MailboxUnavailableError(
                f"{path} does not exist: this kernel has no firmware mailbox device. Use Raspberry Pi "
                "OS's kernel (rpi-*.y), or create it with `sudo mknod /dev/vcio c 100 0` on old "
                "kernels; otherwise use backend='emu'.") from None
        except PermissionError:
            raise HwPermissionError(
                f"no permission to open {path}: add yourself to the video group "
                "(`sudo usermod -aG video $USER`, then log in again) or run as root.") from None

    def ioctl(self, request: int, buf: bytearray) -> None:
        import fcntl
        if self.fd is None:
            raise MailboxError("the mailbox device is closed")
        fcntl.ioctl(self.fd, request, buf, True)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Mailbox:
    """Property calls used for QPU work. Each method sends exactly one tag."""

    def __init__(self, device: Optional[MailboxDevice] = None, pointer_size: Optional[int] = None):
        self.device: MailboxDevice = device if device is not None else VcioDevice()
        self.ioctl_number = mbox_property_ioctl_number(pointer_size)

    def close(self) -> None:
        """Close the device. Idempotent."""
        self.device.close()

    def call(self, tag: int, request: Tuple[int, ...], response_words: int,
             name: str = "") -> Tuple[int, ...]:
        """Send one tag with `request` u32 values; return the firmware's `response_words` values.

        Raises MailboxError when the ioctl fails, the firmware reports a parse error, or the answer
        is not marked as a response; MailboxTimeoutError (also a TimeoutError) when the kernel's
        1 s limit ran out (ETIMEDOUT), so that callers can tell it apart.
        """
        name = name or f"tag 0x{tag:08x}"
        value_bytes = 4 * max(len(request), response_words)
        words = [0, PROCESS_REQUEST, tag, value_bytes, 4 * len(request)]
        words += list(request) + [0] * (value_bytes // 4 - len(request))
        words.append(0)                                    # end tag
        words[0] = 4 * len(words)
        buf = bytearray(struct.pack(f"<{len(words)}I", *[w & 0xFFFFFFFF for w in words]))
        try:
            self.device.ioctl(self.ioctl_number, buf)
        except OSError as exc:
            if exc.errno == errno.ETIMEDOUT:
                raise MailboxTimeoutError(f"mailbox call {name}: the kernel gave up waiting for the "
                                          "firmware (ETIMEDOUT)") from exc
            raise MailboxError(f"mailbox call {name} failed: {exc}") from exc
        out = struct.unpack(f"<{len(words)}I", bytes(buf))
        if out[1] != REQUEST_SUCCESS:
            what = "a parse error" if out[1] == PARSE_ERROR else f"status 0x{out[1]:08x}"
            raise MailboxError(f"mailbox call {name}: the firmware answered {what}")
        if not out[4] & RESPONSE_BIT:
            raise MailboxError(f"mailbox call {name}: the firmware did not answer the tag "
                               "(firmware too old for it?)")
        return tuple(out[5:5 + response_words])

    # --- QPU power and launch ---------------------------------------------------------------------
    def enable_qpu(self, enable: bool) -> int:
        """Power the QPUs on or off; returns the firmware's status (0 = OK)."""
        return self.call(TAG_ENABLE_QPU, (1 if enable else 0,), 1, "qpu_enable")[0]

    def execute_qpu(self, num_qpus: int, control_bus: int, noflush: int, timeout_ms: int) -> int:
        """Run `num_qpus` programs from the control list at `control_bus`; 0 = all ended,
        0x80000000 = timeout."""
        return self.call(TAG_EXECUTE_QPU, (num_qpus, control_bus, noflush, timeout_ms), 1,
                         "execute_qpu")[0]

    # --- GPU memory -------------------------------------------------------------------------------
    def mem_alloc(self, nbytes: int, align: int, flags: int) -> int:
        """Allocate contiguous GPU memory; returns a handle (0 = failure)."""
        return self.call(TAG_MEM_ALLOC, (nbytes, align, flags), 1, "mem_alloc")[0]

    def mem_lock(self, handle: int) -> int:
        """Lock an allocation in place; returns its bus address (0 = failure)."""
        return self.call(TAG_MEM_LOCK, (handle,), 1, "mem_lock")[0]

    def mem_unlock(self, handle: int) -> int:
        """Unlock an allocation; returns status (0 = OK)."""
        return self.call(TAG_MEM_UNLOCK, (handle,), 1, "mem_unlock")[0]

    def mem_free(self, handle: int) -> int:
        """Release an allocation; returns status (0 = OK)."""
        return self.call(TAG_MEM_FREE, (handle,), 1, "mem_free")[0]

    # --- board facts ------------------------------------------------------------------------------
    def get_clock_rate(self, clock_id: int) -> int:
        """Current rate of a clock in Hz (clock 5 = V3D)."""
        return self._rate(TAG_GET_CLOCK_RATE, clock_id, "get_clock_rate")

    def get_max_clock_rate(self, clock_id: int) -> int:
        """Maximum rate of a clock in Hz."""
        return self._rate(TAG_GET_MAX_CLOCK_RATE, clock_id, "get_max_clock_rate")

    def _rate(self, tag: int, clock_id: int, name: str) -> int:
        echoed, rate = self.call(tag, (clock_id,), 2, name)
        if echoed != clock_id or not 0 < rate <= MAX_CLOCK_HZ:   # the firmware echoes the clock id
            raise MailboxError(f"{name}({clock_id}) answered clock {echoed} at {rate} Hz: not an answer "
                               "to the question")
        return rate

    def get_vc_memory(self) -> Tuple[int, int]:
        """(base, size in bytes) of the GPU side of the memory split (gpu_mem)."""
        base, size = self.call(TAG_GET_VC_MEMORY, (), 2, "get_vc_memory")
        if not 0 < size <= VC_ADDRESS_SPACE_BYTES or base + size > VC_ADDRESS_SPACE_BYTES:
            raise MailboxError(f"get_vc_memory answered {size} bytes at 0x{base:08x}, beyond the "
                               "GPU's 1 GiB view of SDRAM: not a memory split any Pi has")
        return base, size

    def get_arm_memory(self) -> Tuple[int, int]:
        """(base, size in bytes) of the ARM side of the memory split."""
        base, size = self.call(TAG_GET_ARM_MEMORY, (), 2, "get_arm_memory")
        return base, size

    def get_board_revision(self) -> int:
        """The board revision code (the same number as /proc/cpuinfo's Revision)."""
        return self.call(TAG_GET_BOARD_REVISION, (), 1, "get_board_revision")[0]

    def get_firmware_revision(self) -> int:
        """The firmware's build time stamp."""
        return self.call(TAG_GET_FIRMWARE_REVISION, (), 1, "get_firmware_revision")[0]
