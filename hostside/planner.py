"""Buffer placement: every activation tensor of a scheduled graph gets a byte offset in ONE GPU
arena, every packed weight blob a byte offset in a separate weights arena.

Activation arena
----------------
Steps are the graph's nodes in order (index 0..n-1); graph inputs are written before step 0
(index -1), graph outputs are read after the last step (index n). A tensor lives from the step
that writes it to the last step that reads it, both ends included: a step reads its inputs while
it writes its output, so those must not share bytes unless the op says it may (`in_place`).

Tensors that share bytes form one *buffer*:
- a view op (`is_view(node)`, by default `reshape`) gives its output the input's buffer;
- an op may write its output over input i when `in_place(node)` lists i, the input's buffer is
  not read after this step, and the sizes are equal.

Pixel pitch
-----------
A 4-D float32 tensor (NHWC) is stored pixel after pixel; `pixel_pitch_bytes` is the distance
between two pixels: C * 4 bytes, plus one 64-byte line when C * 4 is an even number of lines.
The QPU kernels gather one channel of 16 consecutive pixels in one TMU request, and the two QPUs
that share a TMU gather 32 neighbouring pixels; at a pitch of an even number of lines those
addresses fall into fewer sets of the TMU's 4 KiB direct-mapped L1 cache (64 lines of 64 bytes)
and evict each other on every request (at 2**k lines: into 64 / 2**k sets). At an odd number of
lines any 64 consecutive pixels fall into 64 different sets. Only tensors that the caller allows
(`pitched`; not those of views, whose bytes must be dense) are padded; kernels read the pitch
from the strides of their operands' views.

Halo
----
A tensor may be stored inside a border of pixels (`halos`: top, left, bottom, right), part of
its buffer and reserved with it: a kernel that reads its padding as memory (qpu_kernels.conv_stem)
then needs no edge cases. The planner only reserves the bytes; whoever writes the tensor writes
the border (the host writes zeros around a graph input, with the image).

Buffers are placed greedily, each at an aligned gap among the already placed buffers whose
lifetimes overlap its own; a few orders (largest first, the "greedy by size" assignment;
longest-lived first; step order) with best or first fit are tried and the smallest arena kept.
`Plan.lower_bound_bytes` (the most bytes live at any one step) bounds every placement from below;
`Plan.naive_bytes` is what one buffer per tensor would take.

Weights arena
-------------
`plan_weights` lays packed blobs one after the other at aligned offsets (they all live forever).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from vc4infer.errors import GraphError
from vc4infer.graph.ir import Graph, Node

#: default offset alignment: one VPM row of 16 32-bit words (also two ARM cache lines)
DEFAULT_ALIGN_BYTES = 64


def _round_up(n: int, align: int) -> int:
    return -(-n // align) * align


def default_is_view(node: Node) -> bool:
    """reshape (passes.canonical_views turns every view op into one) reuses its input's bytes."""
    return node.op in ("reshape", "flatten", "squeeze", "unsqueeze")


#: TMU cache line (the hardware's, from the vc4asm addendum; vc4infer.emu.timing models it)
_LINE_BYTES = 64


