"""A simulated /dev/vcio and /dev/vcsm-cma for the hw backend's tests.

FakeFirmware sits at the ioctl boundary: it parses every property buffer by the layout of spec §13.2
(size word, request code, tag id, value-buffer size, request indicator, values, end tag), rejects
malformed ones, and answers the tags of §13.3 like the firmware, including failures (mem_alloc handle
0 when gpu_mem is used up, qpu_enable refused under KMS, execute_qpu timeout 0x80000000). GPU
memory lives in a sparse file that stands in for /dev/mem, at the physical addresses the firmware
hands out, so the backend's own mmap of it is exercised too.
"""
import errno
import os
import struct

from hostside.driver import simboard

VCIO_IOCTL = {4: 0xC0046400, 8: 0xC0086400}     # spec §13.2, from _IOWR(100, 0, char *)

# tag -> (request words, response words), spec §13.3
TAGS = {
    0x00030012: (1, 1),   # enable QPU
    0x00030011: (4, 1),   # execute QPU
    0x0003000C: (3, 1),   # mem_alloc
    0x0003000D: (1, 1),   # mem_lock
    0x0003000E: (1, 1),   # mem_unlock
    0x0003000F: (1, 1),   # mem_free
    0x00030002: (1, 2),   # get clock rate
    0x00030004: (1, 2),   # get max clock rate
    0x00010006: (0, 2),   # get VC memory
    0x00010005: (0, 2),   # get ARM memory
    0x00010002: (0, 1),   # get board revision
}

# Top two bits of the bus address per mem_alloc cache flags (bits 3:2): the simulated board's table
ALIAS = simboard.ALIAS_BY_CACHE_FLAGS


class MalformedBuffer(AssertionError):
    """The backend sent a buffer the firmware could not parse."""


