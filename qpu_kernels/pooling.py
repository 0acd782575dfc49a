"""NHWC global average pooling on the QPUs, as an SGEMM that reads the input transposed.

out[c] = sum_p x[p, c] / (H*W) is C = A @ B with A[c, p] = x[p, c] (M = C rows, K = H*W), read
by the SGEMM kernel with a row step of 4 bytes (one channel) and a column step of one pixel, and
B the constant (H*W) x 1 column of 1 / (H*W), packed once like any weights. SIMD element e then
reads channel c0 + e of one pixel: 16 neighbouring floats, one cache line per TMU request.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from . import sgemm
from .launch import KernelShapeError, Launch


def pack_weights(pixels: int, channels: int) -> np.ndarray:
    """The constant operand of a global average pool over `pixels` (= H*W) pixels of `channels`
    channels, in the SGEMM's packed layout (upload once)."""
    if pixels < 2:
        raise KernelShapeError(f"a global average pool over {pixels} pixel(s): the kernel needs at "
                               "least 2 (one pixel is a copy)")
    column = np.full((pixels, 1), 1.0 / pixels, dtype=np.float32)
    return sgemm.pack_weights(column, None, channels)


def build_global_average(drv, pixels: int, channels: int, in_address: int, weights_address: int,
                         out_address: int, in_pixel_stride: Optional[int] = None) -> List[Launch]:
    """Launches of out[c] = mean over the `pixels` pixels of in[p, c] (batch 1 NHWC input at
    `in_address`, pixel stride in bytes defaulting to 4 * channels; `channels` float32 results at
    `out_address`; weights from `pack_weights(pixels, channels)`)."""
    stride = 4 * channels if in_pixel_stride is None else in_pixel_stride
    if stride < 4 * channels:
        raise KernelShapeError(f"pixel stride {stride} is shorter than {channels} channels")
    # A is channels x pixels, read transposed. With one channel A has one row whose stride is
    # never used; give sgemm the contiguous row stride it checks for.
    a_row_stride = 4 * pixels if channels == 1 else 4
    return sgemm.build(drv, channels, pixels, 1, in_address, a_row_stride, weights_address,
                       out_address, 4, a_column_step=stride)
