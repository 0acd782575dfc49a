"""Per op: QPU kernel or NEON fallback, and the steps one inference runs.

At load time `schedule` decides, for every node of a rewritten graph (hostside.passes), where it
runs and why:
- "view": a reshape (`is_view`); the planner gives its output the input's bytes, nothing runs;
- "qpu:<kernel>": the first `KernelChoice` whose kernel module imports and whose constraints the
  node meets; its weights are packed once into the weights arena and its launches (programs
  assembled, uniforms built) are made once;
- "neon (<reason>)": hostside.neon runs the node on the host, reading its inputs from the arena
  and writing its output back; the reason names what no kernel could do.

Per inference each step only runs: `QpuStep` its launches (the kernels tile their work over the
12 QPUs and split launches themselves), `NeonStep` one CPU op between arena views, `ViewStep`
nothing.
"""
from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from hostside import passes
from vc4infer.graph import ops
from vc4infer.graph.ir import Graph, Node


@dataclass
class KernelChoice:
    """How the scheduler uses one QPU kernel module.

    `ops`: IR ops it may run; `reject(graph, node) -> str | None`: why it cannot run this node
    (None: it can); `in_place(graph, node) -> tuple`: node input indices its output may
    overwrite; `pack(module, graph, node) -> dict[str, ndarray]`: weight blobs in the kernel's
    layout; `build(module, drv, graph, node, io, weights) -> list`: the launches (objects with
    `.run(drv)`), given Driver arrays of the node's inputs/outputs (`io`, by tensor name) and of
    its packed blobs (`weights`, by blob key)."""
    name: str
    module: str
    ops: tuple
    reject: Callable[[Graph, Node], Optional[str]]
    pack: Callable[[Any, Graph, Node], dict]
    build: Callable[..., list]
    in_place: Callable[[Graph, Node], tuple] = lambda graph, node: ()
    #: byte alignment the kernel needs for its activation and weight operands
    align: int = 64
    #: `input_halo(graph, node) -> (top, left, bottom, right)`: a border of zeros the kernel
    #: reads around input 0 (the planner reserves it, the host writes it); None: no halo
    input_halo: Optional[Callable[[Graph, Node], tuple]] = None

    def load(self) -> tuple:
        """(module, None) or (None, why it cannot be used)."""
        try:
            return importlib.import_module(self.module), None
        except ModuleNotFoundError as exc:
            if exc.name and self.module.startswith(exc.name):
                return None, f"kernel module {self.module} does not exist"
            raise


@dataclass
class Decision:
    """Where one node runs: place "qpu" | "neon" | "view", the kernel choice (qpu), the module,
    and the reason (neon)."""
    node: Node
    place: str
    choice: Optional[KernelChoice] = None
    module: Any = None
    reason: str = ""

    @property
    def where(self) -> str:
        if self.place == "qpu":
            return f"qpu:{self.choice.name}"
        if self.place == "view":
            return "view (shares its input's bytes)"
        return f"neon ({self.reason})"


def is_view(graph: Graph, node: Node) -> bool:
    """A reshape-like op (passes.VIEW_OPS) whose output means the same bytes as its input (same
    dtype and quantization): it runs as nothing, on its input's bytes."""
    if node.op not in passes.VIEW_OPS or graph.is_constant(node.inputs[0]):
        return False
    a, b = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    if a.dtype != b.dtype or (a.quant is None) != (b.quant is None):
        return False
    return a.quant is None or (np.array_equal(a.quant.scale, b.quant.scale) and
                               np.array_equal(a.quant.zero_point, b.quant.zero_point))


def decide(graph: Graph, node: Node, choices: Sequence[KernelChoice],
           modules: dict) -> Decision:
    """Where `node` runs. `modules` maps a choice name to (module, why unavailable)."""
    if is_view(graph, node):
        return Decision(node, "view")
    if graph.node_quantized(node):
        return Decision(node, "neon", reason="quantized: TFLite integer semantics run on the CPU")
    reasons = []
    for choice in choices:
        if node.op not in choice.ops:
            continue
        module, missing = modules[choice.name]
        if module is None:
            reasons.append(missing)
            continue
        why = choice.reject(graph, node)
        act = node.attrs.get("activation")
        if why is None and act not in getattr(module, "ACTIVATIONS", (act,)):
            why = f"activation {act} (its epilogue fuses {module.ACTIVATIONS})"
        if why is None:
            return Decision(node, "qpu", choice, module)
        reasons.append(f"{choice.name}: {why}")
    if not reasons:
        return Decision(node, "neon", reason=f"no QPU kernel for {node.op}")
    return Decision(node, "neon", reason=_join_reasons(reasons))


