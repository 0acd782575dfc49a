"""Integer (quantized) numerics of the IR ops, with the semantics of TFLite's kernels.

`run_node(graph, node, inputs)` runs one node whose tensors carry quantization (uint8 per-tensor
or int8 per-channel, `QuantParams` of the IR) and returns one array per output, in the output's
integer dtype. `hostside.neon` sends every such node here.

The arithmetic follows TFLite (whose integer scheme comes from gemmlowp):
- real multipliers are computed in double from the float32 scales and turned into a Q31
  multiplier and a power-of-two exponent (`quantize_multiplier`);
- products accumulate exactly (int32 in TFLite; here float64 BLAS matmuls, exact because every
  partial sum stays far below 2**53, or int64);
- requantization is a saturating rounding doubling high multiply followed by a rounding right
  shift (`multiply_by_quantized_multiplier`), then the output zero point is added and the result
  clamped to the fused activation's range in the quantized domain (`activation_range`);
- ADD rescales both operands to a common scale with 20 bits of headroom before adding,
  AVERAGE_POOL divides integer sums with rounding, MEAN over H and W requantizes integer sums,
  SOFTMAX and LOGISTIC evaluate exp in float32 from the quantized values as TFLite's lookup
  tables do.
No Python loop runs over pixels: loops run over kernel taps, groups or inputs only.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from vc4infer.errors import GraphError
from vc4infer.graph.ir import Graph, Node, QuantParams

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1
# ADD: both operands are shifted left by this many bits before rescaling (TFLite, 8-bit types).
ADD_LEFT_SHIFT = 20


# -- fixed-point primitives -------------------------------------------------------------------

def quantize_multiplier(real: float) -> tuple:
    """(multiplier, shift) with real ~= multiplier * 2**(shift - 31), multiplier in [2**30, 2**31)
    (TFLite's QuantizeMultiplier: frexp, round half away from zero, renormalise at 2**31)."""
    real = float(real)
    if real == 0.0:
        return 0, 0
    if real < 0 or not math.isfinite(real):
        raise GraphError(f"requantization multiplier {real} must be a positive finite number")
    q, shift = math.frexp(real)
    q_fixed = int(math.floor(q * (1 << 31) + 0.5))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:  # TFLite saturates multipliers of 2**30 and above
        return _INT32_MAX, 30
    return q_fixed, shift


def _trunc_div_pow2(x: np.ndarray, bits: int) -> np.ndarray:
    """x / 2**bits rounded toward zero (C integer division), int64."""
    q = np.abs(x) >> bits
    return np.where(x < 0, -q, q)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int32 values held in int64 arrays."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    out = _trunc_div_pow2(ab + nudge, 31)
    return np.where((a == _INT32_MIN) & (b == _INT32_MIN), np.int64(_INT32_MAX), out)


def rounding_divide_by_pot(x: np.ndarray, exponent) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2**exponent, rounding half away from zero."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier, shift) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier, vectorised; `multiplier`/`shift` are scalars or
    arrays that broadcast against `x` (per-channel along the last axis)."""
    multiplier = np.asarray(multiplier, np.int64)
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.asarray(x, np.int64) << left
    x = np.clip(x, _INT32_MIN, _INT32_MAX)  # TFLite works in int32
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """std::round: halves away from zero (numpy's round goes to even)."""
    return np.sign(x) * np.floor(np.abs(x) + x.dtype.type(0.5))


# -- quantization parameters ------------------------------------------------------------------

def _limits(dtype) -> tuple:
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


def _quant(graph: Graph, tensor: str) -> QuantParams:
    q = graph.tensor(tensor).quant
    if q is None:
        raise GraphError(f"tensor {tensor!r} has no quantization, but a quantized op reads or "
                         f"writes it; quantize it (QUANTIZE) or dequantize the other operands")
    return q


def _scalar(graph: Graph, tensor: str) -> tuple:
    """(scale, zero_point) of a per-tensor quantized tensor."""
    q = _quant(graph, tensor)
    if q.scale.size != 1:
        raise GraphError(f"tensor {tensor!r} is quantized per channel; this op needs one scale")
    return float(q.scale[0]), int(q.zero_point[0])


def quantize_value(value: float, scale: float, zero_point: int) -> int:
    """TFLite's Quantize of one real value (float32 division, round half away from zero)."""
    v = np.float32(value) / np.float32(scale)
    return int(zero_point + _round_half_away(np.asarray(v, np.float32)))


def activation_range(activation: Optional[str], scale: float, zero_point: int, dtype) -> tuple:
    """Clamp bounds of a fused activation in the quantized domain of the output (TFLite's
    CalculateActivationRangeQuantized)."""
    lo, hi = _limits(dtype)
    if activation is None:
        return lo, hi
    if activation == "relu":
        return max(lo, quantize_value(0.0, scale, zero_point)), hi
    if activation == "relu6":
        return (max(lo, quantize_value(0.0, scale, zero_point)),
                min(hi, quantize_value(6.0, scale, zero_point)))
    raise GraphError(f"fused activation {activation!r} has no quantized form")


def _finish(acc: np.ndarray, out_zp: int, lo: int, hi: int, dtype) -> np.ndarray:
    return np.clip(acc + out_zp, lo, hi).astype(dtype)


# -- kernels ----------------------------------------------------------------------------------

def _taps(xp: np.ndarray, kh: int, kw: int, strides, dilations, ho: int, wo: int):
    sh, sw = strides
    dh, dw = dilations
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            yield i, j, xp[:, y0:y0 + sh * (ho - 1) + 1:sh, x0:x0 + sw * (wo - 1) + 1:sw, :]


def _pad(x: np.ndarray, pads: tuple, value) -> np.ndarray:
    pt, pl, pb, pr = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=value)


def conv2d_accumulate(x: np.ndarray, w: np.ndarray, x_zp: int, w_zp: np.ndarray, strides,
                      dilations, pads, groups: int, out_hw: tuple) -> np.ndarray:
    """Exact int accumulators sum((x - x_zp) * (w - w_zp[o])) of an NHWC convolution with OHWI
    weights, as int64 of shape (N, Ho, Wo, O). Padding contributes nothing, as in TFLite."""
    ho, wo = out_hw
    xs = _pad(x.astype(np.float64) - x_zp, pads, 0.0)
    wf = w.astype(np.float64) - np.asarray(w_zp, np.float64).reshape(-1, 1, 1, 1)
    o, kh, kw, cg = w.shape
    n, c = x.shape[0], x.shape[3]
    if groups == 1:
        if kh == kw == 1 and strides == (1, 1):
            cols = xs[:, :ho, :wo, :].reshape(-1, c)
        else:
            cols = np.stack([v for _, _, v in _taps(xs, kh, kw, strides, dilations, ho, wo)],
                            axis=3).reshape(n * ho * wo, kh * kw * c)
        acc = cols @ wf.reshape(o, -1).T
        return np.rint(acc).astype(np.int64).reshape(n, ho, wo, o)
    if groups == c and cg == 1:  # depthwise; output channel k reads input channel k // mult
        mult = o // c
        if mult > 1:
            xs = np.repeat(xs, mult, axis=3)
        acc = np.zeros((n, ho, wo, o), np.float64)
        for i, j, v in _taps(xs, kh, kw, strides, dilations, ho, wo):
            acc += v * wf[:, i, j, 0]
        return np.rint(acc).astype(np.int64)
    og = o // groups
    parts = []
    for g in range(groups):
        xg = xs[..., g * cg:(g + 1) * cg]
        cols = np.stack([v for _, _, v in _taps(xg, kh, kw, strides, dilations, ho, wo)],
                        axis=3).reshape(n * ho * wo, kh * kw * cg)
        parts.append(cols @ wf[g * og:(g + 1) * og].reshape(og, -1).T)
    return np.rint(np.concatenate(parts, axis=1)).astype(np.int64).reshape(n, ho, wo, o)


def _channel_multipliers(in_scale: float, w_q: QuantParams, out_scale: float, n_out: int):
    """Per-output-channel (multiplier, shift) arrays for conv / fully_connected: double(in) *
    double(w[c]) / double(out), as TFLite's PopulateConvolutionQuantizationParams."""
    w_scales = np.broadcast_to(w_q.scale.astype(np.float64), (n_out,)) if w_q.scale.size == 1 \
        else w_q.scale.astype(np.float64)
    pairs = [quantize_multiplier(float(in_scale) * float(s) / float(out_scale)) for s in w_scales]
    return (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64))


