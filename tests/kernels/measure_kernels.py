"""Modelled throughput of the QPU kernels on the emulator (not a test: run it).

    python tests/kernels/measure_kernels.py [--clock 250e6]

Prints, per kernel and shape, the emulator's modelled time (labelled "modelled") at the chosen V3D
clock, the GFLOPS that implies (2 flops per multiply-add), for depthwise the output bandwidth,
the largest error against numpy (sgemm), and the emulator's wall time.
"""
import argparse
import time

import numpy as np

from hostside.driver import Driver
from qpu_kernels import conv_depthwise, sgemm


def run(drv, launches):
    start = time.perf_counter()
    cycles = 0
    seconds = 0.0
    for lc in launches:
        lc.run(drv)
        seconds += drv.last_stats.modelled_seconds
        cycles += max(drv.last_stats.cycles)
    return seconds, cycles, time.perf_counter() - start


def measure_sgemm(drv, m, k, n, act, a_pad=0):
    """`a_pad`: extra floats per row of A (a row stride that is not a multiple of 1 KiB)."""
    rng = np.random.default_rng(0)
    a = drv.copy(rng.standard_normal((m, k + a_pad)).astype(np.float32))[:, :k]
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    w = drv.copy(sgemm.pack_weights(b, bias, m))
    c = drv.alloc((m, n), "float32")
    launches = sgemm.build(drv, m, k, n, a.address, a.strides[0], w.address, c.address, c.strides[0],
                           act)
    seconds, cycles, wall = run(drv, launches)
    ref = np.matmul(np.array(a, np.float64), b) + bias
    ref = np.clip(ref, 0, 6) if act == "relu6" else ref
    err = np.max(np.abs(np.array(c) - ref))
    flop = 2.0 * m * n * k
    print(f"sgemm M={m} K={k} N={n} {act} A stride {a.strides[0]} B: {len(launches)} launch(es), "
          f"modelled {seconds * 1e3:.3f} ms "
          f"= {flop / seconds / 1e9:.2f} GFLOPS (modelled), max |err| {err:.2e}, emulator wall {wall:.1f} s")


def measure_depthwise(drv, h, c, stride):
    rng = np.random.default_rng(0)
    pads = (1, 1, 1, 1) if stride == 1 else (0, 0, 1, 1)
    x = drv.copy(rng.standard_normal((h, h, c)).astype(np.float32))
    w = rng.standard_normal((c, 3, 3, 1)).astype(np.float32)
    wg = drv.copy(conv_depthwise.pack_weights(w, None))
    ho = conv_depthwise.output_size(h, pads[0], pads[2], stride)
    out = drv.alloc((ho, ho, c), "float32")
    launches = conv_depthwise.build(drv, h, h, c, x.address, wg.address, out.address, stride, pads,
                                    "relu6")
    seconds, cycles, wall = run(drv, launches)
    flop = 2.0 * 9 * ho * ho * c
    out_bytes = 4 * ho * ho * c
    print(f"depthwise {h}x{h}x{c} stride {stride}: {len(launches)} launch(es), "
          f"modelled {seconds * 1e3:.3f} ms "
          f"= {flop / seconds / 1e9:.2f} GFLOPS (modelled), output {out_bytes / seconds / 1e9:.2f} GB/s "
          f"(modelled), emulator wall {wall:.1f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clock", type=float, default=250e6)
    args = parser.parse_args()
    with Driver(backend="emu", clock_hz=args.clock, data_area_size=96 << 20) as drv:
        print(f"V3D clock {args.clock / 1e6:.0f} MHz")
        measure_sgemm(drv, 3136, 64, 128, "relu6")
        measure_sgemm(drv, 196, 512, 512, "relu6")
        measure_sgemm(drv, 196, 512, 512, "relu6", a_pad=16)
        measure_sgemm(drv, 12544, 16, 96, "relu6")
        measure_sgemm(drv, 1, 1280, 1000, None)
        measure_depthwise(drv, 56, 144, 1)
        measure_depthwise(drv, 112, 32, 1)


if __name__ == "__main__":
    main()
