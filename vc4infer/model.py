"""The Model API: `load(path_or_name, backend=...)` and `Model` (`run`, `classify`, `summary`,
`input_spec`, `output_spec`).

`Model.run` takes and returns arrays exactly as the original runtime does (the file's layout,
shape and dtype: NCHW float32 for a torchvision ONNX file, NHWC int8 for an int8 TFLite file);
the conversion to the internal NHWC graph happens only at this boundary (`TensorSpec`)."""
from __future__ import annotations

import os
import time
from typing import Any, Optional, Tuple, Union

import numpy as np

from vc4infer.errors import BackendUnavailableError, InputSpecError
from vc4infer.graph.ir import Graph, TensorSpec

BACKENDS = ("auto", "neon", "emu", "hw")


def _check_backend(backend: str) -> str:
    """The runtime a backend name selects: "auto" is "hw" on a Pi with a usable V3D, else
    "neon" (hostside.qpu_model.resolve_backend)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    from hostside.qpu_model import resolve_backend
    return resolve_backend(backend)[0]


class Model:
    """A graph ready to run. Build one with `vc4infer.load`."""

    def __init__(self, graph: Graph, backend: str = "auto", **driver_options):
        self.graph = graph
        self.backend = _check_backend(backend)
        if self.backend == "neon":
            from hostside.neon import NeonRunner
            self._runner = NeonRunner(graph)
        else:  # "emu" / "hw": compiled for the QPUs (driver_options go to the Driver)
            from hostside.qpu_model import QpuModel
            self._runner = QpuModel(graph, self.backend, **driver_options)

    def close(self) -> None:
        """Release the GPU memory of a QPU model (nothing to do for NEON)."""
        if self.backend != "neon":
            self._runner.close()

    @property
    def modelled(self) -> bool:
        """Whether this model's QPU times are modelled (emu, or hw on a simulated board)."""
        return self.backend != "neon" and self._runner.drv.modelled

    @property
    def clock_hz(self) -> Optional[float]:
        """The V3D clock of this model's QPU steps (None on NEON, or when the backend does not
        know it)."""
        return None if self.backend == "neon" else self._runner.drv.clock_hz

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- boundary --------------------------------------------------------------------------
    @property
    def input_specs(self) -> list:
        return list(self.graph.inputs)

    @property
    def output_specs(self) -> list:
        return list(self.graph.outputs)

    @property
    def input_spec(self) -> TensorSpec:
        """The spec of the (first) input: name, shape, dtype, layout, quant as the file has it."""
        return self.graph.inputs[0]

    @property
    def output_spec(self) -> TensorSpec:
        """The spec of the (first) output."""
        return self.graph.outputs[0]

    def _feeds(self, x: Any) -> dict:
        specs = self.graph.inputs
        if isinstance(x, dict):
            names = {s.name for s in specs}
            if set(x) != names:
                raise InputSpecError(f"inputs given for {sorted(x)}, the model takes {sorted(names)}")
            arrays = [x[s.name] for s in specs]
        elif isinstance(x, (list, tuple)):
            arrays = list(x)
        else:
            arrays = [x]
        if len(arrays) != len(specs):
            raise InputSpecError(f"the model takes {len(specs)} input(s) "
                                 f"({', '.join(s.describe() for s in specs)}), got {len(arrays)}")
        feeds = {}
        for spec, a in zip(specs, arrays):
            if not isinstance(a, np.ndarray):
                raise InputSpecError(f"input {spec.name!r}: expected a numpy array "
                                     f"{spec.dtype}{list(spec.shape)}, got {type(a).__name__}")
            if a.dtype != np.dtype(spec.dtype):
                raise InputSpecError(f"input {spec.name!r}: expected dtype {spec.dtype}, got "
                                     f"{a.dtype} (convert with x.astype(np.{spec.dtype}))")
            if a.shape != spec.shape:
                raise InputSpecError(f"input {spec.name!r}: expected shape {list(spec.shape)} "
                                     f"({spec.layout or 'plain'} layout), got {list(a.shape)}")
            feeds[spec.tensor] = spec.to_internal(a)
        return feeds

    # -- running ---------------------------------------------------------------------------
    def run(self, x: Any) -> Union[np.ndarray, list]:
        """Run the model. `x`: one array (single input), a list in input order or a dict by
        input name, each exactly as `input_specs` say. Returns one array for a single-output
        model, else a list in output order, as `output_specs` say."""
        return self._outputs(self._runner.run(self._feeds(x)))

    def _outputs(self, out: dict) -> Union[np.ndarray, list]:
        """The runner's outputs (internal tensor name -> array) as `run` returns them."""
        ys = [spec.from_internal(out[spec.tensor]) for spec in self.graph.outputs]
        return ys[0] if len(ys) == 1 else ys

    def profile(self, x: Any) -> list:
        """Run one inference and time it: rows with .layer, .where, .wall_seconds (host time on
        this machine) and .modelled_seconds (the emulator's modelled Pi time of QPU steps, else
        None). On the NEON backend there is one row for the whole graph."""
        return self.run_profiled(x)[1]

    def run_profiled(self, x: Any) -> Tuple[Union[np.ndarray, list], list]:
        """`run` and `profile` in one inference: (what `run` returns, the rows `profile` gives)."""
        feeds = self._feeds(x)
        if self.backend != "neon":
            rows = self._runner.profile(feeds)
            out = self._runner.outputs()
        else:
            from hostside.qpu_model import StepTime
            from vc4infer.graph import ops
            start = time.perf_counter()
            out = self._runner.run(feeds)
            macs = sum(ops.get(n.op).macs(self.graph, n) for n in self.graph.nodes)
            rows = [StepTime("all layers", "neon", time.perf_counter() - start, None, macs=macs)]
        return self._outputs(out), rows

    def run_all(self, x: Any) -> dict:
        """Run and keep every tensor (internal layout, by IR tensor name): for per-layer checks.
        On the QPU backends: the tensors of the rewritten graph (fused intermediates are gone)."""
        return self._runner.run(self._feeds(x), keep=True)

    def validate(self, x: Any) -> list:
        """Run `x` layer by layer on the QPU backend and compare every layer with NEON on the
        same inputs: a list of hostside.qpu_model.LayerCheck (layer, where, max_abs_error,
        max_abs_reference)."""
        if self.backend == "neon":
            raise BackendUnavailableError("validate compares the QPU layers with NEON: load the "
                                          "model with backend='emu' or 'hw'")
        return self._runner.validate(self._feeds(x))

    def classify(self, image: Any, top: int = 5) -> list:
        """Classify an image (path, PIL image or HxWx3 uint8 array): preprocess it the way the
        model was trained (`graph.preprocess`), run, and return the `top` classes as
        (class index, label, probability), best first. Label is None when the class list is
        unknown."""
        from vc4infer.graph.preprocess import preprocess
        if len(self.graph.outputs) != 1:
            raise InputSpecError(f"classify needs a model with one output, this one has "
                                 f"{len(self.graph.outputs)}")
        return self.top_classes(self.run(preprocess(image, self)), top)

    def top_classes(self, y: np.ndarray, top: int = 5) -> list:
        """The `top` classes of one output `y` of `run` as (class index, label, probability),
        best first: dequantized, and softmax applied unless the model already ends in one."""
        from hostside.neon import softmax
        from vc4infer.graph.labels import labels_for
        spec = self.output_spec
        scores = y.reshape(y.shape[0], -1)[0]
        if spec.quant is not None:
            scores = spec.quant.scale[0] * (scores.astype(np.float32) - spec.quant.zero_point[0])
        scores = scores.astype(np.float32)
        if not self._ends_in_softmax():
            scores = softmax(scores)
        labels = labels_for(self.graph)
        order = np.argsort(-scores, kind="stable")[:top]
        return [(int(i), labels[i] if labels is not None and i < len(labels) else None,
                 float(scores[i])) for i in order]

    def _ends_in_softmax(self) -> bool:
        node = self.graph.producer(self.output_spec.tensor)
        while node is not None and node.op in ("reshape", "flatten", "squeeze", "dequantize"):
            node = self.graph.producer(node.inputs[0])
        return node is not None and node.op == "softmax"

    # -- reporting -------------------------------------------------------------------------
    def placement(self) -> dict:
        """Where each node runs: node name -> "neon", or on the QPU backends "qpu:<kernel>",
        "neon (<reason>)", "view ..." or "fused into <layer>"."""
        if self.backend == "neon":
            return {n.name: "neon" for n in self.graph.nodes}
        return self._runner.placement()

    def summary(self) -> str:
        """Layers with output shapes, parameters, multiply-adds, activation bytes and where each
        layer runs; totals and the input/output specs; on the QPU backends also the compiled
        steps and the arena and weights bytes."""
        peak = max((r["act_bytes"] for r in self.graph.layer_stats()), default=0)
        text = (self.graph.summary(where=self.placement()) +
                f"\nbackend: {self.backend}; largest layer output: {peak:,} bytes")
        if self.backend != "neon":
            text += "\n\n" + self._runner.summary()
        return text

    def __repr__(self) -> str:
        return (f"Model({self.graph.meta.get('name')!r}, backend={self.backend!r}, "
                f"inputs=[{'; '.join(s.describe() for s in self.graph.inputs)}])")


