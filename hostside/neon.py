"""The NEON (CPU) runtime: numpy float32 numerics of every IR op, the reference that every QPU
kernel is validated against and the fallback for ops the QPUs do not run.

Entry points:
- `run_node(graph, node, inputs)`: one node, given one array per node input (constants
  included), returns the list of output arrays. A node with quantized tensors goes to
  `hostside.neon_quant.run_node` (TFLite integer semantics).
- `NeonRunner(graph).run(feeds, keep=False)`: the whole graph in internal layout; `keep=True`
  returns every intermediate tensor as well (for per-layer validation).

Convolutions: 1x1 as one BLAS matmul, other kernels through im2col (one strided view, one copy,
one matmul per row block), depthwise as one einsum over a strided view of all kernel taps. No
Python loop runs over pixels; loops run over row blocks or groups. In a fused run a 1x1 conv
whose only consumer is a padding conv (MobileNet's expand -> depthwise) writes its output into
a zero-bordered buffer, so that the consumer copies nothing.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

import numpy as np

from vc4infer.errors import GraphError
from vc4infer.graph.ir import Graph, Node

F32 = np.float32


# -- buffers -------------------------------------------------------------------------------

class BufferPool:
    """Arrays handed back by a runner for reuse in its next kernels and runs, by (shape, dtype).

    Fresh large numpy arrays cost page faults on first touch (several ms per MobileNet
    inference); a runner that reuses its own buffers avoids that. Arrays from the pool hold
    stale data: kernels overwrite every element."""

    def __init__(self):
        self._free: dict = {}

    def get(self, shape: tuple, dtype=F32) -> np.ndarray:
        stack = self._free.get((tuple(shape), np.dtype(dtype).str))
        return stack.pop() if stack else np.empty(shape, dtype)

    def put(self, arr: np.ndarray) -> None:
        self._free.setdefault((arr.shape, arr.dtype.str), []).append(arr)


_local = threading.local()


def _empty(shape: tuple, dtype=F32) -> np.ndarray:
    """An uninitialised array, from the current runner's pool when a runner is running."""
    pool = getattr(_local, "pool", None)
    return pool.get(shape, dtype) if pool is not None else np.empty(shape, dtype)


def _recycle(*arrays) -> None:
    """Hand scratch arrays back to the current runner's pool (no-op outside a runner)."""
    pool = getattr(_local, "pool", None)
    if pool is not None:
        for a in arrays:
            if a is not None and a.base is None:
                pool.put(a)


# -- activations ---------------------------------------------------------------------------

def _activate(y: np.ndarray, activation: Optional[str], out: Optional[np.ndarray] = None
              ) -> np.ndarray:
    """Fused activation of y, in place or into `out` (a copy of y when there is none)."""
    if out is None:
        out = y
    if activation == "relu":
        np.maximum(y, F32(0), out=out)
    elif activation == "relu6":
        np.clip(y, F32(0), F32(6), out=out)
    elif out is not y:
        np.copyto(out, y)
    return out


def _bias_act(y: np.ndarray, b: Optional[np.ndarray], activation: Optional[str],
              out: Optional[np.ndarray] = None) -> np.ndarray:
    """y + b, then the fused activation, in place or into `out`."""
    if b is not None:
        y += b.astype(F32, copy=False)
    return _activate(y, activation, out)


# -- convolution ---------------------------------------------------------------------------

# Depthwise work goes in row blocks of about this many float32 output elements: einsum has a
# high fixed cost per call, so blocks are large (measured best on x86-64 for MobileNet shapes).
CHUNK_ELEMENTS = 1 << 20
# GEMM convs that copy per block (im2col, or a 1x1 conv writing a padded output) run in blocks
# of output rows of about this many elements (copy, one BLAS call, bias and activation per
# block): small enough that the epilogue finds the block in cache, large enough for BLAS to run
# at speed (measured on x86-64 for MobileNets). Other 1x1 convs are one matmul.
GEMM_CHUNK_ELEMENTS = 1 << 18