def _join_reasons(reasons: list) -> str:
    """"a: x", "b: x", "c: y" -> "a, b: x; c: y" (kernels that refuse for the same reason)."""
    by_text: dict[str, list] = {}
    for r in reasons:
        name, sep, text = r.partition(": ")
        if sep:
            by_text.setdefault(text, []).append(name)
        else:
            by_text.setdefault(r, [])
    return "; ".join(f"{', '.join(names)}: {text}" if names else text
                     for text, names in by_text.items())


def demote(decision: Decision, error: Exception) -> Decision:
    """The NEON decision for a node whose kernel refused its shapes while packing or building."""
    return Decision(decision.node, "neon", reason=f"{decision.choice.name}: {error}")


def schedule(graph: Graph, choices: Sequence[KernelChoice]) -> list:
    """One Decision per node of `graph`, in order."""
    modules = {c.name: c.load() for c in choices}
    return [decide(graph, node, choices, modules) for node in graph.nodes]


def in_place_of(graph: Graph, decisions: list) -> Callable[[Node], tuple]:
    """The planner's in-place rule: what each node's QPU kernel allows; CPU steps may overwrite
    any input of the output's size, since the CPU computes the whole output before writing it
    back (views have their own rule in the planner)."""
    by_node = {id(d.node): d for d in decisions}

    def rule(node: Node) -> tuple:
        d = by_node[id(node)]
        if d.place == "qpu":
            return tuple(d.choice.in_place(graph, node))
        if d.place == "neon":
            return tuple(range(len(node.inputs)))
        return ()
    return rule


# -- steps ---------------------------------------------------------------------------------

class Step(abc.ABC):
    """One unit of per-inference work; `name`, `where`, the node and the original nodes it
    executes (`covers`)."""

    def __init__(self, decision: Decision, covers: list):
        self.decision, self.node, self.covers = decision, decision.node, covers
        self.name, self.where = decision.node.name, decision.where

    @abc.abstractmethod
    def run(self) -> None:
        """Do this step's per-inference work."""

    def reference(self, graph: Graph, inputs: list) -> np.ndarray:
        """The NEON result of this step for `inputs` (one array per node input)."""
        return passes.run_node(graph, self.node, inputs)[0]


class ViewStep(Step):
    """A reshape: the planner placed the output on the input's bytes; nothing to do."""

    def run(self) -> None:
        return None


class NeonStep(Step):
    """A CPU op between arena views: read inputs (views, no copy), compute, write the output."""

    def __init__(self, decision: Decision, covers: list, graph: Graph, inputs: list,
                 output: np.ndarray):
        super().__init__(decision, covers)
        self.graph, self.inputs, self.output = graph, inputs, output

    def run(self) -> None:
        # a pitched input (planner) is gathered first: numpy's kernels then add in the same
        # order as on a dense array, so a CPU step gives the NEON runner's exact bits
        inputs = [np.ascontiguousarray(x) for x in self.inputs]
        (y,) = passes.run_node(self.graph, self.node, inputs)
        np.copyto(self.output, y.reshape(self.output.shape), casting="no")


class QpuStep(Step):
    """Launches made at load time; per inference they only run."""

    def __init__(self, decision: Decision, covers: list, drv: Any, launches: list):
        super().__init__(decision, covers)
        self.drv, self.launches = drv, launches

    def run(self) -> None:
        for launch in self.launches:
            launch.run(self.drv)


# -- kernel choices ------------------------------------------------------------------------

def _const_weights(graph: Graph, node: Node) -> Optional[str]:
    if not all(graph.is_constant(t) for t in node.inputs[1:3]):
        return "its weights are computed tensors, not constants"
    return None