def _resolve_zoo(name: str):
    from vc4infer.graph import zoo
    return zoo.resolve(name)


def load(path_or_name: Union[str, os.PathLike, Graph], backend: str = "auto",
         driver_options: Optional[dict] = None, **opts) -> Model:
    """Load a model file (TFLite, ONNX, TF frozen graph, torchvision .pth), a zoo name such as
    "mobilenet_v2", or wrap an existing Graph. `opts` go to the importer. backend: "neon" (CPU),
    "emu" (QPUs emulated), "hw" (a Pi's QPUs) or "auto" ("hw" where usable, else "neon").
    `driver_options` go to the Driver of the QPU backends (e.g. {"clock_hz": 400e6} for emu)."""
    _check_backend(backend)
    driver_options = driver_options or {}
    if isinstance(path_or_name, Graph):
        return Model(path_or_name, backend, **driver_options)
    from vc4infer.graph.importers import import_model
    path = os.fspath(path_or_name)
    if os.path.exists(path):
        return Model(import_model(path, **opts), backend, **driver_options)
    if os.sep in path or os.path.splitext(path)[1]:
        raise FileNotFoundError(f"model file {path!r} does not exist")
    resolved = _resolve_zoo(path)
    options = dict(resolved.import_options)
    options.update(opts)
    options.setdefault("format", resolved.format)
    graph = import_model(resolved.path, **options)
    graph.meta.update({k: v for k, v in resolved.meta.items() if v is not None})
    graph.meta["name"] = path
    return Model(graph, backend, **driver_options)
