"""NHWC full convolution with a small kernel (a network's stem: 3x3, stride 2, 3 input channels)
on the QPUs, as an SGEMM whose A is the im2col matrix, gathered by the TMU with no copy.

Row i of A is output pixel (oy, ox); column k = (dy * KW + dx) * Cin + ci is the input value under
tap (dy, dx) and channel ci: at in + (s*oy - pt + dy) * row + (s*ox - pl + dx) * pixel + 4 * ci,
i.e. the row's address plus an offset that depends on k alone. The gather variant of the SGEMM
(qpu_kernels.sgemm) requests exactly that: one row address per SIMD element, and the offset of
each column streamed with the weight panel. A tile is up to 16 output pixels of one output row,
so the row addresses step by s pixels across the elements.

Taps in the padding must read zeros: the input carries a zero halo of the convolution's pads
around it (the caller's layout; hostside's planner gives a graph input one and the host writes
it with the image), so the kernel has no edge cases and never reads outside the halo'd buffer.
"""
from __future__ import annotations

import functools
import math
from typing import List, Optional

import numpy as np

from . import sgemm
from .launch import KernelShapeError, Launch

ACTIVATIONS = sgemm.ACTIVATIONS


def _gemm_k(kh: int, kw: int, cin: int) -> int:
    return kh * kw * cin


def pack_weights(w: np.ndarray, bias: Optional[np.ndarray], pixels: int) -> np.ndarray:
    """OHWI weights (Cout, KH, KW, Cin) and bias (Cout) as gather panels for an output of
    `pixels` pixels; the column offsets are written by `build`, which knows the input layout."""
    w = np.asarray(w, np.float32)
    if w.ndim != 4:
        raise KernelShapeError(f"weights of shape {w.shape}: a convolution has OHWI weights")
    cout, kh, kw, cin = w.shape
    k = _gemm_k(kh, kw, cin)
    if k < 2:
        raise KernelShapeError(f"a {kh}x{kw}x{cin} kernel: the SGEMM needs K >= 2")
    return sgemm.pack_weights(w.reshape(cout, k).T, bias, pixels,
                              gather_depth=min(sgemm.MAX_TMU_DEPTH, k))


def output_size(size: int, k: int, pad_before: int, pad_after: int, stride: int) -> int:
    """Output length of a k-tap window along one axis."""
    return (size + pad_before + pad_after - k) // stride + 1


def build(drv, h: int, w: int, cin: int, cout: int, kh: int, kw: int, in_address: int,
          in_pixel_stride: int, in_row_stride: int, panels: np.ndarray, out_address: int,
          out_pixel_stride: int, out_row_stride: int, stride: int = 1, pads=(0, 0, 0, 0),
          act: Optional[str] = None) -> List[Launch]:
    """Launches of out = act(conv(in, W, stride, pads) + bias) for an H x W x Cin input (batch 1)
    whose zero halo of `pads` (top, left, bottom, right) is readable around it, and the packed
    weights `panels` (a Driver array from `pack_weights`; this fills in its column offsets)."""
    if act not in ACTIVATIONS:
        raise KernelShapeError(f"act={act!r}: the epilogue supports {ACTIVATIONS}")
    pt, pl, pb, pr = pads
    if min(pads) < 0 or stride < 1:
        raise KernelShapeError(f"pads {pads}, stride {stride}: give pads >= 0 and stride >= 1")
    ho, wo = output_size(h, kh, pt, pb, stride), output_size(w, kw, pl, pr, stride)
    if min(ho, wo) < 1:
        raise KernelShapeError(f"a {kh}x{kw} window over {h}x{w} with pads {pads}: empty output")
    if in_pixel_stride < 4 * cin or out_pixel_stride < 4 * cout:
        raise KernelShapeError("pixel strides shorter than the channels")
    k = _gemm_k(kh, kw, cin)
    depth = min(sgemm.MAX_TMU_DEPTH, k)
    m = ho * wo
    nt = sgemm.panel_width(m, k, cout)
    dy, dx, ci = np.unravel_index(np.arange(k), (kh, kw, cin))
    offsets = dy * in_row_stride + dx * in_pixel_stride + 4 * ci
    sgemm.set_gather_offsets(panels, k, nt, depth, offsets)
    panel_bytes = 4 * sgemm.panel_words(k, nt, depth)
    lane_step = stride * in_pixel_stride
    records = []
    for p in range(math.ceil(cout / nt)):
        for oy in range(ho):
            for ox0 in range(0, wo, sgemm.ROWS):
                a_row0 = in_address + (stride * oy - pt) * in_row_stride + \
                    (stride * ox0 - pl) * in_pixel_stride
                c_row0 = out_address + oy * out_row_stride + ox0 * out_pixel_stride
                records.append(functools.partial(
                    sgemm.tile_record, a_row0, min(sgemm.ROWS, wo - ox0),
                    panels.address + p * panel_bytes, c_row0, out_pixel_stride, p * nt, cout, nt))
    return sgemm.launches_of(drv, records, k, nt, act, False, lane_step, 0, 4,
                             sgemm.tile_sync(m, k, nt), gather=True)