def _gemm_shape(graph: Graph, node: Node) -> tuple:
    """(M, K, N) of the matrix product a 1x1 conv2d or a fully_connected node is."""
    x = graph.tensors[node.inputs[0]].shape
    o = graph.tensors[node.inputs[1]].shape[0]
    if node.op == "conv2d":
        return x[0] * x[1] * x[2], x[3], o
    return x[0], x[1], o


def row_stride(view: np.ndarray) -> int:
    """Bytes between consecutive rows of a tensor seen as a matrix of its last axis (pixels of an
    NHWC tensor, rows of a 2-D one): the planner's pitch, read from the view's strides."""
    if view.ndim < 2:
        return view.itemsize * max(1, view.size)
    pitch = view.strides[-2]
    for axis in range(view.ndim - 2):            # outer axes must step whole rows
        if view.shape[axis] > 1 and view.strides[axis] != pitch * int(np.prod(view.shape[axis + 1:-1])):
            raise ValueError(f"a view of shape {view.shape} with strides {view.strides} is not a "
                             "matrix of evenly spaced rows")
    return pitch


def _sgemm_reject(graph: Graph, node: Node) -> Optional[str]:
    why = _const_weights(graph, node)
    if why:
        return why
    if node.op == "conv2d":
        o, kh, kw, _ = graph.tensors[node.inputs[1]].shape
        a = node.attrs
        if a["groups"] != 1:
            return f"groups={a['groups']} is not one matrix product"
        if (kh, kw) != (1, 1):
            return f"a {kh}x{kw} kernel (a matrix product runs 1x1 convolutions only)"
        if a["strides"] != (1, 1) or any(a["pads"]):
            return f"a strided or padded 1x1 convolution (strides {a['strides']}, pads {a['pads']})"
    k = _gemm_shape(graph, node)[1]
    if k < 2:
        return f"K = {k} (sgemm needs at least 2 input channels)"
    if passes.is_residual_conv(node) and node.attrs["activation"] is not None:
        return "a residual add after the activation (sgemm adds R after its activation)"
    return None


def _bias(graph: Graph, node: Node) -> Any:
    """The node's bias constant (its third input), or None when it has none."""
    return graph.constants[node.inputs[2]] if len(node.inputs) > 2 else None


def _matrix_and_bias(graph: Graph, node: Node) -> tuple:
    """(B as a K x N matrix, bias or None) of a 1x1 conv2d or a fully_connected node."""
    _, k, n = _gemm_shape(graph, node)
    b = _bias(graph, node)
    return graph.constants[node.inputs[1]].reshape(n, k).T, b


def _sgemm_pack(module: Any, graph: Graph, node: Node) -> dict:
    return {"panels": module.pack_weights(*_matrix_and_bias(graph, node),
                                          _gemm_shape(graph, node)[0])}


def _sgemm_build(module: Any, drv: Any, graph: Graph, node: Node, io: dict, weights: dict) -> list:
    m, k, n = _gemm_shape(graph, node)
    x, y = io[node.inputs[0]], io[node.outputs[0]]
    extra = {}
    if passes.is_residual_conv(node):
        r = io[node.inputs[3]]
        extra = {"residual_address": r.address, "residual_stride": row_stride(r)}
    return module.build(drv, m, k, n, x.address, row_stride(x), weights["panels"].address,
                        y.address, row_stride(y), act=node.attrs["activation"], **extra)


SGEMM = KernelChoice("sgemm", "qpu_kernels.sgemm", ("conv2d", "fully_connected"),
                     _sgemm_reject, _sgemm_pack, _sgemm_build)


def _gemv_reject(graph: Graph, node: Node) -> Optional[str]:
    why = _sgemm_reject(graph, node)
    if why:
        return why
    m, k, _ = _gemm_shape(graph, node)
    if m != 1:
        return f"M = {m} rows (the matrix-vector kernel takes one)"
    if k < 4:
        return f"K = {k} (it streams at least 4 weight rows)"
    if passes.is_residual_conv(node):
        return "a fused residual add"
    return None


def _gemv_pack(module: Any, graph: Graph, node: Node) -> dict:
    return {"blocks": module.pack_weights(*_matrix_and_bias(graph, node))}