def _fill_border(out: np.ndarray, pads: tuple, value: float = 0.0) -> None:
    """Set the (top, left, bottom, right) borders of NHWC `out` to `value`, in place."""
    pt, pl, pb, pr = pads
    hp, wp = out.shape[1:3]
    out[:, :pt] = value
    out[:, hp - pb:] = value
    out[:, pt:hp - pb, :pl] = value
    out[:, pt:hp - pb, wp - pr:] = value


def _pad_nhwc(x: np.ndarray, pads: tuple, value: float = 0.0) -> np.ndarray:
    """x with (top, left, bottom, right) borders of `value` (x itself when pads are zero)."""
    pt, pl, pb, pr = pads
    if not any(pads):
        return x
    n, h, w, c = x.shape
    out = _empty((n, h + pt + pb, w + pl + pr, c), x.dtype)
    _fill_border(out, pads, value)
    out[:, pt:pt + h, pl:pl + w, :] = x
    return out


def _taps(xp: np.ndarray, kh: int, kw: int, strides, dilations, ho: int, wo: int):
    """Yield (i, j, view) for every kernel tap: view[n, y, x, c] = xp[n, y*sh + i*dh, x*sw + j*dw, c]."""
    sh, sw = strides
    dh, dw = dilations
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            yield i, j, xp[:, y0:y0 + sh * (ho - 1) + 1:sh, x0:x0 + sw * (wo - 1) + 1:sw, :]


def _patches(xp: np.ndarray, kh: int, kw: int, strides, dilations, ho: int, wo: int) -> np.ndarray:
    """Read-only view of the im2col patches, (N, Ho, Wo, KH, KW*C) when the kernel taps of a row
    are adjacent pixels (one contiguous run of KW*C floats), else (N, Ho, Wo, KH, KW, C); either
    way the columns are in OHWI order. No copy."""
    n, _, _, c = xp.shape
    sh, sw = strides
    dh, dw = dilations
    s = xp.strides
    if dw == 1 and xp.flags.c_contiguous:
        shape = (n, ho, wo, kh, kw * c)
        strides_ = (s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[3])
    else:
        shape = (n, ho, wo, kh, kw, c)
        strides_ = (s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3])
    return np.lib.stride_tricks.as_strided(xp, shape=shape, strides=strides_, writeable=False)


def _rows_per_block(row_elements: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, row_elements))


