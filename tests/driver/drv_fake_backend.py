"""A small Backend for the Driver front-end's tests: one bytearray of "GPU memory" at bus address
0xC0000000 upwards, bump allocation, and an execute that hands the control list to a Python callable
standing in for the QPU programs."""
import time

import numpy as np

from hostside.driver.backend import Allocation, Backend, LaunchStats
from hostside.driver.errors import LaunchTimeoutError

BUS_BASE = 0xC0000000


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, memory_bytes=4 << 20, max_launch_seconds=None, run=None):
        self.memory = np.zeros(memory_bytes, dtype=np.uint8)
        self.next = 0
        self.live = {}          # bus address -> (label, nbytes, align)
        self.freed = []         # labels
        self.executes = []      # (control, timeout_s)
        self.synced_gpu = []
        self.synced_cpu = []
        self.max_launch_seconds = max_launch_seconds
        self.run = run          # run(backend, control) -> None; may raise
        self.closed = False

    def alloc(self, nbytes, align=4096, label=""):
        assert not self.closed
        start = (self.next + align - 1) // align * align
        assert start + nbytes <= self.memory.size, "fake GPU memory exhausted"
        self.next = start + nbytes
        self.live[BUS_BASE + start] = (label, nbytes, align)
        return Allocation(BUS_BASE + start, nbytes, self.memory[start:start + nbytes], handle=label)

    def free(self, allocation):
        label, _, _ = self.live.pop(allocation.bus_address)
        self.freed.append(label)

    def execute(self, control, timeout_s):
        self.executes.append((list(control), timeout_s))
        start = time.perf_counter()
        if self.run is not None:
            self.run(self, control)
        return LaunchStats(backend="fake", n_threads=len(control),
                           wall_seconds=time.perf_counter() - start)

    def sync_for_gpu(self, allocation):
        self.synced_gpu.append(allocation.bus_address)

    def sync_for_cpu(self, allocation):
        self.synced_cpu.append(allocation.bus_address)

    def close(self):
        self.closed = True
        self.live.clear()

    # helpers for tests
    def words(self, bus, n):
        off = bus - BUS_BASE
        return self.memory[off:off + 4 * n].view(np.uint32).copy()

    def labels(self):
        return [label for label, _, _ in self.live.values()]


def timeout_run(backend, control):
    raise LaunchTimeoutError("the fake QPUs did not end within 0.5 s")