def _gemv_build(module: Any, drv: Any, graph: Graph, node: Node, io: dict, weights: dict) -> list:
    _, k, n = _gemm_shape(graph, node)
    return module.build(drv, k, n, io[node.inputs[0]].address, weights["blocks"].address,
                        io[node.outputs[0]].address, act=node.attrs["activation"])


# a classifier over one feature vector: every weight read once, at SDRAM speed
GEMV = KernelChoice("gemv", "qpu_kernels.gemv", ("conv2d", "fully_connected"), _gemv_reject,
                    _gemv_pack, _gemv_build)


def _pointwise_pack(module: Any, graph: Graph, node: Node) -> dict:
    m, _, _ = _gemm_shape(graph, node)
    b = _bias(graph, node)
    return {"panels": module.pack_weights(graph.constants[node.inputs[1]], b, m)}


def _pointwise_build(module: Any, drv: Any, graph: Graph, node: Node, io: dict,
                     weights: dict) -> list:
    m, k, n = _gemm_shape(graph, node)
    x, y = io[node.inputs[0]], io[node.outputs[0]]
    r = io[node.inputs[3]] if passes.is_residual_conv(node) else None
    return module.build(drv, m, k, n, x.address, weights["panels"].address, y.address,
                        act=node.attrs["activation"],
                        residual_address=None if r is None else r.address,
                        in_pixel_stride=row_stride(x), out_pixel_stride=row_stride(y),
                        residual_pixel_stride=None if r is None else row_stride(r))


# the same matrix product as sgemm, in convolution terms (bias, activation, residual fused)
CONV_POINTWISE = KernelChoice("conv_pointwise", "qpu_kernels.conv_pointwise", ("conv2d",),
                              _sgemm_reject, _pointwise_pack, _pointwise_build)

def _depthwise_reject(graph: Graph, node: Node) -> Optional[str]:
    why = _const_weights(graph, node)
    if why:
        return why
    x = graph.tensors[node.inputs[0]].shape
    o, kh, kw, _ = graph.tensors[node.inputs[1]].shape
    a = node.attrs
    if not ops.is_depthwise(graph, node):
        return "not a depthwise convolution"
    if o != x[3]:
        return f"depth multiplier {o // x[3]} (the depthwise kernel runs multiplier 1)"
    if (kh, kw) != (3, 3):
        return f"a {kh}x{kw} depthwise kernel (it runs 3x3)"
    if a["strides"] not in ((1, 1), (2, 2)) or a["dilations"] != (1, 1):
        return f"strides {a['strides']} / dilations {a['dilations']} (it runs strides 1 and 2, " \
               f"no dilation)"
    if max(a["pads"]) > 1:
        return f"pads {a['pads']} (it takes 0 or 1 per side)"
    if x[0] != 1:
        return f"batch {x[0]} (it runs batch 1)"
    if passes.is_residual_conv(node):
        return "a fused residual add"
    return None


def _depthwise_pack(module: Any, graph: Graph, node: Node) -> dict:
    b = _bias(graph, node)
    return {"taps": module.pack_weights(graph.constants[node.inputs[1]], b)}


def _depthwise_build(module: Any, drv: Any, graph: Graph, node: Node, io: dict,
                     weights: dict) -> list:
    _, h, w, c = graph.tensors[node.inputs[0]].shape
    x, y = io[node.inputs[0]], io[node.outputs[0]]
    return module.build(drv, h, w, c, x.address, weights["taps"].address, y.address,
                        stride=node.attrs["strides"][0], pads=node.attrs["pads"],
                        act=node.attrs["activation"], in_pixel_stride=x.strides[2],
                        in_row_stride=x.strides[1], out_pixel_stride=y.strides[2],
                        out_row_stride=y.strides[1])


CONV_DEPTHWISE = KernelChoice("conv_depthwise", "qpu_kernels.conv_depthwise", ("conv2d",),
                              _depthwise_reject, _depthwise_pack, _depthwise_build)