def _conv_gemm(xp: np.ndarray, w: np.ndarray, b, strides, dilations, ho: int, wo: int,
               activation, cache: Optional[dict] = None, out_pads=None) -> np.ndarray:
    """groups == 1: im2col (a 1x1 kernel needs none) and one BLAS matmul per block of output
    rows, whose bias and activation are applied while it is in cache. With `out_pads`
    (top, left, bottom, right) the output comes zero-padded by those borders."""
    n = xp.shape[0]
    o, kh, kw, c = w.shape
    k_len = kh * kw * c
    wmat = w.reshape(o, k_len).T
    out_pads = out_pads or (0, 0, 0, 0)
    pt, pl, pb, pr = out_pads
    y = _empty((n, ho + pt + pb, wo + pl + pr, o))
    if any(out_pads):
        _fill_border(y, out_pads)
    inner = y[:, pt:pt + ho, pl:pl + wo]
    direct = kh == kw == 1 and strides == (1, 1) and xp.flags.c_contiguous
    rows = max(1, GEMM_CHUNK_ELEMENTS // (wo * max(o, k_len)))
    if direct and pl == pr == 0:
        rows = ho
    # a block is written straight into y when its rows are contiguous there, else via tmp
    tmp = None if pl == pr == 0 else _empty((min(rows, ho) * wo, o))
    patches = cols = a1 = None
    if direct:
        # the input already is the patch matrix
        a = xp.reshape(n * ho * wo, c)
        if b is not None and o > c:
            # expanding 1x1 conv: the bias rides in the matmul as the weight row of an extra
            # all-ones input column, which is cheaper than a pass over the larger output
            w1 = None if cache is None else cache.get("gemm_bias_row")
            if w1 is None:
                w1 = np.concatenate([wmat, b.astype(F32, copy=False)[None, :]], axis=0)
                if cache is not None:
                    cache["gemm_bias_row"] = w1
            a1 = _empty((n * ho * wo, c + 1))
            a1[:, :c] = a
            a1[:, c] = 1
            a, wmat, b = a1, w1, None
    else:
        patches = _patches(xp, kh, kw, strides, dilations, ho, wo)
        cols = _empty((min(rows, ho) * wo, k_len))
    for k in range(n):
        for r0 in range(0, ho, rows):
            r1 = min(ho, r0 + rows)
            if patches is None:
                block = a[(k * ho + r0) * wo:(k * ho + r1) * wo]
            else:
                block = cols[:(r1 - r0) * wo]
                np.copyto(block.reshape(patches[k, r0:r1].shape), patches[k, r0:r1])
            dst = inner[k, r0:r1]
            out = dst.reshape((r1 - r0) * wo, o) if tmp is None else tmp[:(r1 - r0) * wo]
            np.matmul(block, wmat, out=out)
            if tmp is None:
                _bias_act(out, b, activation)
            else:  # the activation pass copies the block into place
                _bias_act(out.reshape(dst.shape), b, activation, dst)
    _recycle(tmp, cols, a1)
    return y


def _depthwise_plan(w: np.ndarray, b, sw: int, wo: int) -> tuple:
    """What depthwise needs from the constant weights for an output row of `wo` pixels: the
    weights as (KH, KW, Wo, O) tiled along the row, and the bias tiled likewise (Wo, O); with
    stride sw == 1 the last two axes are merged into one of Wo*O (see `_depthwise`)."""
    o, kh, kw, _ = w.shape
    wrow = np.ascontiguousarray(np.broadcast_to(w[:, :, :, 0].transpose(1, 2, 0)[:, :, None, :],
                                                (kh, kw, wo, o)))
    brow = None if b is None else np.tile(b.astype(F32, copy=False), (wo, 1))
    if sw == 1:
        wrow = wrow.reshape(kh, kw, wo * o)
        brow = None if brow is None else brow.reshape(wo * o)
    return wrow, brow


def _depthwise(x: np.ndarray, pads: tuple, w: np.ndarray, b, multiplier: int, strides,
               dilations, ho: int, wo: int, activation, plan: Optional[tuple] = None) -> np.ndarray:
    """Depthwise conv (output channel k reads input channel k // multiplier).

    All the kernel taps of a block of output rows are one strided view of the padded input,
    (rows, KH, KW, Wo, C), that one `einsum` multiplies by the tap weights (tiled along the
    row) and sums, with no temporaries and no copy of the input besides the padding. With
    horizontal stride 1 the pixels of a row are adjacent, so (Wo, C) is one contiguous run of
    Wo*C floats and einsum's inner loop runs over all of it. Bias and activation are applied per
    block of rows while it is in cache. `plan` is `_depthwise_plan(...)` when the caller keeps
    it between calls."""
    if multiplier > 1:
        x = np.repeat(x, multiplier, axis=3)
    (sh, sw), (dh, dw) = strides, dilations
    n, o = x.shape[0], w.shape[0]
    kh, kw = w.shape[1:3]
    wrow, brow = plan if plan is not None else _depthwise_plan(w, b, sw, wo)
    xp = _pad_nhwc(x, pads)
    if not xp.flags.c_contiguous:
        xp = np.ascontiguousarray(xp)
    s_n, s_row, s_px, s_ch = xp.strides
    y = _empty((n, ho, wo, o))
    if sw == 1:
        row_shape, row_strides = (wo * o,), (s_ch,)
    else:
        row_shape, row_strides = (wo, o), (s_px * sw, s_ch)
    yr = y.reshape((n, ho) + row_shape)
    subscripts = "rijk,ijk->rk" if sw == 1 else "rijxc,ijxc->rxc"
    rows = _rows_per_block(wo * o)
    for k in range(n):
        for r0 in range(0, ho, rows):
            r1 = min(ho, r0 + rows)
            view = np.lib.stride_tricks.as_strided(
                xp[k, r0 * sh:], shape=(r1 - r0, kh, kw) + row_shape,
                strides=(s_row * sh, s_row * dh, s_px * dw) + row_strides, writeable=False)
            acc = yr[k, r0:r1]
            np.einsum(subscripts, view, wrow, out=acc)
            _bias_act(acc, brow, activation)
    if xp is not x:
        _recycle(xp)
    return y


def conv2d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], strides=(1, 1),
           dilations=(1, 1), pads=(0, 0, 0, 0), groups: int = 1,
           activation: Optional[str] = None, cache: Optional[dict] = None,
           out_pads: Optional[tuple] = None) -> np.ndarray:
    """NHWC convolution with OHWI weights (w is (O, KH, KW, C/groups)), optional bias and fused
    activation. `cache`: a dict the caller keeps per node, where data derived from the
    constant weights is kept between calls. `out_pads` (top, left, bottom, right): return the
    output with zero borders of these sizes, for a consumer conv with these pads, which then
    runs with pads 0 and copies nothing (1x1 convs write their output in place)."""
    x = x.astype(F32, copy=False)
    w = w.astype(F32, copy=False)
    n, h, wd, c = x.shape
    o, kh, kw, ig = w.shape
    (sh, sw), (dh, dw) = strides, dilations
    pt, pl, pb, pr = pads
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if ig == 1 and groups == c and c > 1:
        plan = None
        if cache is not None:
            plan = cache.get("depthwise")
            if plan is None:
                plan = cache["depthwise"] = _depthwise_plan(w, b, sw, wo)
        y = _depthwise(x, pads, w, b, o // c, strides, dilations, ho, wo, activation, plan)
    elif groups == 1:
        xp = _pad_nhwc(x, pads)
        y = _conv_gemm(xp, w, b, strides, dilations, ho, wo, activation, cache, out_pads)
        if xp is not x:
            _recycle(xp)
        return y
    else:
        xp = _pad_nhwc(x, pads)
        og = o // groups
        y = np.empty((n, ho, wo, o), F32)
        for g in range(groups):
            bg = None if b is None else b[g * og:(g + 1) * og]
            y[..., g * og:(g + 1) * og] = _conv_gemm(
                np.ascontiguousarray(xp[..., g * ig:(g + 1) * ig]), w[g * og:(g + 1) * og], bg,
                strides, dilations, ho, wo, activation)
    if out_pads is None or not any(out_pads):
        return y
    yp = _pad_nhwc(y, out_pads)
    _recycle(y)
    return yp


# -- dense ---------------------------------------------------------------------------------

def fully_connected(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
                    activation: Optional[str] = None) -> np.ndarray:
    """x (N, K) @ w.T for w (O, K), plus bias, then the fused activation."""
    y = x.astype(F32, copy=False) @ w.astype(F32, copy=False).T
    return _bias_act(y, b, activation)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy matmul semantics in float32."""
    return np.matmul(a.astype(F32, copy=False), b.astype(F32, copy=False))


def _eltwise(fn: Callable) -> Callable:
    def run(a, b, activation=None):
        a, b = a.astype(F32, copy=False), b.astype(F32, copy=False)
        y = fn(a, b, out=_empty(np.broadcast_shapes(a.shape, b.shape)))
        return _activate(y, activation)
    return run


def batch_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray,
               var: np.ndarray, epsilon: float = 1e-5) -> np.ndarray:
    """Inference batch norm over the last (channel) axis."""
    scale = (gamma.astype(F32) / np.sqrt(var.astype(F32) + F32(epsilon))).astype(F32)
    y = x.astype(F32) - mean.astype(F32)
    y *= scale
    y += beta.astype(F32)
    return y


# -- pooling and reductions ----------------------------------------------------------------

def _pool_out(x, kernel, strides, pads):
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = kernel, strides, pads
    return ((x.shape[1] + pt + pb - kh) // sh + 1, (x.shape[2] + pl + pr - kw) // sw + 1)


def avg_pool2d(x: np.ndarray, kernel: tuple, strides: tuple = (1, 1), pads: tuple = (0, 0, 0, 0),
               count_include_pad: bool = False) -> np.ndarray:
    """NHWC average pooling; without count_include_pad a window is divided by the number of
    its pixels inside the image."""
    x = x.astype(F32, copy=False)
    ho, wo = _pool_out(x, kernel, strides, pads)
    kh, kw = kernel
    xp = _pad_nhwc(x, pads)
    y = np.zeros((x.shape[0], ho, wo, x.shape[3]), F32)
    for _, _, view in _taps(xp, kh, kw, strides, (1, 1), ho, wo):
        y += view
    if count_include_pad or not any(pads):
        y *= F32(1.0 / (kh * kw))
        return y
    ones = _pad_nhwc(np.ones((1, x.shape[1], x.shape[2], 1), F32), pads)
    count = np.zeros((1, ho, wo, 1), F32)
    for _, _, view in _taps(ones, kh, kw, strides, (1, 1), ho, wo):
        count += view
    y /= count
    return y


def max_pool2d(x: np.ndarray, kernel: tuple, strides: tuple = (1, 1),
               pads: tuple = (0, 0, 0, 0)) -> np.ndarray:
    """NHWC max pooling; padding is -inf, so it never wins."""
    x = x.astype(F32, copy=False)
    ho, wo = _pool_out(x, kernel, strides, pads)
    xp = _pad_nhwc(x, pads, value=-np.inf)
    y = None
    for _, _, view in _taps(xp, kernel[0], kernel[1], strides, (1, 1), ho, wo):
        y = view.copy() if y is None else np.maximum(y, view, out=y)
    return y


def global_avg_pool(x: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> (N, 1, 1, C) mean over H and W."""
    return x.astype(F32, copy=False).mean(axis=(1, 2), keepdims=True, dtype=F32)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum, along `axis`."""
    x = x.astype(F32, copy=False)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _leaky_relu(x: np.ndarray, alpha) -> np.ndarray:
    return np.where(x >= 0, x, x * alpha).astype(F32, copy=False)


def _hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    y = x * F32(alpha)
    y += F32(beta)
    return np.clip(y, F32(0), F32(1), out=y)


# -- dispatch ------------------------------------------------------------------------------

def _opt(inputs, i):
    return inputs[i] if len(inputs) > i else None


_add, _sub, _mul, _div = (_eltwise(np.add), _eltwise(np.subtract), _eltwise(np.multiply),
                          _eltwise(np.divide))

# op -> f(inputs, attrs) -> single output array
KERNELS: dict[str, Callable] = {
    "conv2d": lambda i, a: conv2d(i[0], i[1], _opt(i, 2), a["strides"], a["dilations"], a["pads"],
                                  a["groups"], a["activation"]),
    "fully_connected": lambda i, a: fully_connected(i[0], i[1], _opt(i, 2), a["activation"]),
    "matmul": lambda i, a: matmul(i[0], i[1]),
    "add": lambda i, a: _add(i[0], i[1], a["activation"]),
    "sub": lambda i, a: _sub(i[0], i[1], a["activation"]),
    "mul": lambda i, a: _mul(i[0], i[1], a["activation"]),
    "div": lambda i, a: _div(i[0], i[1], a["activation"]),
    "relu": lambda i, a: np.maximum(i[0].astype(F32, copy=False), F32(0)),
    "relu6": lambda i, a: np.clip(i[0].astype(F32, copy=False), F32(0), F32(6)),
    "clip": lambda i, a: np.clip(i[0].astype(F32, copy=False), F32(a["min"]), F32(a["max"])),
    "sigmoid": lambda i, a: (F32(1) / (F32(1) + np.exp(-i[0].astype(F32, copy=False)))),
    "tanh": lambda i, a: np.tanh(i[0].astype(F32, copy=False)),
    "leaky_relu": lambda i, a: _leaky_relu(i[0].astype(F32, copy=False), F32(a["alpha"])),
    "hard_sigmoid": lambda i, a: _hard_sigmoid(i[0].astype(F32, copy=False), a["alpha"], a["beta"]),
    "hard_swish": lambda i, a: i[0] * _hard_sigmoid(i[0].astype(F32, copy=False), 1 / 6, 0.5),
    "batch_norm": lambda i, a: batch_norm(*i, epsilon=a["epsilon"]),
    "pad": lambda i, a: np.pad(i[0], a["pads"], mode="constant",
                               constant_values=np.asarray(a["value"], i[0].dtype)),
    "avg_pool2d": lambda i, a: avg_pool2d(i[0], a["kernel"], a["strides"], a["pads"],
                                          a["count_include_pad"]),
    "max_pool2d": lambda i, a: max_pool2d(i[0], a["kernel"], a["strides"], a["pads"]),
    "global_avg_pool": lambda i, a: global_avg_pool(i[0]),
    "mean": lambda i, a: i[0].astype(F32, copy=False).mean(axis=a["axes"], keepdims=a["keepdims"],
                                                         dtype=F32),
    "reshape": lambda i, a: i[0].reshape(a["shape"]),
    "flatten": lambda i, a: i[0].reshape(i[0].shape[:a["axis"]] + (-1,)) if a["axis"] > 0
    else i[0].reshape(1, -1),
    "squeeze": lambda i, a: np.squeeze(i[0], axis=a["axes"]),
    "unsqueeze": lambda i, a: np.expand_dims(i[0], axis=a["axes"]),
    "transpose": lambda i, a: np.ascontiguousarray(i[0].transpose(a["perm"])),
    "concat": lambda i, a: np.concatenate(i, axis=a["axis"]),
    "softmax": lambda i, a: softmax(i[0], a["axis"]),
}


def run_node(graph: Graph, node: Node, inputs: list) -> list:
    """Run one node on the CPU. `inputs` holds one array per entry of `node.inputs` (internal
    layout, constants included); returns one array per output."""
    if node.op == "conv2d" and len(inputs) > 3:
        # The 4-input conv2d is the scheduler's fused residual form; its meaning (conv, then add)
        # is composed from these kernels by hostside.passes.run_node. Never drop the residual.
        raise GraphError(f"node {node.name!r}: conv2d with a fused residual input runs through "
                         f"hostside.passes.run_node, not hostside.neon.run_node")
    if graph.node_quantized(node):
        from hostside import neon_quant  # integer semantics live with the TFLite importer's work
        return list(neon_quant.run_node(graph, node, inputs))
    kernel = KERNELS.get(node.op)
    if kernel is None:
        raise GraphError(f"node {node.name!r}: op {node.op!r} has no float kernel in hostside.neon "
                         f"(it needs quantized tensors); float ops: {sorted(KERNELS)}")
    y = kernel(inputs, node.attrs)
    return [np.asarray(y)]


def fold_batch_norm(w: np.ndarray, b: Optional[np.ndarray], gamma, beta, mean, var,
                    epsilon: float) -> tuple:
    """Weights and bias of conv2d (OHWI) or fully_connected ((O, K)) followed by batch_norm,
    as one op: w * s and (b - mean) * s + beta with s = gamma / sqrt(var + epsilon), computed
    in float64 and rounded once to float32."""
    s = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + epsilon)
    w2 = (w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(F32)
    b0 = np.zeros(len(s)) if b is None else b.astype(np.float64)
    b2 = ((b0 - mean.astype(np.float64)) * s + beta.astype(np.float64)).astype(F32)
    return w2, b2


_FUSABLE_ACT = {"relu": "relu", "relu6": "relu6"}


def _act_of(graph: Graph, node: Node) -> Optional[str]:
    """The fused-activation name equivalent to `node`, or None."""
    if node.op in _FUSABLE_ACT:
        return _FUSABLE_ACT[node.op]
    if node.op == "clip" and node.attrs["min"] == 0:
        return {6.0: "relu6", np.inf: "relu"}.get(node.attrs["max"])
    return None


class _Step:
    """One kernel call of the runner: `nodes` of the graph executed as one (fused) node."""
    __slots__ = ("node", "nodes", "args", "fused", "cache", "out_pads", "in_padded")

    def __init__(self, node: Node, nodes: list, args: list, fused: bool):
        self.node, self.nodes, self.args, self.fused = node, nodes, args, fused
        self.cache: dict = {}
        self.out_pads: Optional[tuple] = None  # conv2d: pad the output for its one consumer
        self.in_padded = False  # conv2d: the input arrives padded by the producer


class NeonRunner:
    """Runs a whole graph on the CPU.

    With `fuse` (default) the runner executes conv2d / fully_connected + batch_norm + relu/relu6
    chains as one kernel call (batch norm folded into the weights by `fold_batch_norm`, the
    activation applied in the conv's epilogue); `run(..., keep=True)` always runs node by node
    so that every intermediate tensor exists."""

    def __init__(self, graph: Graph, fuse: bool = True):
        self.graph = graph
        self._outputs = [s.tensor for s in graph.outputs]
        self._plain = [_Step(n, [n], list(n.inputs), False) for n in graph.nodes]
        self._fused = self._fuse() if fuse else self._plain
        if fuse:
            self._pad_in_producers(self._fused)
        self._last_use = {id(steps): self._lifetimes(steps) for steps in (self._plain, self._fused)}
        self._pool = BufferPool()
        self._constant_ids = {id(v) for v in graph.constants.values()}

    def _single_consumer(self, tensor: str, consumers: dict) -> Optional[Node]:
        users = consumers.get(tensor, [])
        if len(users) != 1 or tensor in self._outputs:
            return None
        return users[0]

    def _fuse(self) -> list:
        g = self.graph
        consumers: dict[str, list] = {}
        for n in g.nodes:
            for t in n.inputs:
                consumers.setdefault(t, []).append(n)
        covered, steps = set(), []
        for n in g.nodes:
            if id(n) in covered:
                continue
            if n.op not in ("conv2d", "fully_connected") or g.node_quantized(n) or \
                    not all(g.is_constant(t) for t in n.inputs[1:]):
                steps.append(_Step(n, [n], list(n.inputs), False))
                continue
            chain, w = [n], g.constants[n.inputs[1]]
            b = g.constants[n.inputs[2]] if len(n.inputs) > 2 else None
            act, out = n.attrs["activation"], n.outputs[0]
            nxt = self._single_consumer(out, consumers)
            if act is None and nxt is not None and nxt.op == "batch_norm" and \
                    not g.node_quantized(nxt) and all(g.is_constant(t) for t in nxt.inputs[1:]):
                w, b = fold_batch_norm(w, b, *(g.constants[t] for t in nxt.inputs[1:]),
                                       nxt.attrs["epsilon"])
                chain.append(nxt)
                out = nxt.outputs[0]
                nxt = self._single_consumer(out, consumers)
            if act is None and nxt is not None and _act_of(g, nxt) is not None and \
                    not g.node_quantized(nxt):
                act = _act_of(g, nxt)
                chain.append(nxt)
                out = nxt.outputs[0]
            if len(chain) == 1 and n.op != "conv2d":
                steps.append(_Step(n, [n], list(n.inputs), False))
                continue
            # conv2d steps always run with constant operands bound, so derived weight data
            # (the depthwise plan) is cached in the step
            attrs = dict(n.attrs, activation=act)
            fused = Node(n.op, n.name, [n.inputs[0]], [out], attrs)
            steps.append(_Step(fused, chain, [n.inputs[0], w, b], True))
            covered.update(id(c) for c in chain)
        return steps

    def _pad_in_producers(self, steps: list) -> None:
        """Where a fused conv2d's output feeds only one other fused conv2d, which pads it, the
        producer writes its output into a zero-bordered buffer and the consumer runs unpadded:
        this saves the consumer's padded copy (a pass over a large tensor in MobileNets)."""
        users: dict[str, list] = {}
        for st in steps:
            for t in st.args:
                if isinstance(t, str):
                    users.setdefault(t, []).append(st)
        convs = [st for st in steps if st.fused and st.node.op == "conv2d"]
        for st in convs:
            # only 1x1 producers: for an im2col conv the padded write-out costs more than the
            # consumer's copy (measured on MobileNet's first layer)
            if st.args[1].shape[1:3] != (1, 1):
                continue
            out = st.node.outputs[0]
            consumers = users.get(out, [])
            if out in self._outputs or len(consumers) != 1:
                continue
            nxt = consumers[0]
            if nxt in convs and nxt.args[0] == out and any(nxt.node.attrs["pads"]):
                st.out_pads = tuple(nxt.node.attrs["pads"])
                nxt.in_padded = True

    def _lifetimes(self, steps: list) -> dict:
        last = {}
        for k, st in enumerate(steps):
            for t in st.args:
                if isinstance(t, str):
                    last[t] = k
        return last

    def where(self) -> dict:
        """Node name -> the (fused) step name that executes it."""
        return {n.name: st.node.name for st in self._fused for n in st.nodes}

    def run(self, feeds: dict, keep: bool = False) -> dict:
        """`feeds` maps internal input tensor names to arrays in internal layout. Returns the
        graph outputs by tensor name, or every tensor (inputs and intermediates too) when
        `keep` is True."""
        g = self.graph
        env = dict(feeds)
        for spec in g.inputs:
            if spec.tensor not in env:
                raise GraphError(f"no value fed for graph input {spec.tensor!r}")
        steps = self._plain if keep else self._fused
        last_use = self._last_use[id(steps)]
        fed = {id(a) for a in feeds.values()}
        previous = getattr(_local, "pool", None)
        _local.pool = self._pool
        try:
            for k, st in enumerate(steps):
                if st.fused and st.node.op == "conv2d":
                    x, w, b = st.args
                    a = st.node.attrs
                    pads = (0, 0, 0, 0) if st.in_padded else a["pads"]
                    outs = [conv2d(env[x], w, b, a["strides"], a["dilations"], pads,
                                   a["groups"], a["activation"], cache=st.cache,
                                   out_pads=st.out_pads)]
                elif st.fused:
                    x, w, b = st.args
                    outs = [KERNELS[st.node.op]([env[x], w] + ([] if b is None else [b]),
                                                st.node.attrs)]
                else:
                    outs = run_node(g, st.node, [env[t] if t in env else g.constants[t]
                                                 for t in st.args])
                for t, y in zip(st.node.outputs, outs):
                    env[t] = y
                if not keep:
                    for t in st.args:
                        if isinstance(t, str) and last_use.get(t) == k and t in env and \
                                t not in self._outputs:
                            self._release(env.pop(t), env, fed)
        finally:
            _local.pool = previous
        if keep:
            return env
        return {t: env[t] for t in self._outputs}

    def _release(self, arr: np.ndarray, env: dict, fed: set) -> None:
        """Give a dead tensor's memory to the pool unless the caller owns it or a live tensor
        still views it."""
        if not isinstance(arr, np.ndarray) or arr.base is not None or id(arr) in fed or \
                id(arr) in self._constant_ids:
            return
        if any(v is arr or v.base is arr for v in env.values()):
            return
        self._pool.put(arr)


def run(graph: Graph, feeds: dict, keep: bool = False) -> dict:
    """Convenience: `NeonRunner(graph).run(feeds, keep)`."""
    return NeonRunner(graph).run(feeds, keep)
