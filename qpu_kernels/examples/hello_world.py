"""Hello world of QPU programming: add two vectors of 16 floats on one QPU.

The two inputs go into the VPM by one DMA load, the QPU reads them, adds, writes the sum back to
the VPM, and one DMA store puts it in memory. Run: `python -m qpu_kernels.examples.hello_world`.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
from __future__ import annotations

import numpy as np

from vc4infer.qpu import qpu


@qpu
def hello_world(asm):
    """Uniforms: address of the two input rows, address of the output row."""
    setup_dma_load(nrows=2)            # 2 rows of 16 words from memory to VPM rows 0-1
    start_dma_load(uniform)
    wait_dma_load()
    setup_vpm_read(nrows=2)
    setup_vpm_write()
    mov(r0, vpm)                       # a
    mov(r1, vpm)                       # b
    fadd(vpm, r0, r1)                  # a + b into VPM row 0
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def add16(drv, a, b) -> np.ndarray:
    """a + b for two vectors of 16 floats, computed by one QPU of `drv`."""
    inputs = drv.copy(np.stack([np.asarray(a, np.float32), np.asarray(b, np.float32)]))
    out = drv.alloc(16, "float32")
    drv.execute(n_threads=1, program=drv.program(hello_world), uniforms=[inputs.address, out.address])
    return np.array(out)


def main() -> None:
    from hostside.driver import Driver

    rng = np.random.default_rng()
    a = rng.random(16).astype(np.float32)
    b = rng.random(16).astype(np.float32)
    with Driver() as drv:
        c = add16(drv, a, b)
        print(f"backend: {drv.backend_name}")
    print("a     ", a)
    print("b     ", b)
    print("a + b ", c)
    print("max |error|", float(np.max(np.abs(c - (a + b)))))


if __name__ == "__main__":
    main()