#: narrower strips expand each input pixel too many times over (a strip of P outputs expands
#: (P - 1) x stride + 3 columns): the two kernels apart are faster. Modelled at 400 MHz:
#: MobileNet v2's features.7 (28x28x32 -> 192, stride 2, strips of 4) 1.08 ms fused against
#: 0.64 + 0.31 apart; features.3 (56x56x24 -> 144, stride 1, strips of 6) 2.22 against 4.24.
MIN_STRIP_PIXELS = 5


def _expand_depthwise_reject(graph: Graph, node: Node) -> Optional[str]:
    # the strip width its registers allow decides; imported here, as KernelChoice.load does
    from qpu_kernels import conv_expand_depthwise as module
    if not all(graph.is_constant(t) for t in node.inputs[1:]):
        return "its weights are computed tensors, not constants"
    n, h, w, k = graph.tensors[node.inputs[0]].shape
    _, kh, kw, _ = graph.tensors[node.inputs[3]].shape
    a = node.attrs
    if (kh, kw) != (3, 3):
        return f"a {kh}x{kw} depthwise kernel (it runs 3x3)"
    if a["strides"] not in ((1, 1), (2, 2)):
        return f"strides {a['strides']} (it runs 1 and 2)"
    if max(a["pads"]) > 1:
        return f"pads {a['pads']} (it takes 0 or 1 per side)"
    if n != 1:
        return f"batch {n} (it runs batch 1)"
    if a["act_expand"] not in module.ACTIVATIONS:
        return f"expansion activation {a['act_expand']} (it fuses {module.ACTIVATIONS})"
    pixels = module.max_pixels(k, a["strides"][0])
    if pixels < MIN_STRIP_PIXELS:
        return (f"K = {k} expansion weights leave registers for strips of {pixels} output "
                f"pixel(s) (at least {MIN_STRIP_PIXELS} pay)")
    return None


def _expand_depthwise_pack(module: Any, graph: Graph, node: Node) -> dict:
    return {"block": module.pack_weights(*(graph.constants[t] for t in node.inputs[1:]))}


def _expand_depthwise_build(module: Any, drv: Any, graph: Graph, node: Node, io: dict,
                            weights: dict) -> list:
    _, h, w, k = graph.tensors[node.inputs[0]].shape
    c = graph.tensors[node.inputs[1]].shape[0]
    x, y = io[node.inputs[0]], io[node.outputs[0]]
    return module.build(drv, h, w, k, c, x.address, weights["block"].address, y.address,
                        stride=node.attrs["strides"][0], pads=node.attrs["pads"],
                        act_expand=node.attrs["act_expand"], act_depthwise=node.attrs["activation"],
                        in_pixel_stride=x.strides[2], in_row_stride=x.strides[1],
                        out_pixel_stride=y.strides[2], out_row_stride=y.strides[1])


# MobileNet v2's expansion + depthwise conv (passes.fuse_expand_depthwise) as one kernel: the
# expanded tensor is never written
EXPAND_DEPTHWISE = KernelChoice("expand_depthwise", "qpu_kernels.conv_expand_depthwise",
                                ("expand_depthwise",), _expand_depthwise_reject,
                                _expand_depthwise_pack, _expand_depthwise_build)


def fuse_for(graph: Graph, choices: Sequence[KernelChoice]) -> Graph:
    """`graph` with the fusions that one of `choices` runs (hostside.passes'
    fuse_expand_depthwise, where that kernel would take the fused node)."""
    for choice in choices:
        if "expand_depthwise" in choice.ops and choice.load()[0] is not None:
            graph = passes.fuse_expand_depthwise(
                graph, accept=lambda g, node, c=choice: c.reject(g, node) is None)
    return graph


def _stem_reject(graph: Graph, node: Node) -> Optional[str]:
    why = _const_weights(graph, node)
    if why:
        return why
    x = graph.tensors[node.inputs[0]].shape
    o, kh, kw, ci = graph.tensors[node.inputs[1]].shape
    a = node.attrs
    if a["groups"] != 1:
        return f"groups={a['groups']} (it runs full convolutions)"
    if (kh, kw) == (1, 1):
        return "a 1x1 kernel (a matrix product)"
    if kh * kw * ci < 2:
        return f"K = {kh * kw * ci} (the matrix product needs at least 2)"
    if a["dilations"] != (1, 1) or a["strides"][0] != a["strides"][1]:
        return f"strides {a['strides']} / dilations {a['dilations']} (equal strides, no dilation)"
    if x[0] != 1:
        return f"batch {x[0]} (it runs batch 1)"
    if node.inputs[0] not in {s.tensor for s in graph.inputs}:
        return ("its input is computed by another step (it reads a zero halo that the host writes "
                "around a graph input)")
    if passes.is_residual_conv(node):
        return "a fused residual add"
    return None