def pixel_pitch_bytes(shape: Sequence[int], itemsize: int) -> int:
    """Bytes from one pixel of an NHWC tensor to the next (see "Pixel pitch" above)."""
    row = int(shape[-1]) * itemsize
    if len(shape) != 4 or itemsize != 4 or row % _LINE_BYTES or (row // _LINE_BYTES) % 2:
        return row
    return row + _LINE_BYTES


def storage_shape(shape: Sequence[int], halo: Optional[Sequence[int]] = None) -> tuple:
    """The shape a tensor's buffer holds: an NHWC `shape` grown by its halo."""
    if not halo:
        return tuple(shape)
    n, h, w, c = shape
    top, left, bottom, right = halo
    return (n, h + top + bottom, w + left + right, c)


def storage_bytes(shape: Sequence[int], itemsize: int, pitch: int) -> int:
    """Bytes a tensor of `shape` takes with `pitch` bytes per last-axis row."""
    rows = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
    return rows * pitch if len(shape) else itemsize


@dataclass
class Buffer:
    """Bytes shared by one or more tensors over [first, last] steps."""
    tensors: list
    nbytes: int
    first: int
    last: int
    offset: int = -1

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class Plan:
    """Where every activation tensor lives in the arena."""
    offsets: dict                 # tensor name -> byte offset
    nbytes: dict                  # tensor name -> bytes (with its pitch)
    buffers: list                 # Buffer objects (placed)
    arena_bytes: int
    naive_bytes: int              # sum of all tensors (one buffer each, views excluded)
    lower_bound_bytes: int        # max over steps of the bytes live at that step
    align: int
    in_place: dict = field(default_factory=dict)   # node name -> input tensor it overwrites
    pitches: dict = field(default_factory=dict)    # tensor name -> bytes per last-axis row
    halos: dict = field(default_factory=dict)      # tensor name -> (top, left, bottom, right)

    def buffer_of(self, tensor: str) -> Buffer:
        for b in self.buffers:
            if tensor in b.tensors:
                return b
        raise GraphError(f"tensor {tensor!r} is not in the arena plan")


def lifetimes(graph: Graph) -> dict:
    """tensor -> (first step, last step) for every non-constant tensor the steps touch."""
    n = len(graph.nodes)
    life: dict[str, list] = {s.tensor: [-1, -1] for s in graph.inputs}
    for k, node in enumerate(graph.nodes):
        for t in node.inputs:
            if graph.is_constant(t):
                continue
            if t not in life:
                raise GraphError(f"step {k} ({node.name!r}) reads {t!r} before it is written")
            life[t][1] = max(life[t][1], k)
        for t in node.outputs:
            life[t] = [k, k]
    for s in graph.outputs:
        if s.tensor in life:
            life[s.tensor][1] = n
    return {t: tuple(v) for t, v in life.items()}


def _group(graph: Graph, life: dict, is_view: Callable, in_place: Callable, sizes: dict,
           pitches: dict, no_share: set = frozenset()) -> tuple:
    """Buffers (lists of tensors) from views and allowed in-place writes; node -> overwritten."""
    root = {t: t for t in life}
    members = {t: [t] for t in life}
    span = {t: list(v) for t, v in life.items()}
    done_in_place = {}

    def find(t):
        while root[t] != t:
            t = root[t]
        return t

    def join(keep, other):
        a, b = find(keep), find(other)
        if a == b:
            return
        root[b] = a
        members[a] += members.pop(b)
        span[a] = [min(span[a][0], span[b][0]), max(span[a][1], span[b][1])]
        del span[b]

    for k, node in enumerate(graph.nodes):
        y = node.outputs[0]
        if is_view(node) and not graph.is_constant(node.inputs[0]):
            join(node.inputs[0], y)
            continue
        if len(node.outputs) != 1:
            continue
        for i in in_place(node):
            x = node.inputs[i]
            if graph.is_constant(x) or sizes[x] != sizes[y] or pitches[x] != pitches[y] or \
                    x in no_share or y in no_share:
                continue
            bx = find(x)
            others = [t for j, t in enumerate(node.inputs) if j != i and not graph.is_constant(t)]
            # the overwritten buffer must die here, and no other input of this step may live in it
            if span[bx][1] == k and all(find(t) != bx for t in others):
                join(x, y)
                done_in_place[node.name] = x
                break
    return [(members[r], span[r]) for r in members], done_in_place


def _place_in_order(buffers: list, align: int, best_fit: bool) -> int:
    """Each buffer in turn at the lowest (first fit) or tightest (best fit) aligned gap left by
    the already placed buffers that are live at the same time; returns the arena size."""
    placed: list[Buffer] = []
    for buf in buffers:
        size = _round_up(buf.nbytes, align)
        busy = sorted((p.offset, p.offset + _round_up(p.nbytes, align))
                      for p in placed if p.overlaps_in_time(buf))
        best, best_gap, cursor = None, None, 0
        for start, end in busy:
            gap = start - cursor
            if gap >= size and (best_gap is None or (best_fit and gap < best_gap)):
                best, best_gap = cursor, gap
            cursor = max(cursor, end)
        buf.offset = best if best is not None else cursor
        placed.append(buf)
    return max((b.offset + _round_up(b.nbytes, align) for b in buffers), default=0)


# orders to try: largest first (TFLite's "greedy by size"), longest-lived first, in step order
_ORDERS = (lambda b: (-b.nbytes, b.first, b.tensors[0]),
           lambda b: (-(b.last - b.first), -b.nbytes, b.tensors[0]),
           lambda b: (b.first, -b.nbytes, b.tensors[0]))


def _place(buffers: list, align: int) -> int:
    """The smallest arena any of the greedy orders (first or best fit) finds; sets offsets."""
    best_size, best_offsets = None, None
    for order in _ORDERS:
        for best_fit in (True, False):
            size = _place_in_order(sorted(buffers, key=order), align, best_fit)
            if best_size is None or size < best_size:
                best_size, best_offsets = size, [b.offset for b in buffers]
    for b, off in zip(buffers, best_offsets or []):
        b.offset = off
    return best_size or 0


def plan_arena(graph: Graph, in_place: Optional[Callable[[Node], Sequence[int]]] = None,
               is_view: Callable[[Node], bool] = default_is_view,
               align: int = DEFAULT_ALIGN_BYTES,
               pitched: Callable[[str], bool] = lambda tensor: False,
               halos: Optional[dict] = None) -> Plan:
    """Offsets of every activation tensor (graph inputs and outputs included) in one arena.
    `in_place(node)` lists the input indices the node's output may overwrite (default none);
    `pitched(tensor)` whether a tensor may get a padded pixel pitch (never one a view touches);
    `halos` {NHWC tensor: (top, left, bottom, right)} the borders to reserve around tensors."""
    halos = {t: tuple(h) for t, h in (halos or {}).items() if any(h)}
    if align < 1 or align & (align - 1):
        raise ValueError(f"align={align}: give a power of two number of bytes")
    life = lifetimes(graph)
    in_views = {t for node in graph.nodes if is_view(node) for t in (*node.inputs, *node.outputs)}
    pitches, sizes = {}, {}
    for t in life:
        info = graph.tensors[t]
        itemsize = np.dtype(info.dtype).itemsize
        dense = int(info.shape[-1]) * itemsize if len(info.shape) else itemsize
        pitches[t] = (pixel_pitch_bytes(info.shape, itemsize)
                      if t not in in_views and pitched(t) else dense)
        sizes[t] = (storage_bytes(storage_shape(info.shape, halos.get(t)), itemsize, pitches[t])
                    if len(info.shape) else info.nbytes)
    for t in halos:
        if len(graph.tensors[t].shape) != 4 or t in in_views:
            raise GraphError(f"tensor {t!r}: a halo needs an NHWC tensor that no view shares")
    # a halo'd tensor shares its buffer with no other tensor (nothing writes over its border)
    no_share = set(halos)
    groups, done = _group(graph, life, is_view, in_place or (lambda node: ()), sizes, pitches,
                          no_share)
    buffers = [Buffer(ts, max(sizes[t] for t in ts), s[0], s[1]) for ts, s in groups]
    arena = _place(buffers, align)
    offsets = {t: b.offset for b in buffers for t in b.tensors}
    steps = range(-1, len(graph.nodes) + 1)
    lower = max((sum(_round_up(b.nbytes, align) for b in buffers if b.first <= k <= b.last)
                 for k in steps), default=0)
    views = {node.outputs[0] for node in graph.nodes if is_view(node)}
    naive = sum(sizes[t] for t in life if t not in views)
    return Plan(offsets, sizes, buffers, arena, naive, lower, align, done, pitches, halos)


def check_plan(graph: Graph, plan: Plan) -> None:
    """Raise GraphError when two tensors in different buffers overlap both in time and in bytes,
    or an offset is misaligned (used by tests and at load time as a cheap guard)."""
    for b in plan.buffers:
        if b.offset % plan.align:
            raise GraphError(f"buffer of {b.tensors} at offset {b.offset} is not "
                             f"{plan.align}-byte aligned")
        if b.offset + b.nbytes > plan.arena_bytes:
            raise GraphError(f"buffer of {b.tensors} ends past the arena")
    bufs = sorted(plan.buffers, key=lambda b: b.offset)
    for i, a in enumerate(bufs):
        for c in bufs[i + 1:]:
            if c.offset >= a.offset + a.nbytes:
                break
            if a.overlaps_in_time(c):
                raise GraphError(f"tensors {a.tensors} and {c.tensors} share bytes "
                                 f"[{c.offset}, {a.offset + a.nbytes}) while both are live")


@dataclass
class WeightsPlan:
    """Offsets of packed weight blobs in the weights arena."""
    offsets: dict     # blob key -> byte offset
    nbytes: int


def plan_weights(blobs: dict, align: int = DEFAULT_ALIGN_BYTES) -> WeightsPlan:
    """Consecutive aligned offsets for `blobs` (key -> ndarray or byte count), in key order."""
    offsets, cursor = {}, 0
    for key, blob in blobs.items():
        size = int(blob.nbytes) if isinstance(blob, np.ndarray) else int(blob)
        offsets[key] = cursor
        cursor += _round_up(size, align)
    return WeightsPlan(offsets, cursor)
