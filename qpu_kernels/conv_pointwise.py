"""NHWC 1x1 convolution, stride 1, on the QPUs: one SGEMM (qpu_kernels.sgemm).

The input (batch x H x W x Cin) is the matrix A of batch*H*W rows (pixels) by Cin; the OHWI
weights (Cout x 1 x 1 x Cin) are B transposed; bias, relu/relu6 and an optional residual add
(out += R, after the activation: MobileNet v2's projection has no activation) are fused into the
SGEMM's epilogue. Pixel strides may exceed the channel count (a tensor that is a channel slice of
a wider one).
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from . import sgemm
from .launch import KernelShapeError, Launch


def _as_matrix(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, dtype=np.float32)
    if w.ndim == 4:
        if w.shape[1:3] != (1, 1):
            raise KernelShapeError(f"weights of shape {w.shape}: a pointwise conv has OHWI weights "
                                   "(Cout, 1, 1, Cin)")
        w = w.reshape(w.shape[0], w.shape[3])
    if w.ndim != 2:
        raise KernelShapeError(f"weights of shape {w.shape}: give (Cout, 1, 1, Cin) or (Cout, Cin)")
    return w


def pack_weights(w: np.ndarray, bias: Optional[np.ndarray], pixels: int) -> np.ndarray:
    """OHWI weights (Cout, 1, 1, Cin) or (Cout, Cin) and bias (Cout) in the kernel's layout, for
    an output of `pixels` = batch*H*W pixels (it picks the SGEMM panel width)."""
    return sgemm.pack_weights(_as_matrix(w).T, bias, pixels)


def build(drv, pixels: int, cin: int, cout: int, in_address: int, weights_address: int,
          out_address: int, act: Optional[str] = None, residual_address: Optional[int] = None,
          in_pixel_stride: Optional[int] = None, out_pixel_stride: Optional[int] = None,
          residual_pixel_stride: Optional[int] = None) -> List[Launch]:
    """Launches of out[p, :] = act(in[p, :] @ W.T + bias) (+ residual[p, :]) for p < pixels
    (= batch*H*W). Addresses are bus addresses; pixel strides in bytes default to dense NHWC."""
    in_stride = 4 * cin if in_pixel_stride is None else in_pixel_stride
    out_stride = 4 * cout if out_pixel_stride is None else out_pixel_stride
    res_stride = None
    if residual_address is not None:
        res_stride = 4 * cout if residual_pixel_stride is None else residual_pixel_stride
    return sgemm.build(drv, pixels, cin, cout, in_address, in_stride, weights_address, out_address,
                       out_stride, act, residual_address, res_stride)