def _stem_pack(module: Any, graph: Graph, node: Node) -> dict:
    _, ho, wo, _ = graph.tensors[node.outputs[0]].shape
    b = _bias(graph, node)
    return {"panels": module.pack_weights(graph.constants[node.inputs[1]], b, ho * wo)}


def _stem_build(module: Any, drv: Any, graph: Graph, node: Node, io: dict, weights: dict) -> list:
    _, h, w, ci = graph.tensors[node.inputs[0]].shape
    o, kh, kw, _ = graph.tensors[node.inputs[1]].shape
    x, y = io[node.inputs[0]], io[node.outputs[0]]
    return module.build(drv, h, w, ci, o, kh, kw, x.address, x.strides[2], x.strides[1],
                        weights["panels"], y.address, y.strides[2], y.strides[1],
                        stride=node.attrs["strides"][0], pads=node.attrs["pads"],
                        act=node.attrs["activation"])


# a network's first convolution (3x3, stride 2, RGB in) as an SGEMM over the im2col matrix that
# the TMU gathers from a zero-haloed graph input
CONV_STEM = KernelChoice("conv_stem", "qpu_kernels.conv_stem", ("conv2d",), _stem_reject,
                         _stem_pack, _stem_build,
                         input_halo=lambda graph, node: tuple(node.attrs["pads"]))


def _global_average_reject(graph: Graph, node: Node) -> Optional[str]:
    x = graph.tensors[node.inputs[0]].shape
    if len(x) != 4:
        return f"a rank-{len(x)} input (it averages NHWC tensors)"
    if node.op == "mean":
        axes = sorted(a % 4 for a in node.attrs["axes"])
        if axes != [1, 2]:
            return f"a mean over axes {tuple(node.attrs['axes'])} (it averages over H and W)"
    if node.op == "avg_pool2d":
        a = node.attrs
        if tuple(a["kernel"]) != (x[1], x[2]) or any(a["pads"]):
            return f"a {a['kernel']} window with pads {a['pads']} on a {x[1]}x{x[2]} input " \
                   "(it averages the whole unpadded image)"
    if x[0] != 1:
        return f"batch {x[0]} (it runs batch 1)"
    if x[1] * x[2] < 2:
        return f"{x[1] * x[2]} pixel(s) (it averages at least 2)"
    if node.attrs.get("activation") is not None:
        return f"a fused {node.attrs['activation']} (it has no activation epilogue)"
    return None


def _global_average_pack(module: Any, graph: Graph, node: Node) -> dict:
    _, h, w, c = graph.tensors[node.inputs[0]].shape
    return {"column": module.pack_weights(h * w, c)}


def _global_average_build(module: Any, drv: Any, graph: Graph, node: Node, io: dict,
                          weights: dict) -> list:
    _, h, w, c = graph.tensors[node.inputs[0]].shape
    x = io[node.inputs[0]]
    return module.build_global_average(drv, h * w, c, x.address, weights["column"].address,
                                       io[node.outputs[0]].address, in_pixel_stride=row_stride(x))


# global average pool / spatial mean / whole-image avg_pool2d as an SGEMM reading the input
# transposed (no activation)
GLOBAL_AVERAGE = KernelChoice("global_average", "qpu_kernels.pooling",
                              ("global_avg_pool", "mean", "avg_pool2d"),
                              _global_average_reject, _global_average_pack,
                              _global_average_build)

#: the QPU kernels the scheduler tries, in order of preference
KERNEL_CHOICES: tuple = (GEMV, EXPAND_DEPTHWISE, CONV_POINTWISE, CONV_DEPTHWISE, CONV_STEM, SGEMM,
                         GLOBAL_AVERAGE)
