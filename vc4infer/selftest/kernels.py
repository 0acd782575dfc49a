"""Shape sweeps of the QPU kernels in qpu_kernels/ (sgemm, conv_pointwise, conv_depthwise,
conv_expand_depthwise, conv_stem, gemv, pooling), each against the NEON runtime (hostside.neon,
numpy float32) with the float32 bound of `compare.sum_bound`. One `sweep(...)` declaration per
kernel module; the sweeps include the edges that break tilings: sizes that are not multiples of
16, one channel, 1000 channels (ImageNet classes), stride 2, asymmetric padding and the smallest K
the kernel takes. Operands are allocated at their exact sizes (on the emulator a read past one
faults) and outputs sit in a guard frame (a write past one shows).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from hostside import neon
from qpu_kernels import (conv_depthwise, conv_expand_depthwise, conv_pointwise, conv_stem, gemv,
                         pooling, sgemm)

from .compare import GuardedOutput, compare_guarded, sum_bound
from .registry import CaseContext, Outcome, sweep


def _normal(ctx: CaseContext, *shape: int) -> np.ndarray:
    return ctx.rng.standard_normal(shape).astype(np.float32)


def _act_label(p: dict) -> str:
    parts = [p.get("act") or "linear"]
    if p.get("residual"):
        parts.append("+residual")
    return " ".join(parts)


def check_sgemm(ctx: CaseContext, m: int, k: int, n: int, act: Optional[str] = None,
                residual: bool = False) -> Outcome:
    """C = act(A @ B + bias) (+ R), A (m, k) as every row's first k of a wider array."""
    drv = ctx.drv
    a_wide = drv.copy(_normal(ctx, m, k + 3))
    a = a_wide[:, :k]
    b, bias = _normal(ctx, k, n), _normal(ctx, n)
    weights = drv.copy(sgemm.pack_weights(b, bias, m))
    c = GuardedOutput(drv, m, n)
    r = drv.copy(_normal(ctx, m, n)) if residual else None
    ctx.run(sgemm.build(drv, m, k, n, a.address, a.strides[0], weights.address, c.view.address,
                        c.view.strides[0], act, None if r is None else r.address,
                        None if r is None else r.strides[0]))
    a_host = np.array(a)
    reference = neon.fully_connected(a_host, b.T, bias, act)
    magnitude = np.abs(a_host).astype(np.float64) @ np.abs(b).astype(np.float64) + np.abs(bias)
    if r is not None:
        reference = reference + np.array(r)
        magnitude = magnitude + np.abs(np.array(r))
    return compare_guarded(c, reference, sum_bound(magnitude, k + 2))


sweep("sgemm", check_sgemm, [
    dict(m=1, k=2, n=1),                                   # smallest: K = 2
    dict(m=17, k=5, n=33, act="relu6"),                    # one past multiples of 16
    dict(m=5, k=3, n=1000),                                # 1000 output columns
    dict(m=16, k=16, n=16, act="relu"),                    # exactly one tile
    dict(m=40, k=37, n=50, act="relu6", residual=True),    # several tiles and panels, residual
    dict(m=33, k=7, n=96, act="relu", residual=True),
    dict(m=3, k=1000, n=10),                               # 1000 input channels
    dict(m=49, k=64, n=24, act="relu6"),                   # a 7x7 MobileNet-like layer
], quick=(0, 1, 2),
    label=lambda p: f"{p['m']}x{p['k']}x{p['n']} {_act_label(p)}")


def check_conv_pointwise(ctx: CaseContext, h: int, w: int, cin: int, cout: int,
                         act: Optional[str] = None, residual: bool = False) -> Outcome:
    """NHWC 1x1 convolution (stride 1) against hostside.neon.conv2d; the output rows (pixels) are
    strided inside a guard frame."""
    drv = ctx.drv
    x = _normal(ctx, 1, h, w, cin)
    weight, bias = _normal(ctx, cout, 1, 1, cin), _normal(ctx, cout)
    x_gpu = drv.copy(x)
    packed = drv.copy(conv_pointwise.pack_weights(weight, bias, h * w))
    out = GuardedOutput(drv, h * w, cout)
    r = drv.copy(_normal(ctx, 1, h, w, cout)) if residual else None
    ctx.run(conv_pointwise.build(drv, h * w, cin, cout, x_gpu.address, packed.address,
                                 out.view.address, act, None if r is None else r.address,
                                 out_pixel_stride=out.view.strides[0]))
    reference = neon.conv2d(x, weight, bias, activation=act)
    magnitude = (np.abs(x).astype(np.float64).reshape(-1, cin)
                 @ np.abs(weight).astype(np.float64).reshape(cout, cin).T + np.abs(bias))
    if r is not None:
        reference = reference + np.array(r)
        magnitude = magnitude + np.abs(np.array(r)).reshape(-1, cout)
    return compare_guarded(out, reference.reshape(h * w, cout), sum_bound(magnitude, cin + 2))