def _weight_zero_points(w_q: QuantParams, n_out: int) -> np.ndarray:
    return np.broadcast_to(w_q.zero_point.astype(np.int64), (n_out,)) if w_q.zero_point.size == 1 \
        else w_q.zero_point.astype(np.int64)


def _conv2d(graph: Graph, node: Node, inputs: list) -> list:
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    a = node.attrs
    out = graph.tensor(node.outputs[0])
    xs, xzp = _scalar(graph, node.inputs[0])
    ys, yzp = _scalar(graph, node.outputs[0])
    wq = _quant(graph, node.inputs[1])
    o = w.shape[0]
    acc = conv2d_accumulate(x, w, xzp, _weight_zero_points(wq, o), a["strides"], a["dilations"],
                            a["pads"], a["groups"], out.shape[1:3])
    if b is not None:
        acc += b.astype(np.int64)
    mult, shift = _channel_multipliers(xs, wq, ys, o)
    acc = multiply_by_quantized_multiplier(acc, mult, shift)
    lo, hi = activation_range(a["activation"], ys, yzp, out.dtype)
    return [_finish(acc, yzp, lo, hi, out.dtype)]


def _fully_connected(graph: Graph, node: Node, inputs: list) -> list:
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    out = graph.tensor(node.outputs[0])
    xs, xzp = _scalar(graph, node.inputs[0])
    ys, yzp = _scalar(graph, node.outputs[0])
    wq = _quant(graph, node.inputs[1])
    o = w.shape[0]
    wf = w.astype(np.float64) - _weight_zero_points(wq, o)[:, None]
    acc = np.rint((x.astype(np.float64) - xzp) @ wf.T).astype(np.int64)
    if b is not None:
        acc += b.astype(np.int64)
    mult, shift = _channel_multipliers(xs, wq, ys, o)
    acc = multiply_by_quantized_multiplier(acc, mult, shift)
    lo, hi = activation_range(node.attrs["activation"], ys, yzp, out.dtype)
    return [_finish(acc, yzp, lo, hi, out.dtype)]