class FakeFirmware:
    def __init__(self, mem_file, soc="BCM2837", pointer_size=8, vc_base=0x1C000000,
                 vc_size=64 << 20, v3d_hz=400_000_000):
        self.mem_file, self.soc, self.pointer_size = str(mem_file), soc, pointer_size
        self.vc_base, self.vc_size, self.v3d_hz = vc_base, vc_size, v3d_hz
        with open(self.mem_file, "ab") as f:      # sparse: only touched pages take disk space
            f.truncate(vc_base + vc_size)
        self.buffers = []          # every request buffer as sent (tuple of words)
        self.calls = []            # (tag, request values)
        self.handles = {}          # handle -> dict(size, align, flags, phys, locked)
        self.next_handle = 1
        self.next_phys = vc_base
        self.qpu_enabled = 0
        self.launches = []         # dict(n, control, noflush, timeout_ms, pairs)
        # failure modes
        self.enable_answer = 0             # e.g. 1: refused (KMS owns the V3D)
        self.parse_error_tags = set()      # answer 0x80000001 for these tags
        self.execute_answer = 0            # 0x80000000: timeout
        self.execute_raises = None         # an OSError to raise from the ioctl
        self.on_call = None                # callback(tag, values) before answering
        self.other_memory = None           # e.g. a FakeVcsmCma: GPU memory outside gpu_mem
        self.vc_memory_answer = None       # (base, size) to report instead of the real split
        self.forced = {}                   # tag -> response values to give instead of the real ones
        self.closed = False

    # --- device interface --------------------------------------------------------------------------
    def ioctl(self, request, buf):
        if self.closed:
            raise OSError(errno.EBADF, "Bad file descriptor (the mailbox device was closed)")
        if request != VCIO_IOCTL[self.pointer_size]:
            raise OSError(errno.ENOTTY, f"wrong ioctl number 0x{request:08x}")
        if len(buf) % 4:
            raise MalformedBuffer("buffer length is not a multiple of 4")
        words = list(struct.unpack(f"<{len(buf) // 4}I", bytes(buf)))
        self.buffers.append(tuple(words))
        if words[0] != len(buf):
            raise MalformedBuffer(f"size word {words[0]} != buffer length {len(buf)}")
        if words[1] != 0:
            raise MalformedBuffer(f"request code 0x{words[1]:08x}, expected 0 (process request)")
        i, answer = 2, 0x80000000
        while True:
            if i >= len(words):
                raise MalformedBuffer("no end tag")
            tag = words[i]
            if tag == 0:
                break
            value_bytes, indicator = words[i + 1], words[i + 2]
            if value_bytes % 4:
                raise MalformedBuffer("value buffer size not a multiple of 4")
            if indicator & 0x80000000:
                raise MalformedBuffer("request indicator has the response bit set")
            values = words[i + 3:i + 3 + value_bytes // 4]
            if len(values) != value_bytes // 4:
                raise MalformedBuffer("value buffer runs past the end")
            if tag not in TAGS:
                raise MalformedBuffer(f"unknown tag 0x{tag:08x}")
            n_req, n_resp = TAGS[tag]
            if indicator != 4 * n_req:
                raise MalformedBuffer(f"tag 0x{tag:08x}: request length {indicator}, expected {4 * n_req}")
            if value_bytes < 4 * max(n_req, n_resp):
                raise MalformedBuffer(f"tag 0x{tag:08x}: value buffer {value_bytes} bytes too small")
            self.calls.append((tag, tuple(values[:n_req])))
            if self.on_call:
                self.on_call(tag, tuple(values[:n_req]))
            if tag in self.parse_error_tags:
                answer = 0x80000001
            else:
                response = self.forced.get(tag) or self._answer(tag, values[:n_req])
                words[i + 3:i + 3 + len(response)] = response
                words[i + 2] = 0x80000000 | 4 * n_resp
            i += 3 + value_bytes // 4
        if any(words[i + 1:]):
            raise MalformedBuffer("non-zero words after the end tag")
        words[1] = answer
        buf[:] = struct.pack(f"<{len(words)}I", *words)

    def close(self):
        self.closed = True

    # --- the firmware's side -----------------------------------------------------------------------
    def _answer(self, tag, v):
        if tag == 0x00030012:
            if self.enable_answer == 0:
                self.qpu_enabled = v[0]
            return [self.enable_answer]
        if tag == 0x0003000C:
            return [self._mem_alloc(*v)]
        if tag == 0x0003000D:
            h = self.handles.get(v[0])
            if h is None:
                return [0]
            h["locked"] = True
            return [h["phys"] | ALIAS[self.soc][(h["flags"] >> 2) & 3]]
        if tag == 0x0003000E:
            h = self.handles.get(v[0])
            if h is None or not h["locked"]:
                return [1]
            h["locked"] = False
            return [0]
        if tag == 0x0003000F:
            return [0 if self.handles.pop(v[0], None) is not None else 1]
        if tag == 0x00030011:
            return [self._execute(*v)]
        if tag in (0x00030002, 0x00030004):
            return [v[0], self.v3d_hz if v[0] == 5 else 250_000_000]
        if tag == 0x00010006:
            return list(self.vc_memory_answer or (self.vc_base, self.vc_size))
        if tag == 0x00010005:
            return [0, self.vc_base]
        if tag == 0x00010002:
            return [0xA02082]
        raise AssertionError(tag)

    def _mem_alloc(self, size, align, flags):
        if flags & ~0x7F:
            raise MalformedBuffer(f"unknown mem_alloc flags 0x{flags:x}")
        if align == 0 or align & (align - 1):
            raise MalformedBuffer(f"alignment {align} is not a power of two")
        phys = (self.next_phys + align - 1) // align * align
        if phys + size > self.vc_base + self.vc_size:
            return 0                                  # out of GPU memory: handle 0
        self.next_phys = phys + size
        handle = self.next_handle
        self.next_handle += 1
        self.handles[handle] = dict(size=size, align=align, flags=flags, phys=phys, locked=False)
        return handle

    def _execute(self, n, control, noflush, timeout_ms):
        pairs = struct.unpack(f"<{2 * n}I", self.read_bus(control, 8 * n))
        pairs = [(pairs[2 * k], pairs[2 * k + 1]) for k in range(n)]
        # the first uniform word of each instance, read now: temporary blocks go after the launch
        first = [struct.unpack("<I", self.read_bus(u, 4))[0] if u else None for u, _ in pairs]
        self.launches.append(dict(n=n, control=control, noflush=noflush, timeout_ms=timeout_ms,
                                  pairs=pairs, first_uniforms=first))
        if self.execute_raises is not None:
            raise self.execute_raises
        if not self.qpu_enabled:
            return 0x80000000
        return self.execute_answer

    # --- test helpers ------------------------------------------------------------------------------
    def read_bus(self, bus, nbytes):
        """Bytes of GPU memory at a bus address (as the QPUs would read them)."""
        if self.other_memory is not None and self.other_memory.holds(bus):
            return self.other_memory.read_bus(bus, nbytes)
        phys = bus & 0x3FFFFFFF
        fd = os.open(self.mem_file, os.O_RDONLY)
        try:
            return os.pread(fd, nbytes, phys)
        finally:
            os.close(fd)

    def write_bus(self, bus, data):
        fd = os.open(self.mem_file, os.O_RDWR)
        try:
            os.pwrite(fd, data, bus & 0x3FFFFFFF)
        finally:
            os.close(fd)

    def tags(self):
        return [tag for tag, _ in self.calls]

    def live_handles(self):
        return dict(self.handles)


class FakeVcsmCma:
    """Parts of a simulated /dev/vcsm-cma: blocks are memfds; records sync calls."""

    def __init__(self, base_bus=0xC8000000, capacity=64 << 20):
        self.next_bus = base_bus
        self.capacity = capacity          # bytes the CMA pool can give before ENOMEM
        self.alloc_error = None           # an OSError the next allocation raises
        self.bus_answer = None            # answer this bus address (an unusable block's)
        self.allocs = []      # (size, num, cached, name, fd, bus)
        self.syncs = []       # (fd, flags)

    def holds(self, bus):
        return any(b <= bus < b + size for size, _, _, _, _, b in self.allocs)

    def read_bus(self, bus, nbytes):
        for size, _, _, _, fd, b in self.allocs:
            if b <= bus < b + size:
                return os.pread(fd, nbytes, bus - b)
        raise AssertionError(f"no CMA block at 0x{bus:08x}")

    def make_device(self):
        from hostside.driver.gpumem import (DMA_BUF_IOCTL_SYNC, VCSM_ALLOC_STRUCT,
                                            VCSM_IOCTL_MEM_ALLOC, VcsmCmaDevice)
        fake = self

        class Device(VcsmCmaDevice):
            def open_path(self, path):
                return os.open(os.devnull, os.O_RDWR)

            def ioctl(self, fd, request, buf):
                if request == VCSM_IOCTL_MEM_ALLOC:
                    assert fd == self.fd and len(buf) == 64
                    fields = VCSM_ALLOC_STRUCT.unpack(bytes(buf))
                    size, num, cached, pad, name = fields[:5]
                    assert size % 4096 == 0 and size > 0, size
                    assert num == 1 and cached in (0, 1, 2, 3) and pad == 0
                    if sum(a[0] for a in fake.allocs) + size > fake.capacity:
                        raise OSError(errno.ENOMEM, "Cannot allocate memory")
                    if fake.alloc_error is not None:
                        raise fake.alloc_error
                    mfd = os.memfd_create("fake-vcsm")
                    os.ftruncate(mfd, size)
                    bus = fake.next_bus
                    fake.next_bus += size
                    fake.allocs.append((size, num, cached, name.rstrip(b"\0"), mfd, bus))
                    buf[:] = VCSM_ALLOC_STRUCT.pack(size, num, cached, 0, name, mfd, len(fake.allocs),
                                                    bus if fake.bus_answer is None
                                                    else fake.bus_answer)
                elif request == DMA_BUF_IOCTL_SYNC:
                    assert len(buf) == 8
                    fake.syncs.append((fd, struct.unpack("<Q", bytes(buf))[0]))
                else:
                    raise OSError(errno.ENOTTY, "unknown ioctl")

        return Device()


def fd_is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False