sweep("conv_pointwise", check_conv_pointwise, [
    dict(h=3, w=5, cin=3, cout=8, act="relu6"),            # 3 input channels (RGB)
    dict(h=4, w=6, cin=32, cout=16, residual=True),        # v2 projection: residual, no act
    dict(h=2, w=3, cin=17, cout=1),                        # one output channel
    dict(h=1, w=1, cin=2, cout=1000),                      # smallest K, 1000 output channels
    dict(h=7, w=5, cin=24, cout=40, act="relu"),
    dict(h=7, w=7, cin=1000, cout=5, act="relu6"),         # 1000 input channels
    dict(h=9, w=11, cin=20, cout=33, act="relu", residual=True),
], quick=(0, 1, 2),
    label=lambda p: f"{p['h']}x{p['w']}x{p['cin']}->{p['cout']} {_act_label(p)}")


def check_gemv(ctx: CaseContext, k: int, n: int, act: Optional[str] = None) -> Outcome:
    """y = act(x @ W + bias) for one row x (the classifier's matrix-vector kernel)."""
    drv = ctx.drv
    x, w, bias = _normal(ctx, 1, k), _normal(ctx, k, n), _normal(ctx, n)
    x_gpu = drv.copy(x[0])
    packed = drv.copy(gemv.pack_weights(w, bias))
    y = GuardedOutput(drv, 1, n)
    ctx.run(gemv.build(drv, k, n, x_gpu.address, packed.address, y.view.address, act))
    reference = neon.fully_connected(x, w.T, bias, act)
    magnitude = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64) + np.abs(bias)
    return compare_guarded(y, reference, sum_bound(magnitude, k + 2))


sweep("gemv", check_gemv, [
    dict(k=4, n=1),                                        # the smallest: K = 4, one output
    dict(k=13, n=40, act="relu6"),                         # a remainder step, a partial block
    dict(k=1024, n=1001),                                  # MobileNet v1's classifier
    dict(k=1280, n=1000),                                  # MobileNet v2's
], quick=(0, 1),
    label=lambda p: f"{p['k']}->{p['n']} {p.get('act') or 'linear'}")


def check_conv_depthwise(ctx: CaseContext, h: int, w: int, c: int, stride: int = 1,
                         pads: tuple = (1, 1, 1, 1), act: Optional[str] = None) -> Outcome:
    """NHWC depthwise 3x3 convolution against hostside.neon.conv2d (groups = channels); one output
    pixel per guarded row."""
    drv = ctx.drv
    x = _normal(ctx, 1, h, w, c)
    weight, bias = _normal(ctx, c, 3, 3, 1), _normal(ctx, c)
    pt, pl, pb, pr = pads
    ho = conv_depthwise.output_size(h, pt, pb, stride)
    wo = conv_depthwise.output_size(w, pl, pr, stride)
    x_gpu = drv.copy(x)
    packed = drv.copy(conv_depthwise.pack_weights(weight, bias))
    out = GuardedOutput(drv, ho * wo, c)
    ctx.run(conv_depthwise.build(drv, h, w, c, x_gpu.address, packed.address, out.view.address,
                                 stride, pads, act, out_pixel_stride=out.view.strides[0],
                                 out_row_stride=wo * out.view.strides[0]))
    options = dict(strides=(stride, stride), pads=pads, groups=c)
    reference = neon.conv2d(x, weight, bias, activation=act, **options)
    # sum of the terms' magnitudes: the same convolution of |x|, |w|, |bias|
    magnitude = neon.conv2d(np.abs(x), np.abs(weight), np.abs(bias), **options)
    return compare_guarded(out, reference.reshape(ho * wo, c),
                           sum_bound(magnitude.reshape(ho * wo, c), 3 * 3 + 1))


