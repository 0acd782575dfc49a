"""The NEON (CPU) runtime: numpy float32 numerics of every IR op, the reference that every QPU
kernel is validated against and the fallback for ops the QPUs do not run.

Entry points:
- `run_node(graph, node, inputs)`: one node, given one array per node input (constants
  included), returns the list of output arrays. A node with quantized tensors goes to
  `hostside.neon_quant.run_node` (TFLite integer semantics).
- `NeonRunner(graph).run(feeds, keep=False)`: the whole graph in internal layout; `keep=True`
  returns every intermediate tensor as well (for per-layer validation).

Convolutions: 1x1 as BLAS matmuls, other kernels through im2col (a copy of the patches per
block of output rows, transposed for few input channels, and one matmul per block); the bias
rides in the matmul as the weight row of a column of ones where the patch matrix is copied
anyway (im2col) or is narrower than the output (expanding 1x1 conv). Depthwise convs are one
einsum over a strided view of all kernel taps. No Python loop runs over pixels; loops run over
row blocks or groups. In a fused run a GEMM conv whose only consumer is a padding conv
(MobileNet's expand -> depthwise) writes its output into a zero-bordered buffer, so that the
consumer copies nothing.

Kernels are written as builders of numpy calls on fixed arrays (`_Calls`). A runner prepares
them on the first run with given input shapes and replays them after that: the Python work of
slicing and blocking (about 2.5 ms per MobileNet inference on x86-64, whatever the image size)
happens once. Its buffers come from a pool that reuses memory by size, which keeps
an inference's tensors in few blocks that stay in cache.
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
    """Memory handed back by a runner for reuse in its next kernels and runs.

    Fresh large numpy arrays cost page faults on first touch (several ms per MobileNet
    inference); a runner that reuses its own memory avoids that. Memory goes by size, not by
    shape: an array asks for the smallest free block that holds it (best fit), so that the
    tensors of a whole inference live in few blocks, which stay in cache (weights and
    activations of a MobileNet otherwise exceed the L3 cache). Arrays from the pool hold stale
    data: kernels overwrite every element."""

    # a block serves arrays down to this fraction of its size (else a small array would take a
    # large block that a later large array then misses)
    MIN_FILL = 0.25

    def __init__(self):
        self._free: list = []  # free blocks (1-D uint8 arrays), most recently freed last
        self._blocks: dict = {}  # id(array) -> (array, its block), for the arrays handed out

    def get(self, shape: tuple, dtype=F32) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        best = None
        for i, blk in enumerate(self._free):
            if nbytes <= blk.nbytes and nbytes >= self.MIN_FILL * blk.nbytes and \
                    (best is None or blk.nbytes < self._free[best].nbytes):
                best = i
        block = self._free.pop(best) if best is not None else np.empty(_round_up(nbytes),
                                                                       np.uint8)
        arr = np.ndarray(shape, dtype, block)
        self._blocks[id(arr)] = (arr, block)
        return arr

    def block_of(self, arr: np.ndarray) -> Optional[np.ndarray]:
        """The block of an array this pool handed out (None for any other array)."""
        entry = self._blocks.get(id(arr))
        return entry[1] if entry is not None and entry[0] is arr else None

    def put(self, arr: np.ndarray) -> None:
        """Take back an array this pool handed out, or the memory of any C-contiguous array."""
        block = self.block_of(arr)
        if block is not None:
            del self._blocks[id(arr)]
        elif arr.flags.c_contiguous and arr.base is None:
            block = arr.reshape(-1).view(np.uint8)
        else:
            return
        self._free.append(block)


def _round_up(nbytes: int) -> int:
    """nbytes rounded up to 1/8 of its power of two: blocks fit the next array of about the
    same size too."""
    step = max(64, (1 << (nbytes.bit_length() - 1)) // 8)
    return -(-nbytes // step) * step


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
            if a is not None:
                pool.put(a)


class _Calls:
    """The numpy calls of one kernel, prepared for fixed arrays, so that a runner can repeat
    them run after run without the Python work that chose them (slicing, block loops, shape
    arithmetic: tens of microseconds per kernel).

    `each`: (function, args, kwargs) to call every time, in order. `scratch`: arrays that go
    back to the pool once the calls have run (the next kernel may use them: kernels run one
    after the other)."""
    __slots__ = ("each", "scratch", "executed")

    def __init__(self):
        self.each: list = []
        self.scratch: list = []
        self.executed = False  # `each` already ran (a kernel that had to run to learn its shapes)

    def add(self, fn: Callable, *args, **kwargs) -> None:
        self.each.append((fn, args, kwargs))

    def temp(self, shape: tuple, dtype=F32) -> np.ndarray:
        """A scratch array of the kernel."""
        arr = _empty(shape, dtype)
        self.scratch.append(arr)
        return arr

    def run_once(self) -> None:
        """Run the calls (unless executed), then recycle the scratch arrays."""
        if not self.executed:
            _replay(self.each)
        _recycle(*self.scratch)


def _replay(calls: list) -> None:
    for fn, args, kwargs in calls:
        fn(*args, **kwargs)


# np.clip and np.einsum are Python wrappers (argument checks) around these, a few microseconds
# per call that the runner makes hundreds of times per inference
try:
    from numpy._core.umath import clip as _clip  # numpy >= 2
    from numpy._core.multiarray import c_einsum as _einsum
except ImportError:  # pragma: no cover - numpy 1.x (Raspberry Pi OS)
    try:
        from numpy.core.umath import clip as _clip
        from numpy.core.multiarray import c_einsum as _einsum
    except ImportError:
        _clip, _einsum = np.clip, np.einsum


# -- activations ---------------------------------------------------------------------------

def _activate(y: np.ndarray, activation: Optional[str], out: Optional[np.ndarray] = None
              ) -> np.ndarray:
    """Fused activation of y, in place or into `out` (a copy of y when there is none)."""
    calls = _Calls()
    out = _activate_calls(calls, y, activation, out)
    _replay(calls.each)
    return out


def _bias_act(y: np.ndarray, b: Optional[np.ndarray], activation: Optional[str],
              out: Optional[np.ndarray] = None) -> np.ndarray:
    """y + b, then the fused activation, in place or into `out`."""
    calls = _Calls()
    out = _bias_act_calls(calls, y, b, activation, out)
    _replay(calls.each)
    return out


def _activate_calls(calls: _Calls, y: np.ndarray, activation: Optional[str],
                    out: Optional[np.ndarray] = None) -> np.ndarray:
    """Add the calls of `_activate`; returns the result array."""
    if out is None:
        out = y
    # clip for relu too: numpy's maximum is several times slower than its clip
    if activation == "relu":
        calls.add(_clip, y, F32(0), F32(np.inf), out=out)
    elif activation == "relu6":
        calls.add(_clip, y, F32(0), F32(6), out=out)
    elif out is not y:
        calls.add(np.copyto, out, y)
    return out


def _bias_act_calls(calls: _Calls, y: np.ndarray, b: Optional[np.ndarray],
                    activation: Optional[str], out: Optional[np.ndarray] = None) -> np.ndarray:
    """Add the calls of `_bias_act`; returns the result array."""
    if b is not None:
        calls.add(np.add, y, b.astype(F32, copy=False), out=y)
    return _activate_calls(calls, y, activation, out)


# -- convolution ---------------------------------------------------------------------------

# Depthwise work goes in row blocks of about this many float32 output elements: einsum runs
# fastest on large blocks (measured on x86-64 for MobileNet shapes).
CHUNK_ELEMENTS = 1 << 20
# GEMM convs that copy per block (im2col, or a 1x1 conv writing a padded output) run in blocks
# of output rows of about this many elements (copy, one BLAS call, bias and activation per
# block): small enough that the epilogue finds the block in cache, large enough for BLAS to run
# at speed (measured on x86-64 for MobileNets). Other 1x1 convs are one matmul.
GEMM_CHUNK_ELEMENTS = 1 << 18


def _border_views(out: np.ndarray, pads: tuple) -> list:
    """The (top, left, bottom, right) borders of C-contiguous NHWC `out`, as few views as
    possible: the right border of a row and the left border of the next one are adjacent in
    memory, so are the top border and the first left one, the last right one and the bottom."""
    pt, pl, pb, pr = pads
    n, hp, wp, c = out.shape
    h, w = hp - pt - pb, wp - pl - pr
    if h <= 0 or w <= 0:
        return [out]
    flat = out.reshape(n, hp * wp * c)
    first, last = (pt * wp + pl) * c, ((pt + h - 1) * wp + pl + w) * c  # image start, end
    right = first + w * c  # the right border of the first row
    rows = flat[:, right:right + (h - 1) * wp * c].reshape(n, h - 1, wp * c)[:, :, :(pr + pl) * c]
    return [flat[:, :first], rows, flat[:, last:]]


def _fill_border_calls(calls: _Calls, out: np.ndarray, pads: tuple, value: float = 0.0) -> None:
    """Add the calls that set the (top, left, bottom, right) borders of NHWC `out` to `value`."""
    for v in _border_views(out, pads):
        if v.size:
            calls.add(v.fill, value)


def _pad_nhwc(x: np.ndarray, pads: tuple, value: float = 0.0) -> np.ndarray:
    """x with (top, left, bottom, right) borders of `value` (x itself when pads are zero)."""
    calls = _Calls()
    xp = _pad_calls(calls, x, pads, value, scratch=False)
    calls.run_once()
    return xp


def _pad_calls(calls: _Calls, x: np.ndarray, pads: tuple, value: float = 0.0,
               scratch: bool = True) -> np.ndarray:
    """Add the calls of `_pad_nhwc`; the padded array is a scratch array of `calls` unless
    `scratch` is False."""
    pt, pl, pb, pr = pads
    if not any(pads):
        return x
    n, h, w, c = x.shape
    shape = (n, h + pt + pb, w + pl + pr, c)
    out = calls.temp(shape, x.dtype) if scratch else _empty(shape, x.dtype)
    _fill_border_calls(calls, out, pads, value)
    calls.add(np.copyto, out[:, pt:pt + h, pl:pl + w, :], x)
    return out


# A depthwise conv with horizontal stride 2 reads every other pixel of a row: einsum's inner loop
# then runs over the channels of one pixel only, at half the speed. On wide images the 1x1 conv
# that feeds it (MobileNet's expand) writes instead the column-split form of its padded output,
# (N, Hp, 2, ceil(Wp/2), C) with split[:, :, p, q] = padded[:, :, 2q + p]: the even and the odd
# columns, each as rows of adjacent pixels. It computes them in that order from its input
# pixels reordered, in the copy it makes anyway (which changes the rounding of the GEMM, in the
# last bit, from an unsplit run's). Narrow images gain nothing.
SPLIT_MIN_WIDTH = 24


def _split_cols(pl: int, w: int, p: int) -> tuple:
    """Where the columns of a w-wide image padded by pl on the left land in phase p of the split
    form: (first image column x0, its column q0 in the phase, count m); they are x0, x0 + 2..."""
    x0 = (p - pl) % 2
    return x0, (x0 + pl) // 2, max(0, (w - x0 + 1) // 2)


def _split_output(calls: _Calls, n: int, h: int, w: int, c: int, pads: tuple) -> tuple:
    """The split form of an h x w image padded by `pads`, its borders zeroed by the calls, and
    its image columns per phase: (array, [(x0, q0, m, view of the phase's image columns)])."""
    pt, pl, pb, pr = pads
    y = _empty((n, h + pt + pb, 2, (w + pl + pr + 1) // 2, c))
    runs = []
    for p in (0, 1):
        x0, q0, m = _split_cols(pl, w, p)
        plane = y[:, :, p]
        for v in (plane[:, :pt], plane[:, pt + h:], plane[:, pt:pt + h, :q0],
                  plane[:, pt:pt + h, q0 + m:]):
            if v.size:
                calls.add(v.fill, 0)
        runs.append((x0, q0, m, plane[:, pt:pt + h, q0:q0 + m]))
    return y, runs


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


def _gemm_output(calls: _Calls, n: int, ho: int, wo: int, o: int, out_pads: tuple
                 ) -> np.ndarray:
    """The output array of `_conv_gemm_calls`, with zero borders `out_pads`."""
    pt, pl, pb, pr = out_pads
    y = _empty((n, ho + pt + pb, wo + pl + pr, o))
    _fill_border_calls(calls, y, out_pads)
    return y


def _conv_gemm_calls(calls: _Calls, xp: np.ndarray, w: np.ndarray, b, strides, dilations,
                     ho: int, wo: int, activation, cache: Optional[dict] = None, out_pads=None,
                     out_split: bool = False) -> np.ndarray:
    """groups == 1: im2col (a 1x1 kernel needs none) and one BLAS matmul per block of output
    rows, whose activation is applied while it is in cache. The bias rides in the matmul, as the
    weight row of an all-ones column of the patch matrix, where the patches are copied anyway
    (im2col) or the output is larger than the input (expanding 1x1 conv): cheaper than a pass
    over the output. With `out_pads` (top, left, bottom, right) the output comes zero-padded
    by those borders, and with `out_split` (a 1x1 conv only) in column-split form (see
    `SPLIT_MIN_WIDTH`). Adds the calls; returns the output."""
    n = xp.shape[0]
    o, kh, kw, c = w.shape
    k_len = kh * kw * c
    out_pads = tuple(out_pads or (0, 0, 0, 0))
    pt, pl, pb, pr = out_pads
    direct = kh == kw == 1 and strides == (1, 1) and xp.flags.c_contiguous
    if out_split and not direct:
        raise GraphError("conv2d: only a 1x1 conv with stride 1 writes a column-split output")
    order = None
    if out_split:
        y, runs = _split_output(calls, n, ho, wo, o, out_pads)
        # a block's columns: first the even padded columns, then the odd ones
        starts = (0, runs[0][2])
        order = [(x0, s0, m) for (x0, _, m, _), s0 in zip(runs, starts)]
        parts = [(slice(s0, s0 + m), dst) for (_, _, m, dst), s0 in zip(runs, starts)]
    else:
        y = _gemm_output(calls, n, ho, wo, o, out_pads)
    b = None if b is None else b.astype(F32, copy=False)
    bias_row = b is not None and (not direct or o > c)
    wmat = _gemm_weights(w, b if bias_row else None, cache)
    # the bias of a block otherwise, tiled along an output row for long inner loops
    brow = None if b is None or bias_row else _cached(cache, ("bias", wo), np.tile, b, wo)
    # a block is written straight into y when its rows are contiguous there, else via tmp
    in_place = pl == pr == 0 and not out_split
    rows = max(1, GEMM_CHUNK_ELEMENTS // (wo * max(o, k_len)))
    if direct and in_place:
        rows = ho
    tmp = None if in_place else calls.temp((min(rows, ho) * wo, o))
    patch_block = _patch_source(calls, xp, kh, kw, strides, dilations, ho, wo, min(rows, ho),
                                bias_row, direct, order)
    for k in range(n):
        for r0 in range(0, ho, rows):
            r1 = min(ho, r0 + rows)
            if tmp is None:
                out = y[k, pt + r0:pt + r1, pl:pl + wo]
            else:
                out = tmp[:(r1 - r0) * wo].reshape(r1 - r0, wo, o)
            calls.add(np.matmul, patch_block(k, r0, r1), wmat,
                      out=out.reshape((r1 - r0) * wo, o))
            if brow is not None:
                flat = out.reshape(r1 - r0, wo * o)
                calls.add(np.add, flat, brow, out=flat)
            if tmp is None:
                _activate_calls(calls, out, activation)
            elif out_split:
                for cols_, dst in parts:
                    _activate_calls(calls, out[:, cols_], activation, dst[k, r0:r1])
            else:  # the activation pass copies the block into place
                _activate_calls(calls, out, activation, y[k, pt + r0:pt + r1, pl:pl + wo])
    return y


def _patch_source(calls: _Calls, xp: np.ndarray, kh: int, kw: int, strides, dilations, ho: int,
                  wo: int, rows: int, ones: bool, direct: bool, order=None) -> Callable:
    """A function (k, r0, r1) -> the patch matrix of output rows r0..r1-1 of image k,
    ((r1 - r0) * Wo, KH*KW*C), with an extra last column of ones if `ones`; it adds the calls
    that copy the patches (im2col) into a scratch array of at most `rows` output rows. A
    `direct` 1x1 conv reads its input itself, or a copy of it beside the column of ones and/or
    with the pixels of every row reordered: `order` [(x0, s0, m)] puts the input columns x0,
    x0 + 2, ... (m of them) at s0, s0 + 1, ..."""
    n, _, _, c = xp.shape
    k_len = kh * kw * c
    if direct:
        a = xp.reshape(n * ho * wo, c)
        if ones or order:
            a1 = _ones_column(calls, n * ho * wo, c) if ones else calls.temp((n * ho * wo, c))
            if order:
                a1v = a1.reshape(n, ho, wo, c + ones)
                for x0, s0, m in order:
                    calls.add(np.copyto, a1v[:, :, s0:s0 + m, :c], xp[:, :, x0::2])
            else:
                calls.add(np.copyto, a1[:, :c], a)
            a = a1
        return lambda k, r0, r1: a[(k * ho + r0) * wo:(k * ho + r1) * wo]
    (sh, sw), (dh, dw) = strides, dilations
    s_n, s_row, s_px, s_ch = xp.strides
    if kw * c >= wo:
        # a row of patches is KH runs of KW*C adjacent floats (dilation 1): copy it as such
        patches = _patches(xp, kh, kw, strides, dilations, ho, wo)
        cols = _ones_column(calls, rows * wo, k_len) if ones else calls.temp((rows * wo, k_len))

        def block(k, r0, r1):
            dst = cols[:(r1 - r0) * wo]
            calls.add(np.copyto, dst[:, :k_len].reshape(patches[k, r0:r1].shape),
                      patches[k, r0:r1])
            return dst
        return block
    # few channels (an image): the copy runs faster over the output pixels of a row, into the
    # transposed patch matrix (a transposed operand costs BLAS nothing)
    cols_t = calls.temp((k_len + ones, rows * wo))
    if ones:
        calls.add(cols_t[k_len].fill, 1)

    def block_t(k, r0, r1):
        dst = cols_t[:, :(r1 - r0) * wo]
        src = np.lib.stride_tricks.as_strided(
            xp[k, r0 * sh:], shape=(kh, kw, c, r1 - r0, wo),
            strides=(s_row * dh, s_px * dw, s_ch, s_row * sh, s_px * sw), writeable=False)
        calls.add(np.copyto, dst[:k_len].reshape(src.shape), src)
        return dst.T
    return block_t


def _cached(cache: Optional[dict], key, fn: Callable, *args):
    """fn(*args), kept in `cache` under `key` (data derived from constant weights; the key
    names what else it depends on)."""
    value = None if cache is None else cache.get(key)
    if value is None:
        value = fn(*args)
        if cache is not None:
            cache[key] = value
    return value


def _gemm_weights(w: np.ndarray, b, cache: Optional[dict]) -> np.ndarray:
    """The (K, O) weight matrix of a GEMM conv, with the bias `b` as an extra last row unless b
    is None (kept in `cache`)."""
    o = w.shape[0]
    if b is None:
        return w.reshape(o, -1).T
    return _cached(cache, "gemm_weights_bias",
                   lambda: np.concatenate([w.reshape(o, -1).T, b[None, :]], axis=0))


def _ones_column(calls: _Calls, rows: int, k: int) -> np.ndarray:
    """A scratch (rows, k + 1) patch matrix whose last column is ones."""
    a = calls.temp((rows, k + 1))
    calls.add(a[:, k:].fill, 1)
    return a


def _depthwise_plan(w: np.ndarray, b, sw: int, wo: int, split: bool = False) -> tuple:
    """What depthwise needs from the constant weights for an output row of `wo` pixels: the tap
    weights tiled along the row, as one array per einsum of `_depthwise_calls`, and the bias
    tiled likewise (Wo*O,). The weights are (KH, KW, Wo, O); with stride sw == 1 the last two
    axes are merged into one of Wo*O, and for a `split` input they are two such arrays, of the
    even and of the odd taps of a row."""
    o, kh, kw, _ = w.shape
    wrow = np.ascontiguousarray(np.broadcast_to(w[:, :, :, 0].transpose(1, 2, 0)[:, :, None, :],
                                                (kh, kw, wo, o)))
    brow = None if b is None else np.tile(b.astype(F32, copy=False), wo)
    if split:
        wrow = wrow.reshape(kh, kw, wo * o)
        return [np.ascontiguousarray(wrow[:, p::2]) for p in range(min(kw, 2))], brow
    return [wrow.reshape(kh, kw, wo * o) if sw == 1 else wrow], brow


def _depthwise_calls(calls: _Calls, x: np.ndarray, pads: tuple, w: np.ndarray, b,
                     multiplier: int, strides, dilations, ho: int, wo: int, activation,
                     plan: Optional[tuple] = None) -> np.ndarray:
    """Depthwise conv (output channel k reads input channel k // multiplier); x may be the
    padded input in column-split form (5-D, `pads` zero; see `SPLIT_MIN_WIDTH`). Adds the
    calls; returns the output.

    All the kernel taps of a block of output rows are one strided view of the padded input,
    (rows, KH, KW, Wo, C), that one `einsum` multiplies by the tap weights (tiled along the
    row) and sums, with no temporaries and no copy of the input besides the padding. With
    horizontal stride 1 the pixels of a row are adjacent, so (Wo, C) is one contiguous run of
    Wo*C floats and einsum's inner loop runs over all of it; so it is in each column phase of a
    split input, where the even taps (one einsum) and the odd taps (another, added) read
    adjacent pixels. Bias and activation are applied per block of rows. `plan` is
    `_depthwise_plan(...)` when the caller keeps it between calls."""
    if multiplier > 1:
        n, h, wd, c = x.shape
        xr = calls.temp((n, h, wd, c * multiplier))
        calls.add(np.copyto, xr.reshape(n, h, wd, c, multiplier), x[..., None])
        x = xr
    (sh, sw), (dh, dw) = strides, dilations
    n, o = x.shape[0], w.shape[0]
    split = x.ndim == 5
    wrows, brow = plan if plan is not None else _depthwise_plan(w, b, sw, wo, split)
    xp = _pad_calls(calls, x, pads) if not split else x
    if not xp.flags.c_contiguous:
        xp = _copy_calls(calls, xp)
    if split:
        s_n, s_row, s_phase, s_px, s_ch = xp.strides
        taps = [(0, s_px), (s_phase, s_px)]  # (offset, stride) of the even taps, the odd taps
    else:
        s_n, s_row, s_px, s_ch = xp.strides
        taps = [(0, s_px * dw)]
    y = _empty((n, ho, wo, o))
    if wrows[0].ndim == 3:  # the pixels of a row are adjacent: one run of Wo*O floats
        row_shape, row_strides, subscripts = (wo * o,), (s_ch,), "rijk,ijk->rk"
    else:
        row_shape, row_strides, subscripts = (wo, o), (s_px * sw, s_ch), "rijxc,ijxc->rxc"
    yr = y.reshape((n, ho) + row_shape)
    rows = _rows_per_block(wo * o)
    tmp = calls.temp((min(rows, ho),) + row_shape) if len(wrows) > 1 else None
    for k in range(n):
        for r0 in range(0, ho, rows):
            r1 = min(ho, r0 + rows)
            acc = yr[k, r0:r1]
            for g, ((offset, s_tap), wg) in enumerate(zip(taps, wrows)):
                # view[r, i, j, ...]: the input pixels of tap (i, j) for output row r0 + r
                view = np.ndarray((r1 - r0,) + wg.shape[:2] + row_shape, F32, xp,
                                  k * s_n + r0 * sh * s_row + offset,
                                  (s_row * sh, s_row * dh, s_tap) + row_strides)
                if g == 0:
                    calls.add(_einsum, subscripts, view, wg, out=acc)
                else:
                    calls.add(_einsum, subscripts, view, wg, out=tmp[:r1 - r0])
                    calls.add(np.add, acc, tmp[:r1 - r0], out=acc)
            _bias_act_calls(calls, acc.reshape(r1 - r0, wo * o), brow, activation)
    return y


def _copy_calls(calls: _Calls, x: np.ndarray) -> np.ndarray:
    """A scratch C-contiguous copy of x, made by the calls."""
    out = calls.temp(x.shape, x.dtype)
    calls.add(np.copyto, out, x)
    return out


def conv2d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], strides=(1, 1),
           dilations=(1, 1), pads=(0, 0, 0, 0), groups: int = 1,
           activation: Optional[str] = None, cache: Optional[dict] = None,
           out_pads: Optional[tuple] = None) -> np.ndarray:
    """NHWC convolution with OHWI weights (w is (O, KH, KW, C/groups)), optional bias and fused
    activation. `cache`: a dict the caller keeps per node, where data derived from the
    constant weights is kept between calls. `out_pads` (top, left, bottom, right): return the
    output with zero borders of these sizes, for a consumer conv with these pads, which then
    runs with pads 0 and copies nothing (GEMM convs write their output in place)."""
    calls = _Calls()
    y = _conv2d_calls(calls, x, w, b, strides, dilations, pads, groups, activation, cache,
                      out_pads)
    calls.run_once()
    return y


def _conv2d_calls(calls: _Calls, x: np.ndarray, w: np.ndarray, b, strides, dilations, pads,
                  groups: int, activation, cache: Optional[dict], out_pads,
                  out_split: bool = False) -> np.ndarray:
    """Add the calls of `conv2d` (which see); returns its output array. `out_split`: the output
    in column-split form (a 1x1 conv only). x may be such an output, for a depthwise conv with
    horizontal stride 2, dilation 1, an odd kernel width and pads zero."""
    x = _as_f32_calls(calls, x)
    w = w.astype(F32, copy=False)
    o, kh, kw, ig = w.shape
    if x.ndim == 5:  # column-split: its width may have gained a spare column, which odd kernels
        n, h, _, wq, c = x.shape  # with stride 2 never reach
        wd = 2 * wq
        if not (ig == 1 and groups == c == o and strides[1] == 2 and dilations[1] == 1 and
                kw % 2 == 1 and not any(pads)):
            raise GraphError("conv2d: a column-split input needs a depthwise conv with "
                             "horizontal stride 2, dilation 1, an odd kernel width and no pads")
    else:
        n, h, wd, c = x.shape
    (sh, sw), (dh, dw) = strides, dilations
    pt, pl, pb, pr = pads
    ho = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if ig == 1 and groups == c and c > 1:
        plan = _cached(cache, ("depthwise", sw, wo, x.ndim), _depthwise_plan, w, b, sw, wo,
                       x.ndim == 5)
        y = _depthwise_calls(calls, x, pads, w, b, o // c, strides, dilations, ho, wo,
                             activation, plan)
    elif groups == 1:
        xp = _pad_calls(calls, x, pads)
        return _conv_gemm_calls(calls, xp, w, b, strides, dilations, ho, wo, activation, cache,
                                out_pads, out_split)
    else:
        y = _grouped_calls(calls, _pad_calls(calls, x, pads), w, b, groups, strides, dilations,
                           ho, wo, activation)
    if out_split:
        raise GraphError("conv2d: only a 1x1 conv with stride 1 writes a column-split output")
    if not any(out_pads or (0, 0, 0, 0)):
        return y
    calls.scratch.append(y)
    return _pad_calls(calls, y, out_pads, scratch=False)


def _grouped_calls(calls: _Calls, xp: np.ndarray, w: np.ndarray, b, groups: int, strides,
                   dilations, ho: int, wo: int, activation) -> np.ndarray:
    """A grouped conv as one GEMM conv per group."""
    n, o, ig = xp.shape[0], w.shape[0], w.shape[3]
    og = o // groups
    y = _empty((n, ho, wo, o))
    for g in range(groups):
        bg = None if b is None else b[g * og:(g + 1) * og]
        xg = _copy_calls(calls, xp[..., g * ig:(g + 1) * ig])
        yg = _conv_gemm_calls(calls, xg, w[g * og:(g + 1) * og], bg, strides, dilations, ho, wo,
                              activation)
        calls.scratch.append(yg)
        calls.add(np.copyto, y[..., g * og:(g + 1) * og], yg)
    return y


# -- dense ---------------------------------------------------------------------------------

def fully_connected(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
                    activation: Optional[str] = None) -> np.ndarray:
    """x (N, K) @ w.T for w (O, K), plus bias, then the fused activation."""
    y = x.astype(F32, copy=False) @ w.astype(F32, copy=False).T
    return _bias_act(y, b, activation)


def _as_f32_calls(calls: _Calls, x: np.ndarray) -> np.ndarray:
    """x, or a float32 copy made by the calls (not once: x may be a buffer of a prepared run)."""
    if x.dtype == F32:
        return x
    out = calls.temp(x.shape)
    calls.add(np.copyto, out, x, casting="unsafe")
    return out


def _fc_calls(calls: _Calls, x: np.ndarray, w: np.ndarray, b, activation) -> np.ndarray:
    """Add the calls of `fully_connected`; returns its output array."""
    x = _as_f32_calls(calls, x)
    y = _empty(x.shape[:-1] + (w.shape[0],))
    calls.add(np.matmul, x, w.astype(F32, copy=False).T, out=y)
    return _bias_act_calls(calls, y, b, activation)


def _eltwise_calls(calls: _Calls, fn: Callable, a: np.ndarray, b: np.ndarray, activation
                   ) -> np.ndarray:
    """Add the calls of a float32 binary op fn(a, b) with broadcasting and fused activation."""
    y = _empty(np.broadcast_shapes(a.shape, b.shape))
    calls.add(fn, a, b, out=y)
    return _activate_calls(calls, y, activation)


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy matmul semantics in float32."""
    return np.matmul(a.astype(F32, copy=False), b.astype(F32, copy=False))


def _eltwise(fn: Callable) -> Callable:
    def run(a, b, activation=None):
        a, b = a.astype(F32, copy=False), b.astype(F32, copy=False)
        y = fn(a, b, out=_empty(np.broadcast_shapes(a.shape, b.shape)))
        return _activate(y, activation)
    return run


_ELTWISE = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


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
    return fold_scale_shift(w, b, s, beta.astype(np.float64) - mean.astype(np.float64) * s)


def fold_scale_shift(w: np.ndarray, b: Optional[np.ndarray], scale, shift) -> tuple:
    """Weights and bias of conv2d (OHWI) or fully_connected ((O, K)) followed by y * scale + shift
    (per output channel; scale None = 1, shift None = 0), as one op: w * scale and b * scale +
    shift, computed in float64 and rounded once to float32."""
    n = w.shape[0]
    s = np.ones(n) if scale is None else np.broadcast_to(np.asarray(scale, np.float64), (n,))
    t = np.zeros(n) if shift is None else np.broadcast_to(np.asarray(shift, np.float64), (n,))
    w2 = (w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(F32)
    b0 = np.zeros(n) if b is None else b.astype(np.float64)
    return w2, (b0 * s + t).astype(F32)


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
    __slots__ = ("node", "nodes", "args", "fused", "cache", "out_pads", "in_padded", "pads_for")

    def __init__(self, node: Node, nodes: list, args: list, fused: bool):
        self.node, self.nodes, self.args, self.fused = node, nodes, args, fused
        self.cache: dict = {}
        self.out_pads: Optional[tuple] = None  # conv2d: pad the output for its one consumer
        self.in_padded = False  # conv2d: the input arrives padded by the producer
        self.pads_for: Optional[_Step] = None  # conv2d: the consumer that out_pads are for


def _splits_for(step: _Step, x: np.ndarray) -> bool:
    """Whether fused conv2d `step`, run on x, writes its output in column-split form for the
    consumer it pads for (see `SPLIT_MIN_WIDTH`): a 1x1 conv with stride 1 on a wide image,
    feeding a depthwise conv with horizontal stride 2, dilation 1 and an odd kernel width."""
    nxt = step.pads_for
    if nxt is None or step.args[1].shape[1:3] != (1, 1) or step.node.attrs["strides"] != (1, 1) \
            or x.ndim != 4 or not x.flags.c_contiguous:
        return False
    a, w = nxt.node.attrs, nxt.args[1]
    kw, (_, pl, _, pr) = w.shape[2], a["pads"]
    wo = (x.shape[2] + pl + pr - kw) // 2 + 1
    return (a["groups"] == w.shape[0] == step.args[1].shape[0] and w.shape[3] == 1 and
            a["strides"][1] == 2 and a["dilations"][1] == 1 and kw % 2 == 1 and
            wo >= SPLIT_MIN_WIDTH)


class NeonRunner:
    """Runs a whole graph on the CPU.

    With `fuse` (default) the runner executes conv2d / fully_connected + batch_norm + relu/relu6
    chains as one kernel call (batch norm folded into the weights by `fold_batch_norm`, the
    activation applied in the conv's epilogue); `run(..., keep=True)` always runs node by node
    so that every intermediate tensor exists. Other runs replay calls prepared on the runner's
    buffers (see `run`); a runner may be shared by threads (one of them replays, the others run
    with buffers of their own)."""

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
        self._prepared: dict = {}  # input (name, shape, dtype)s -> _Prepared
        self._lock = threading.Lock()  # held while a prepared run uses the runner's buffers

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
            # only GEMM convs write their blocks into a padded output at no extra cost
            if st.node.attrs["groups"] != 1:
                continue
            out = st.node.outputs[0]
            consumers = users.get(out, [])
            if out in self._outputs or len(consumers) != 1:
                continue
            nxt = consumers[0]
            if nxt in convs and nxt.args[0] == out and any(nxt.node.attrs["pads"]):
                st.out_pads = tuple(nxt.node.attrs["pads"])
                nxt.in_padded = True
                st.pads_for = nxt

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
        graph outputs by tensor name (arrays of the caller's own), or every tensor (inputs and
        intermediates too) when `keep` is True.

        The first run with given input shapes prepares every kernel's numpy calls on buffers
        of the runner (`_Calls`); later runs copy the feeds into those buffers and replay the
        calls, which saves the Python work of choosing them (milliseconds per MobileNet)."""
        feeds = {t: np.asarray(a) for t, a in feeds.items()}
        for spec in self.graph.inputs:
            if spec.tensor not in feeds:
                raise GraphError(f"no value fed for graph input {spec.tensor!r}")
        if keep:  # the caller keeps every array: none of them may come from the runner's pool
            return self._execute(self._plain, feeds, keep=True, pool=BufferPool())
        if not self._lock.acquire(blocking=False):
            # another thread is replaying calls on this runner's buffers: run apart from it
            return self._execute(self._fused, feeds, pool=BufferPool())
        try:
            key = tuple((t, a.shape, a.dtype.str) for t, a in sorted(feeds.items()))
            prepared = self._prepared.get(key)
            if prepared is None:
                prepared = _Prepared()
                outputs = self._execute(self._fused, feeds, prepared=prepared)
                self._keep_prepared(key, prepared)
                return outputs
            for t, buf in prepared.inputs:
                np.copyto(buf, feeds[t])
            _replay(prepared.calls)
            return {t: y.copy() for t, y in prepared.outputs.items()}
        finally:
            self._lock.release()

    # prepared runs kept, for as many sets of input shapes (the oldest goes first)
    MAX_PREPARED = 4

    def _keep_prepared(self, key: tuple, prepared: _Prepared) -> None:
        self._prepared[key] = prepared
        while len(self._prepared) > self.MAX_PREPARED:
            old = self._prepared.pop(next(iter(self._prepared)))
            for y in old.outputs.values():  # the rest of its memory is the pool's already
                self._pool.put(y)

    def _execute(self, steps: list, feeds: dict, keep: bool = False,
                 pool: Optional[BufferPool] = None, prepared: Optional[_Prepared] = None
                 ) -> dict:
        """Run `steps` once on `feeds`, with buffers from `pool` (default: the runner's); see
        `run`. With `prepared`, the feeds are copied into buffers of the runner and every
        kernel's calls are kept in `prepared` for later runs."""
        last_use = self._last_use[id(steps)]
        previous = getattr(_local, "pool", None)
        _local.pool = self._pool if pool is None else pool
        try:
            env, fed = dict(feeds), {id(a) for a in feeds.values()}
            if prepared is not None:
                for t, a in feeds.items():  # the runner's copy: later runs overwrite it
                    env[t] = _empty(a.shape, a.dtype)
                    np.copyto(env[t], a)
                    prepared.inputs.append((t, env[t]))
                fed = set()
            for k, st in enumerate(steps):
                calls = _Calls()
                outs = self._step_calls(calls, st, env, prepared is not None)
                calls.run_once()
                if prepared is not None:
                    prepared.calls.extend(calls.each)
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
        outputs = {t: env[t] for t in self._outputs}
        if prepared is None:
            return outputs
        prepared.outputs = outputs
        return {t: y.copy() for t, y in outputs.items()}

    def _step_calls(self, calls: _Calls, st: _Step, env: dict, prepare: bool) -> list:
        """Add the calls of one step to `calls`; returns its output arrays. A node without a
        kernel of calls runs now through `run_node` (`calls.executed`); when `prepare`, its
        outputs are then copied into buffers, and so are they in later runs."""
        g = self.graph
        a = st.node.attrs
        if st.fused and st.node.op == "conv2d":
            x, w, b = st.args
            pads = (0, 0, 0, 0) if st.in_padded else a["pads"]
            return [_conv2d_calls(calls, env[x], w, b, a["strides"], a["dilations"], pads,
                                  a["groups"], a["activation"], st.cache, st.out_pads,
                                  _splits_for(st, env[x]))]
        if st.fused:  # fully_connected
            x, w, b = st.args
            return [_fc_calls(calls, env[x], w, b, a["activation"])]
        ins = [env[t] if t in env else g.constants[t] for t in st.args]
        fn = _ELTWISE.get(st.node.op)
        if fn is not None and len(ins) == 2 and all(i.dtype == F32 for i in ins) and \
                not g.node_quantized(st.node):
            return [_eltwise_calls(calls, fn, ins[0], ins[1], a["activation"])]
        if not prepare:
            calls.executed = True
            return run_node(g, st.node, ins)
        # the kernel's own arrays are garbage once copied: not from the pool
        pool, _local.pool = _local.pool, None
        try:
            outs = run_node(g, st.node, ins)
        finally:
            _local.pool = pool
        calls.executed = True
        bufs = [_empty(y.shape, y.dtype) for y in outs]
        for buf, y in zip(bufs, outs):
            np.copyto(buf, y)
        calls.add(_run_node_into, g, st.node, ins, bufs)
        return bufs

    def _release(self, arr: np.ndarray, env: dict, fed: set) -> None:
        """Give a dead tensor's memory to the pool unless the caller owns it or a live tensor
        still views it."""
        if not isinstance(arr, np.ndarray) or id(arr) in fed or id(arr) in self._constant_ids:
            return
        if _local.pool.block_of(arr) is None and arr.base is not None:
            return  # a view of some other array
        memory = _memory_of(arr)
        if any(_memory_of(v) is memory for v in env.values() if isinstance(v, np.ndarray)):
            return
        _local.pool.put(arr)


def _memory_of(arr: np.ndarray):
    """The object that owns the memory of `arr` (arrays that share memory share it)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr if arr.base is None else arr.base


class _Prepared:
    """A runner's prepared run for one set of input shapes: its input buffers [(tensor,
    array)], the calls of all its kernels, and its output arrays {tensor: array}."""
    __slots__ = ("inputs", "calls", "outputs")

    def __init__(self):
        self.inputs: list = []
        self.calls: list = []
        self.outputs: dict = {}


def _run_node_into(graph: Graph, node: Node, inputs: list, outs: list) -> None:
    """`run_node`, its outputs copied into the arrays `outs` (a prepared run's buffers)."""
    for buf, y in zip(outs, run_node(graph, node, inputs)):
        if y.shape != buf.shape:
            raise GraphError(f"node {node.name!r}: output shape {y.shape} differs from the "
                             f"prepared {buf.shape}: the runner needs static shapes")
        np.copyto(buf, y)


def run(graph: Graph, feeds: dict, keep: bool = False) -> dict:
    """Convenience: `NeonRunner(graph).run(feeds, keep)`."""
    return NeonRunner(graph).run(feeds, keep)