def _add(graph: Graph, node: Node, inputs: list) -> list:
    out = graph.tensor(node.outputs[0])
    s1, z1 = _scalar(graph, node.inputs[0])
    s2, z2 = _scalar(graph, node.inputs[1])
    ys, yzp = _scalar(graph, node.outputs[0])
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * ys))
    a = (inputs[0].astype(np.int64) - z1) << ADD_LEFT_SHIFT
    b = (inputs[1].astype(np.int64) - z2) << ADD_LEFT_SHIFT
    total = multiply_by_quantized_multiplier(a, m1, sh1) + multiply_by_quantized_multiplier(b, m2, sh2)
    acc = multiply_by_quantized_multiplier(total, mo, sho)
    lo, hi = activation_range(node.attrs["activation"], ys, yzp, out.dtype)
    return [_finish(acc, yzp, lo, hi, out.dtype)]


def _mul(graph: Graph, node: Node, inputs: list) -> list:
    out = graph.tensor(node.outputs[0])
    s1, z1 = _scalar(graph, node.inputs[0])
    s2, z2 = _scalar(graph, node.inputs[1])
    ys, yzp = _scalar(graph, node.outputs[0])
    m, sh = quantize_multiplier(float(s1) * float(s2) / float(ys))
    prod = (inputs[0].astype(np.int64) - z1) * (inputs[1].astype(np.int64) - z2)
    acc = multiply_by_quantized_multiplier(prod, m, sh)
    lo, hi = activation_range(node.attrs["activation"], ys, yzp, out.dtype)
    return [_finish(acc, yzp, lo, hi, out.dtype)]


def _pool_windows(x: np.ndarray, a: dict, out_hw: tuple, fill):
    kh, kw = a["kernel"]
    return _taps(_pad(x, a["pads"], fill), kh, kw, a["strides"], (1, 1), *out_hw)