sweep("conv_depthwise", check_conv_depthwise, [
    dict(h=5, w=6, c=16, act="relu6"),                     # one channel block, SAME padding
    dict(h=7, w=9, c=3, stride=2, pads=(0, 0, 1, 1), act="relu"),   # stride 2, TF padding
    dict(h=4, w=18, c=33, act=None),                       # 33 channels; 18 wide: 2 items a row
    dict(h=3, w=3, c=1, pads=(0, 0, 0, 0)),                # one channel, one output pixel
    dict(h=6, w=5, c=20, stride=2, act="relu6"),
    dict(h=2, w=3, c=1000, act="relu"),                    # 1000 channels
    dict(h=14, w=14, c=32, stride=2, pads=(0, 0, 1, 1), act="relu6"),  # MobileNet-like
    dict(h=17, w=17, c=24, act="relu6"),                   # 17 wide: a 1-pixel second item
], quick=(0, 1, 2),
    label=lambda p: (f"{p['h']}x{p['w']}x{p['c']} s{p.get('stride', 1)} "
                     f"pad{''.join(str(v) for v in p.get('pads', (1, 1, 1, 1)))} "
                     f"{p.get('act') or 'linear'}"))


def check_conv_expand_depthwise(ctx: CaseContext, h: int, w: int, k: int, c: int,
                                stride: int = 1, pads: tuple = (1, 1, 1, 1),
                                act: Optional[str] = "relu6") -> Outcome:
    """A 1x1 expansion (K -> C) then a 3x3 depthwise conv, both with `act`, in one kernel, against
    hostside.neon.conv2d run twice; one output pixel per guarded row."""
    drv = ctx.drv
    x = _normal(ctx, 1, h, w, k)
    w_expand, b_expand = _normal(ctx, c, 1, 1, k) / np.float32(np.sqrt(k)), _normal(ctx, c)
    w_depthwise, b_depthwise = _normal(ctx, c, 3, 3, 1), _normal(ctx, c)
    pt, pl, pb, pr = pads
    ho = conv_depthwise.output_size(h, pt, pb, stride)
    wo = conv_depthwise.output_size(w, pl, pr, stride)
    x_gpu = drv.copy(x)
    packed = drv.copy(conv_expand_depthwise.pack_weights(w_expand, b_expand, w_depthwise,
                                                         b_depthwise))
    out = GuardedOutput(drv, ho * wo, c)
    ctx.run(conv_expand_depthwise.build(drv, h, w, k, c, x_gpu.address, packed.address,
                                        out.view.address, stride, pads, act, act,
                                        out_pixel_stride=out.view.strides[0],
                                        out_row_stride=wo * out.view.strides[0]))
    options = dict(strides=(stride, stride), pads=pads, groups=c)
    expanded = neon.conv2d(x, w_expand, b_expand, activation=act)
    reference = neon.conv2d(expanded, w_depthwise, b_depthwise, activation=act, **options)
    # the expansion's term magnitudes carried through the taps, beside the taps' own
    expanded_magnitude = np.abs(expanded) + neon.conv2d(np.abs(x), np.abs(w_expand),
                                                        np.abs(b_expand))
    magnitude = neon.conv2d(expanded_magnitude, np.abs(w_depthwise), np.abs(b_depthwise),
                            **options)
    return compare_guarded(out, reference.reshape(ho * wo, c),
                           sum_bound(magnitude.reshape(ho * wo, c), k + 3 * 3 + 2))


sweep("conv_expand_depthwise", check_conv_expand_depthwise, [
    dict(h=5, w=6, k=16, c=16),                            # one channel block, SAME padding
    dict(h=7, w=9, k=3, c=20, stride=2, pads=(0, 0, 1, 1), act="relu"),  # TF padding, 2 blocks
    dict(h=6, w=13, k=24, c=33, act=None),                 # K = 24: 3 strips, 1 overlapping
    dict(h=3, w=3, k=2, c=1, pads=(0, 0, 0, 0)),           # one output pixel, the smallest K
    dict(h=40, w=5, k=4, c=16),                            # 40 rows: two bands of rows
    dict(h=14, w=14, k=24, c=144, stride=2),               # MobileNet v2-like
], quick=(0, 1, 2),
    label=lambda p: (f"{p['h']}x{p['w']}x{p['k']}->{p['c']} s{p.get('stride', 1)} "
                     f"pad{''.join(str(v) for v in p.get('pads', (1, 1, 1, 1)))} "
                     f"{p.get('act', 'relu6') or 'linear'}"))


