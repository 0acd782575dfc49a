"""Modelled Raspberry Pi time of the host's share of an inference: what the ARM cores do around
the QPU launches. Nothing here was measured on a Pi by this project; each figure says what it is
derived from, and `basis` strings carry that into reports.

- CPU compute: a Cortex-A53 core (Pi 3B+) runs MobileNet v1 1.0/224 (568.7 M multiply-adds) in
  205.65 ms with ncnn on one thread (Tencent/ncnn benchmark/README.md, Pi 3B+ data of
  2023-06-23): 2.77 G multiply-adds/s. numpy on the Pi is not faster than ncnn, so this is an
  optimistic bound for a NEON fallback step.
- CPU memory traffic: no CPU-side DRAM measurement of a Pi 3 is published; its 32-bit LPDDR2 at
  450 MHz peaks at 3.6 GB/s, and a streaming copy reaches about half of a DRAM peak on such
  cores: 1.8 GB/s, counting every byte read and written.
- Launch: one execute_qpu mailbox round trip. hello_fft run with one 256-point transform per
  batch reports 44 us per launch, against 15 us per transform in large batches (a user's log,
  Qihao-He/Parallel-programming PI/data.md): about 30 us is the launch itself; 40 us is taken.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from vc4infer.graph import ops
from vc4infer.graph.ir import Graph, Node

#: multiply-adds per second of one Cortex-A53 core (ncnn, one thread, Pi 3B+)
A53_MACS_PER_SECOND = 568.7e6 / 0.20565
#: bytes per second the ARM moves to and from SDRAM (half the 3.6 GB/s LPDDR2 peak)
A53_BYTES_PER_SECOND = 1.8e9
#: seconds of one execute_qpu mailbox call beyond the QPU work it launches
LAUNCH_SECONDS = 40e-6


def _bytes(graph: Graph, tensors) -> int:
    return sum(graph.tensors[t].nbytes for t in tensors if not graph.is_constant(t))


def cpu_seconds(macs: int, nbytes: int) -> Tuple[float, str]:
    """(seconds, basis) of CPU work of `macs` multiply-adds touching `nbytes` of memory: the
    larger of its compute and its memory time."""
    compute, memory = macs / A53_MACS_PER_SECOND, nbytes / A53_BYTES_PER_SECOND
    if compute >= memory:
        return compute, f"A53 estimate: {macs / 1e6:.2f} M MACs at {A53_MACS_PER_SECOND / 1e9:.2f} G/s"
    return memory, f"A53 estimate: {nbytes / 1e6:.2f} MB at {A53_BYTES_PER_SECOND / 1e9:.1f} GB/s"


def host_step_seconds(graph: Graph, node: Node) -> Tuple[float, str]:
    """(seconds, basis) of `node` run on one ARM core of a Pi."""
    macs = ops.get(node.op).macs(graph, node) if node.op in ops.OPS else 0
    return cpu_seconds(macs, _bytes(graph, (*node.inputs, *node.outputs)))


def copy_seconds(nbytes: int, what: str) -> Tuple[float, str]:
    """(seconds, basis) of the ARM reading and writing `nbytes` once each."""
    seconds, basis = cpu_seconds(0, 2 * nbytes)
    return seconds, f"{what}: {basis}"


def preprocess_seconds(shape, dtype: str) -> Tuple[float, str]:
    """(seconds, basis) of turning a camera frame into the input tensor `shape`: the resize reads
    about one RGB byte per input element, the normalised result is written once and copied into
    the GPU arena."""
    elements = int(np.prod(shape))
    written = elements * np.dtype(dtype).itemsize
    seconds, basis = cpu_seconds(0, elements + 3 * written)
    return seconds, f"resize, normalise, copy in: {basis}"


def launch_seconds(n_launches: int) -> float:
    """Seconds the mailbox round trips of `n_launches` launches add."""
    return n_launches * LAUNCH_SECONDS