def _avg_pool2d(graph: Graph, node: Node, inputs: list) -> list:
    """Integer sum over the real pixels of each window, divided by their count with rounding
    half away from zero (TFLite's quantized AVERAGE_POOL_2D; input and output share quant)."""
    x = inputs[0]
    out = graph.tensor(node.outputs[0])
    ho, wo = out.shape[1:3]
    total = np.zeros(out.shape, np.int64)
    for _, _, v in _pool_windows(x.astype(np.int64), node.attrs, (ho, wo), 0):
        total += v
    if node.attrs["count_include_pad"]:
        count = np.full((1, ho, wo, 1), node.attrs["kernel"][0] * node.attrs["kernel"][1], np.int64)
    else:
        count = np.zeros((1, ho, wo, 1), np.int64)
        ones = np.ones((1,) + x.shape[1:3] + (1,), np.int64)
        for _, _, v in _pool_windows(ones, node.attrs, (ho, wo), 0):
            count += v
    half = count // 2
    avg = np.where(total >= 0, (total + half) // count, -((-total + half) // count))
    lo, hi = _limits(out.dtype)
    return [np.clip(avg, lo, hi).astype(out.dtype)]


def _max_pool2d(graph: Graph, node: Node, inputs: list) -> list:
    x = inputs[0]
    out = graph.tensor(node.outputs[0])
    lo, _ = _limits(x.dtype)
    best = None
    for _, _, v in _pool_windows(x.astype(np.int64), node.attrs, out.shape[1:3], lo - 1):
        best = v.copy() if best is None else np.maximum(best, v)
    return [best.astype(out.dtype)]


def _mean(graph: Graph, node: Node, inputs: list) -> list:
    x = inputs[0]
    out = graph.tensor(node.outputs[0])
    axes = tuple(a % x.ndim for a in node.attrs["axes"])
    xs, xzp = _scalar(graph, node.inputs[0])
    ys, yzp = _scalar(graph, node.outputs[0])
    lo, hi = _limits(out.dtype)
    count = int(np.prod([x.shape[a] for a in axes]))
    total = x.astype(np.int64).sum(axis=axes, keepdims=node.attrs["keepdims"])
    # TFLite divides the integer sum in float32 and rescales with a float32 bias (its optimized
    # kernels; the reference kernel of this LiteRT build differs from it by at most 1 unit).
    scale = np.float32(xs) / np.float32(ys)
    mean = total.astype(np.float32) / np.float32(count)
    res = _round_half_away(mean * scale + np.float32(-xzp) * scale) + np.float32(yzp)
    return [np.clip(res, lo, hi).astype(out.dtype)]


def _softmax(graph: Graph, node: Node, inputs: list) -> list:
    """exp of (x - max) * input_scale in float32, normalised, quantized to the output (TFLite's
    table-driven quantized SOFTMAX; beta is 1 in the IR)."""
    x = inputs[0]
    out = graph.tensor(node.outputs[0])
    axis = node.attrs["axis"]
    xs, _ = _scalar(graph, node.inputs[0])
    ys, yzp = _scalar(graph, node.outputs[0])
    xi = x.astype(np.int64)
    diff = (xi.max(axis=axis, keepdims=True) - xi).astype(np.float32)
    e = np.exp(np.float32(-xs) * diff).astype(np.float32)
    inv = np.float32(1.0) / (e.sum(axis=axis, keepdims=True, dtype=np.float32) * np.float32(ys))
    q = _round_half_away((e * inv).astype(np.float32))
    lo, hi = _limits(out.dtype)
    return [np.clip(q + yzp, lo, hi).astype(out.dtype)]


def _sigmoid(graph: Graph, node: Node, inputs: list) -> list:
    """Table semantics of TFLite's quantized LOGISTIC: dequantize, float32 logistic, quantize."""
    x = inputs[0]
    out = graph.tensor(node.outputs[0])
    xs, xzp = _scalar(graph, node.inputs[0])
    ys, yzp = _scalar(graph, node.outputs[0])
    v = np.float32(xs) * (x.astype(np.float32) - np.float32(xzp))
    y = np.float32(1) / (np.float32(1) + np.exp(-v))
    lo, hi = _limits(out.dtype)
    return [np.clip(_round_half_away((y / np.float32(ys)).astype(np.float32)) + yzp, lo,
                    hi).astype(out.dtype)]


def _requantize_clamp(graph: Graph, node: Node, x: np.ndarray, low: float, high: float) -> np.ndarray:
    """ReLU-family ops: requantize input -> output quant, clamp to [low, high] in real terms."""
    out = graph.tensor(node.outputs[0])
    xs, xzp = _scalar(graph, node.inputs[0])
    ys, yzp = _scalar(graph, node.outputs[0])
    lo, hi = _limits(out.dtype)
    if math.isfinite(low):
        lo = max(lo, quantize_value(low, ys, yzp))
    if math.isfinite(high):
        hi = min(hi, quantize_value(high, ys, yzp))
    if xs == ys:
        acc = x.astype(np.int64) - xzp
    else:
        m, sh = quantize_multiplier(float(xs) / float(ys))
        acc = multiply_by_quantized_multiplier(x.astype(np.int64) - xzp, m, sh)
    return _finish(acc, yzp, lo, hi, out.dtype)


def _quantize(graph: Graph, node: Node, inputs: list) -> list:
    x = inputs[0]
    out = graph.tensor(node.outputs[0])
    ys, yzp = _scalar(graph, node.outputs[0])
    lo, hi = _limits(out.dtype)
    if graph.tensor(node.inputs[0]).quant is None:
        q = _round_half_away((x.astype(np.float32) / np.float32(ys)).astype(np.float32)) + yzp
        return [np.clip(q, lo, hi).astype(out.dtype)]
    return [_requantize_clamp(graph, node, x, -math.inf, math.inf)]


def _dequantize(graph: Graph, node: Node, inputs: list) -> list:
    q = _quant(graph, node.inputs[0])
    x = inputs[0].astype(np.int64)
    if q.axis is None:
        return [(np.float32(q.scale[0]) * (x - int(q.zero_point[0])).astype(np.float32))]
    shape = [1] * x.ndim
    shape[q.axis] = -1
    zp = q.zero_point.astype(np.int64).reshape(shape)
    return [(q.scale.reshape(shape) * (x - zp).astype(np.float32)).astype(np.float32)]


def _concat(graph: Graph, node: Node, inputs: list) -> list:
    """Inputs whose quant differs from the output's are rescaled in float32 (TFLite's
    ConcatenationWithScaling)."""
    out = graph.tensor(node.outputs[0])
    ys, yzp = _scalar(graph, node.outputs[0])
    lo, hi = _limits(out.dtype)
    parts = []
    for t, x in zip(node.inputs, inputs):
        xs, xzp = _scalar(graph, t)
        if xs == ys and xzp == yzp:
            parts.append(x.astype(out.dtype))
            continue
        scale = np.float32(xs) * (np.float32(1) / np.float32(ys))
        bias = np.float32(-xzp) * scale
        r = _round_half_away((x.astype(np.float32) * scale + bias).astype(np.float32)) + yzp
        parts.append(np.clip(r, lo, hi).astype(out.dtype))
    return [np.concatenate(parts, axis=node.attrs["axis"])]


def _pad_op(graph: Graph, node: Node, inputs: list) -> list:
    ys, yzp = _scalar(graph, node.outputs[0])
    value = quantize_value(node.attrs["value"], ys, yzp)
    return [np.pad(inputs[0], node.attrs["pads"], mode="constant",
                   constant_values=np.asarray(value).astype(inputs[0].dtype))]


_SHAPE_OPS = {
    "reshape": lambda x, a: x.reshape(a["shape"]),
    "flatten": lambda x, a: x.reshape(x.shape[:a["axis"]] + (-1,)) if a["axis"] > 0
    else x.reshape(1, -1),
    "squeeze": lambda x, a: np.squeeze(x, axis=a["axes"]),
    "unsqueeze": lambda x, a: np.expand_dims(x, axis=a["axes"]),
    "transpose": lambda x, a: np.ascontiguousarray(x.transpose(a["perm"])),
}

_KERNELS = {
    "conv2d": _conv2d,
    "fully_connected": _fully_connected,
    "add": _add,
    "mul": _mul,
    "avg_pool2d": _avg_pool2d,
    "max_pool2d": _max_pool2d,
    "mean": _mean,
    "softmax": _softmax,
    "sigmoid": _sigmoid,
    "quantize": _quantize,
    "dequantize": _dequantize,
    "concat": _concat,
    "pad": _pad_op,
    "relu": lambda g, n, i: [_requantize_clamp(g, n, i[0], 0.0, math.inf)],
    "relu6": lambda g, n, i: [_requantize_clamp(g, n, i[0], 0.0, 6.0)],
    "clip": lambda g, n, i: [_requantize_clamp(g, n, i[0], n.attrs["min"], n.attrs["max"])],
}

SUPPORTED_OPS = tuple(sorted((*_KERNELS, *_SHAPE_OPS)))


def run_node(graph: Graph, node: Node, inputs: list) -> list:
    """Run one quantized node with TFLite's integer semantics. `inputs` holds one array per entry
    of `node.inputs` (constants included); returns one array per output."""
    if node.op in _SHAPE_OPS:  # TFLite moves the integers unchanged, whatever the quant says
        return [np.ascontiguousarray(_SHAPE_OPS[node.op](inputs[0], node.attrs))]
    kernel = _KERNELS.get(node.op)
    if kernel is None:
        raise GraphError(f"node {node.name!r}: op {node.op!r} has no quantized kernel; "
                         f"quantized ops: {list(SUPPORTED_OPS)}")
    return kernel(graph, node, inputs)