def check_conv_stem(ctx: CaseContext, h: int, w: int, cin: int, cout: int, k: int = 3,
                    stride: int = 2, pads: tuple = (1, 1, 1, 1),
                    act: Optional[str] = None) -> Outcome:
    """NHWC full KxK convolution (im2col gathered by the TMU) against hostside.neon.conv2d; the
    input sits in a zero halo of the pads, as the planner lays out a graph input."""
    drv = ctx.drv
    x = _normal(ctx, 1, h, w, cin)
    weight, bias = _normal(ctx, cout, k, k, cin), _normal(ctx, cout)
    pt, pl, pb, pr = pads
    halo = drv.alloc((h + pt + pb, w + pl + pr, cin), np.float32)
    halo[:] = 0
    x_gpu = halo[pt:pt + h, pl:pl + w]
    x_gpu[:] = x[0]
    ho = conv_stem.output_size(h, k, pt, pb, stride)
    wo = conv_stem.output_size(w, k, pl, pr, stride)
    packed = drv.copy(conv_stem.pack_weights(weight, bias, ho * wo))
    out = GuardedOutput(drv, ho * wo, cout)
    ctx.run(conv_stem.build(drv, h, w, cin, cout, k, k, x_gpu.address, x_gpu.strides[1],
                            x_gpu.strides[0], packed, out.view.address, out.view.strides[0],
                            wo * out.view.strides[0], stride, pads, act))
    options = dict(strides=(stride, stride), pads=pads)
    reference = neon.conv2d(x, weight, bias, activation=act, **options)
    magnitude = neon.conv2d(np.abs(x), np.abs(weight), np.abs(bias), **options)
    return compare_guarded(out, reference.reshape(ho * wo, cout),
                           sum_bound(magnitude.reshape(ho * wo, cout), k * k * cin + 1))


sweep("conv_stem", check_conv_stem, [
    dict(h=9, w=10, cin=3, cout=32, pads=(0, 0, 1, 1), act="relu6"),   # v1's stem (TF SAME)
    dict(h=10, w=10, cin=3, cout=32, act="relu6"),                     # v2's stem
    dict(h=7, w=37, cin=3, cout=20, stride=1),                         # 3 tiles a row
    dict(h=6, w=6, cin=5, cout=50, act="relu"),                        # two panels
    dict(h=32, w=32, cin=3, cout=32, act="relu6"),                     # a bigger image
], quick=(0, 1),
    label=lambda p: (f"{p['h']}x{p['w']}x{p['cin']}->{p['cout']} k{p.get('k', 3)} "
                     f"s{p.get('stride', 2)} {p.get('act') or 'linear'}"))


def check_global_average(ctx: CaseContext, h: int, w: int, c: int) -> Outcome:
    """Global average pool (NHWC, batch 1) against hostside.neon.global_avg_pool."""
    drv = ctx.drv
    x = _normal(ctx, 1, h, w, c)
    x_gpu = drv.copy(x)
    packed = drv.copy(pooling.pack_weights(h * w, c))
    out = GuardedOutput(drv, 1, c)
    ctx.run(pooling.build_global_average(drv, h * w, c, x_gpu.address, packed.address,
                                         out.view.address))
    reference = neon.global_avg_pool(x).reshape(1, c)
    magnitude = np.abs(x).astype(np.float64).reshape(h * w, c).mean(axis=0, keepdims=True)
    return compare_guarded(out, reference, sum_bound(magnitude, h * w + 1))


sweep("pooling", check_global_average, [
    dict(h=7, w=7, c=40),
    dict(h=1, w=2, c=17),                                  # the fewest pixels it takes: 2
    dict(h=2, w=3, c=3),
    dict(h=1, w=2, c=1),                                   # one channel
    dict(h=7, w=7, c=1000),                                # 1000 channels
    dict(h=7, w=7, c=1024),                                # MobileNet v1's last pool
    dict(h=13, w=11, c=33),
], quick=(0, 1),
    label=lambda p: f"global avg {p['h']}x{p['w']}x{p['c']}")
