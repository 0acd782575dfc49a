"""A tiny harness for the emulator's own tests: EmuBackend directly (no Driver), programs from the
vc4infer.qpu DSL or raw words, uniforms given as lists whose Allocation items become bus addresses."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hostside.driver.backend import Allocation
from hostside.driver.emu import EmuBackend
from vc4infer.qpu import assemble


#: options every Rig starts from; `modes` below switches them per test
DEFAULTS = {"memory_bytes": 8 << 20, "strict": True}


class Rig:
    """One EmuBackend plus helpers to place data, programs and uniforms."""

    def __init__(self, **options):
        for key, value in DEFAULTS.items():
            options.setdefault(key, value)
        self.backend = EmuBackend(**options)

    def buffer(self, data, label: str = "data") -> Allocation:
        """A buffer holding `data` (an array), or `data` zero bytes when it is an int."""
        if isinstance(data, int):
            alloc = self.backend.alloc(data, 4096, label)
            alloc.buffer[:] = 0
            return alloc
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        alloc = self.backend.alloc(len(raw), 4096, label)
        alloc.buffer[:] = raw
        return alloc

    def program(self, kernel, *args, label: str = "code") -> Allocation:
        """A code buffer from a @qpu kernel (assembled with `args`) or from raw 64-bit words."""
        if isinstance(kernel, (list, tuple)):
            code = np.array(kernel, dtype=np.uint64).tobytes()
        else:
            code = assemble(kernel, *args)
        return self.buffer(np.frombuffer(code, dtype=np.uint8), label)

    def run(self, program: Allocation, uniforms: Sequence[Sequence], timeout_s: float = 60.0):
        """Run one instance per uniforms list (all with `program`); returns LaunchStats."""
        control = []
        for i, values in enumerate(uniforms):
            words = [v.bus_address if isinstance(v, Allocation) else int(v) & 0xFFFFFFFF
                     for v in values] or [0]
            u = self.buffer(np.array(words, dtype=np.uint32), f"uniforms{i}")
            control.append((u.bus_address, program.bus_address))
        return self.backend.execute(control, timeout_s)


def both_paths(request, monkeypatch):
    """Body of a parametrised fixture: run the test in strict mode (every instruction through the
    general loop) and in the default mode (plain ALU instructions through the fast path)."""
    monkeypatch.setitem(DEFAULTS, "strict", request.param == "strict")


def words(alloc: Allocation, dtype=np.uint32) -> np.ndarray:
    """The buffer's current contents as `dtype`."""
    return np.array(alloc.buffer).view(dtype)


from vc4infer.qpu import qpu  # noqa: E402

IN_ROW = 48


@qpu
def io_kernel(asm, body, n_in, n_out, *args):
    """uniforms [in, out]: DMA-load n_in rows to VPM row 48 and set up their VPM read, set up a
    horizontal 32-bit VPM write at row 0, run body, DMA-store n_out rows from row 0."""
    if n_in:
        setup_dma_load(nrows=n_in, Y=IN_ROW)
        start_dma_load(uniform)
        wait_dma_load()
        setup_vpm_read(nrows=n_in, Y=IN_ROW)
    else:
        mov(null, uniform)
    setup_vpm_write()
    body(asm, *args)
    setup_dma_store(nrows=n_out)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def run_body(body, inputs, n_out: int, *args, dtype=np.uint32, **options):
    """Run `body` in io_kernel on one QPU with `inputs` (rows of 16 32-bit words, or None);
    return the n_out result rows as `dtype`."""
    rig = Rig(**options)
    if inputs is None:
        n_in, src = 0, rig.buffer(64, "in")
    else:
        x = np.ascontiguousarray(inputs).view(np.uint32).reshape(-1, 16)
        n_in, src = len(x), rig.buffer(x, "in")
    out = rig.buffer(64 * n_out, "out")
    rig.run(rig.program(io_kernel, body, n_in, n_out, *args), [[src, out]])
    return words(out, dtype).reshape(n_out, -1)
