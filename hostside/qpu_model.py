"""A graph compiled for the QPUs: rewritten graph, schedule, arena, weights, launches; runs one
inference at a time.

    with QpuModel(graph, "emu") as qm:
        out = qm.run({"input": x_nhwc})          # {output tensor: array}, like NeonRunner.run
        print(qm.summary())
        rows = qm.validate({"input": x_nhwc})    # per layer: QPU (or NEON) against NEON

Load time (the constructor, once): passes, schedule, weight packing in the kernels' layouts, arena
plan, weight upload, kernel assembly and uniforms (inside each kernel's builder). A kernel that
refuses the shapes when packing or building (KernelShapeError) leaves its layer to NEON, with the
kernel's message as the reason. Per inference (`run`): copy the inputs into the arena, run every
step, copy the outputs out.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from hostside import passes, planner, scheduler
from hostside.driver import Driver
from qpu_kernels.launch import KernelShapeError
from vc4infer.errors import GraphError, InputSpecError
from vc4infer.graph import ops
from vc4infer.graph.ir import Graph

#: room in the Driver's data area beyond arena and weights for the uniform blocks the kernel
#: builders allocate (per-tile records: about 0.6 MB for all of MobileNet v1 1.0/224); the data
#: area is a bound the Driver checks, not memory it reserves
UNIFORMS_MARGIN_BYTES = 64 << 20


@dataclass
class LayerCheck:
    """One row of `QpuModel.validate`: the step, where it ran, its max abs error against NEON on
    the same inputs, and the largest magnitude of the NEON result (for relative judgement)."""
    layer: str
    where: str
    max_abs_error: float
    max_abs_reference: float


@dataclass
class StepTime:
    """One row of `QpuModel.profile`: the step, where it ran, host wall seconds on this machine,
    the modelled Pi seconds (None when not modelled) and what they are made of, the step's
    multiply-adds and its QPU launches."""
    layer: str
    where: str
    wall_seconds: float
    modelled_seconds: Optional[float]
    modelled_basis: str = ""
    macs: int = 0
    launches: int = 0


class QpuModel:
    """`graph` (internal layout, as importers produce it) compiled for `backend`: "emu", "hw",
    "auto" (the Driver's choice) or an open Driver (not closed by this object). `choices` are
    the kernel choices to try (default: all of hostside.scheduler's); an empty tuple runs every
    layer on the NEON fallback through the arena."""

    def __init__(self, graph: Graph, backend: Union[str, Driver] = "emu",
                 choices: Optional[Sequence[scheduler.KernelChoice]] = None, **driver_options: Any):
        check_graph(graph)
        self.source = graph
        choices = scheduler.KERNEL_CHOICES if choices is None else choices
        self.graph = g = scheduler.fuse_for(passes.optimise(graph), choices)
        self.decisions = scheduler.schedule(g, choices)
        blobs = {}
        for i, d in enumerate(self.decisions):
            if d.place == "qpu":
                try:
                    packed = d.choice.pack(d.module, g, d.node)
                except KernelShapeError as exc:
                    self.decisions[i] = scheduler.demote(d, exc)
                    continue
                for key, blob in packed.items():
                    blobs[(d.node.name, key)] = np.ascontiguousarray(blob)
        kernels = [d.choice for d in self.decisions if d.place == "qpu"]
        align = max([planner.DEFAULT_ALIGN_BYTES] + [c.align for c in kernels])
        halos = {d.node.inputs[0]: d.choice.input_halo(g, d.node) for d in self.decisions
                 if d.place == "qpu" and d.choice.input_halo is not None}
        self.plan = planner.plan_arena(g, in_place=scheduler.in_place_of(g, self.decisions),
                                       is_view=lambda node: scheduler.is_view(g, node),
                                       align=align, pitched=lambda tensor: True, halos=halos)
        planner.check_plan(g, self.plan)
        self.weights_plan = planner.plan_weights(blobs, align)

        if isinstance(backend, Driver):
            self.drv, self._owns_driver = backend, False
        else:
            size = self.plan.arena_bytes + self.weights_plan.nbytes + UNIFORMS_MARGIN_BYTES
            self.drv, self._owns_driver = Driver(backend, data_area_size=size, **driver_options), True
        try:
            self._load(blobs)
        except BaseException:
            self.close()
            raise

    def _load(self, blobs: dict) -> None:
        self.arena = self.drv.alloc(max(1, self.plan.arena_bytes), np.uint8)
        self.weights = self.drv.alloc(max(1, self.weights_plan.nbytes), np.uint8)
        host_arena = self.arena.view(np.ndarray)
        host_weights = self.weights.view(np.ndarray)
        self.gpu_views, self.host_views = {}, {}
        #: tensors with a halo, as their whole buffers (the host writes the border of inputs)
        self.host_halo_views = {t: self._tensor_view(host_arena, t, whole=True)
                                for t in self.plan.halos}
        for t in self.plan.offsets:
            self.gpu_views[t] = self._tensor_view(self.arena, t)
            self.host_views[t] = self._tensor_view(host_arena, t)
        weight_views = {}
        for key, blob in blobs.items():
            off = self.weights_plan.offsets[key]
            host_weights[off:off + blob.nbytes] = blob.reshape(-1).view(np.uint8)
            weight_views[key] = self.weights[off:off + blob.nbytes].view(blob.dtype).reshape(blob.shape)
        self.steps = [self._step(i, weight_views) for i in range(len(self.decisions))]

    def _tensor_view(self, arena: np.ndarray, tensor: str, whole: bool = False) -> np.ndarray:
        """Tensor `tensor` in `arena`, with the plan's pixel pitch (strides say it) and inside its
        halo (`whole`: the halo included)."""
        info, off = self.graph.tensors[tensor], self.plan.offsets[tensor]
        flat = arena[off:off + self.plan.nbytes[tensor]].view(info.dtype)
        if not info.shape:
            return flat.reshape(())
        halo = self.plan.halos.get(tensor)
        shape = planner.storage_shape(info.shape, halo)
        rows = flat.reshape(*shape[:-1], self.plan.pitches[tensor] // flat.itemsize)
        view = rows[..., :info.shape[-1]]
        if halo is None or whole:
            return view
        top, left = halo[0], halo[1]
        return view[:, top:top + info.shape[1], left:left + info.shape[2]]

    def _step(self, i: int, weight_views: dict) -> scheduler.Step:
        g, d = self.graph, self.decisions[i]
        node = d.node
        covers = passes.fused_from(g, node)
        if d.place == "view":
            return scheduler.ViewStep(d, covers)
        if d.place == "qpu":
            io = {t: self.gpu_views[t] for t in (*node.inputs, *node.outputs) if t in self.gpu_views}
            weights = {key: v for (name, key), v in weight_views.items() if name == node.name}
            try:
                launches = d.choice.build(d.module, self.drv, g, node, io, weights)
                return scheduler.QpuStep(d, covers, self.drv, launches)
            except KernelShapeError as exc:
                # the CPU may share more bytes than the kernel would have: the plan stays valid
                d = self.decisions[i] = scheduler.demote(d, exc)
        inputs = [g.constants[t] if g.is_constant(t) else self.host_views[t] for t in node.inputs]
        return scheduler.NeonStep(d, covers, g, inputs, self.host_views[node.outputs[0]])

    # -- life cycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Close the Driver if this object opened it."""
        if self._owns_driver:
            self.drv.close()

    def __enter__(self) -> "QpuModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- running ---------------------------------------------------------------------------
    def _write_inputs(self, feeds: dict) -> None:
        for spec in self.graph.inputs:
            if spec.tensor not in feeds:
                raise InputSpecError(f"no value fed for graph input {spec.tensor!r}")
            view, x = self.host_views[spec.tensor], np.asarray(feeds[spec.tensor])
            if x.shape != view.shape or x.dtype != view.dtype:
                raise InputSpecError(f"input {spec.tensor!r}: expected {view.dtype}"
                                     f"{list(view.shape)} (internal layout), got {x.dtype}"
                                     f"{list(x.shape)}")
            if spec.tensor in self.host_halo_views:      # zeros around the image, every time:
                self._zero_halo(spec.tensor)                 # other tensors reuse the bytes
            np.copyto(view, x)

    def _zero_halo(self, tensor: str) -> None:
        """Write zeros into the border rows and columns around `tensor` (not its interior)."""
        whole = self.host_halo_views[tensor]
        top, left, bottom, right = self.plan.halos[tensor]
        rows, cols = whole.shape[1], whole.shape[2]
        whole[:, :top] = 0
        whole[:, rows - bottom:] = 0
        whole[:, :, :left] = 0
        whole[:, :, cols - right:] = 0

    def run(self, feeds: dict, keep: bool = False) -> dict:
        """`feeds`: internal input tensor name -> array (internal layout). Returns the graph
        outputs by tensor name (copies), or with `keep` every tensor of the rewritten graph as
        it was right after the step that wrote it (fused-away intermediates do not exist)."""
        self._write_inputs(feeds)
        kept = {t: self.host_views[t].copy() for t in feeds} if keep else None
        for step in self.steps:
            step.run()
            if keep:
                kept.update((t, self.host_views[t].copy()) for t in step.node.outputs)
        if keep:
            return kept
        return self.outputs()

    def outputs(self) -> dict:
        """The graph outputs of the latest inference (`run` or `profile`) by tensor name (copies)."""
        return {s.tensor: self.host_views[s.tensor].copy() for s in self.graph.outputs}

    def validate(self, feeds: dict) -> list:
        """Run one inference step by step; after each step compare its output with NEON's
        result for the same inputs (read from the arena before the step ran). Returns one
        LayerCheck per step that computes something (views excluded)."""
        g = self.graph
        self._write_inputs(feeds)
        rows = []
        for step in self.steps:
            if isinstance(step, scheduler.ViewStep):
                continue
            inputs = [g.constants[t] if g.is_constant(t) else self.host_views[t].copy()
                      for t in step.node.inputs]
            step.run()
            ref = step.reference(g, inputs).astype(np.float64)
            got = self.host_views[step.node.outputs[0]].astype(np.float64)
            rows.append(LayerCheck(step.name, step.where, float(np.max(np.abs(got - ref), initial=0)),
                                   float(np.max(np.abs(ref), initial=0))))
        return rows

    def profile(self, feeds: dict) -> list:
        """Run one inference and time every step: StepTime rows with the host's wall seconds and,
        on the emulator, the modelled Pi seconds: QPU steps as the timing model gives them plus
        one mailbox round trip per launch, CPU steps as hostside.pi_costs estimates them for a
        Cortex-A53 (on hw the wall time is the measurement and nothing is modelled)."""
        from hostside import pi_costs

        modelling = self.drv.modelled
        self._write_inputs(feeds)
        rows = []
        for step in self.steps:
            macs = ops.get(step.node.op).macs(self.graph, step.node)
            start = time.perf_counter()
            modelled, basis, launches = None, "", 0
            if isinstance(step, scheduler.QpuStep):
                qpu = 0.0
                for launch in step.launches:
                    launch.run(self.drv)
                    stats = self.drv.last_stats
                    if stats is not None and stats.modelled_seconds is not None:
                        qpu += stats.modelled_seconds
                launches = len(step.launches)
                if modelling:
                    modelled = qpu + pi_costs.launch_seconds(launches)
                    basis = f"emulator timing model + {launches} launch(es)"
            else:
                step.run()
                if modelling and isinstance(step, scheduler.NeonStep):
                    modelled, basis = pi_costs.host_step_seconds(self.graph, step.node)
                elif modelling:
                    modelled, basis = 0.0, "view: no work"
            rows.append(StepTime(step.name, step.where, time.perf_counter() - start, modelled,
                                 basis, macs, launches))
        return rows

    # -- reporting -------------------------------------------------------------------------
    def placement(self) -> dict:
        """Every node of the original graph -> where it runs: "qpu:<kernel>", "neon (<reason>)",
        "view ...", or "fused into <step>" for nodes another step executes (a fused step named
        after none of its nodes, like "a+b", runs where its first node is)."""
        out = {}
        for step in self.steps:
            lead = step.name if step.name in step.covers else step.covers[0]
            for name in step.covers:
                out[name] = step.where if name == lead else f"fused into {step.name}"
        return out

    def summary_rows(self) -> list:
        """Per step: name, op, the original nodes it executes, output shape, MACs, where, arena
        offset and bytes of its output."""
        g = self.graph
        rows = []
        for step in self.steps:
            node, out = step.node, step.node.outputs[0]
            rows.append({"name": step.name, "op": node.op, "covers": step.covers,
                         "out_shape": g.tensors[out].shape, "macs": ops.get(node.op).macs(g, node),
                         "where": step.where, "offset": self.plan.offsets[out],
                         "bytes": g.tensors[out].nbytes})
        return rows

    def _qpu_steps(self) -> list:
        return [s for s in self.steps if isinstance(s, scheduler.QpuStep)]

    def uniforms_bytes(self) -> int:
        """Bytes of the uniform blocks of every launch (built once, at load)."""
        return sum(int(np.asarray(launch.uniforms).nbytes) for s in self._qpu_steps()
                   for launch in s.launches)

    def summary(self) -> str:
        """A table of steps with where each runs, then arena and weights bytes."""
        head = f"{'step':<28} {'op':<16} {'output':<18} {'MACs':>12}  where"
        lines = [head, "-" * len(head)]
        for r in self.summary_rows():
            lines.append(f"{r['name'][:28]:<28} {r['op']:<16} {str(list(r['out_shape'])):<18} "
                         f"{r['macs']:>12,}  {r['where']}")
        on_qpu = len(self._qpu_steps())
        p = self.plan
        lines += ["-" * len(head),
                  f"{len(self.steps)} steps ({on_qpu} on the QPUs) for {len(self.source.nodes)} "
                  f"graph nodes; backend {self.drv.backend_name}",
                  f"activation arena: {p.arena_bytes:,} bytes (live-bytes bound "
                  f"{p.lower_bound_bytes:,}; one buffer per tensor would take {p.naive_bytes:,})",
                  f"weights arena: {self.weights_plan.nbytes:,} bytes (QPU layers, kernel layouts)",
                  f"uniforms: {self.uniforms_bytes():,} bytes in "
                  f"{sum(len(s.launches) for s in self._qpu_steps())} launches"]
        return "\n".join(lines)


def resolve_backend(backend: str) -> tuple:
    """(backend to use, why) for a Model backend name: "auto" is "hw" on a Raspberry Pi whose V3D
    is usable and "neon" elsewhere (the emulator runs every QPU instruction in software: a
    development tool, not a fast path); other names are returned as they are."""
    if backend != "auto":
        return backend, "requested"
    from hostside.driver import simboard
    if simboard.requested():
        return "hw", f"a simulated {simboard.requested()} ({simboard.ENV_VAR})"
    from hostside.driver.board import detect_board, hw_blocker
    blocker = hw_blocker(detect_board())
    if blocker is None:
        return "hw", "a Raspberry Pi with a usable V3D"
    return "neon", f"QPUs not usable here ({blocker})"


def check_graph(graph: Graph) -> None:
    """Raise GraphError unless every graph input and output is an activation (not a constant):
    the arena holds the boundary tensors."""
    for spec in (*graph.inputs, *graph.outputs):
        if graph.is_constant(spec.tensor):
            raise GraphError(f"{spec.name!r} is a constant: a compiled model's inputs and outputs "
                             f"must be computed tensors")
