"""`vc4infer classify IMAGE... --model NAME|PATH`: top classes of each image."""
from __future__ import annotations

import os
import time

import click

from vc4infer.graph.preprocess import FAMILIES

BACKEND_CHOICES = ("auto", "neon", "emu", "hw")  # vc4infer.model.BACKENDS, without importing numpy


def _class_count(spec) -> int:
    """Classes of a classifier output (N, K) or (N, 1, 1, K); 0 when the shape is not one."""
    dims = [d for d in spec.shape[1:] if d != 1]
    return dims[0] if len(dims) == 1 and dims[0] > 1 else 0


def load_model(model: str, backend: str, **options):
    """vc4infer.load with the errors a user can fix (an unknown name, a bad model file, a
    backend this machine cannot run) shown as one line instead of a traceback."""
    import vc4infer
    from hostside.driver import DriverError
    from vc4infer.errors import Vc4InferError
    from vc4infer.graph.zoo import ZooError
    from vc4infer.cli import fail
    try:
        return vc4infer.load(model, backend=backend, **options)
    except (ZooError, Vc4InferError, DriverError, FileNotFoundError, ValueError, TypeError) as err:
        fail(err)


def _load(model: str, backend: str, preprocess: str | None, output: str | None):
    loaded = load_model(model, backend, **({"output": output} if output is not None else {}))
    if len(loaded.graph.outputs) != 1 or _class_count(loaded.output_spec) == 0:
        from vc4infer.cli import fail
        from vc4infer.errors import UnsupportedModelError
        shapes = ", ".join(s.describe() for s in loaded.graph.outputs)
        fail(UnsupportedModelError(f"{model} is not a classifier: its output ({shapes}) is not one "
                                   "vector of class scores"))
    if preprocess is not None:
        loaded.graph.meta["preprocess"] = preprocess
    return loaded


@click.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("--model", "-m", default="mobilenet_v2", show_default=True,
              help="zoo name (see `vc4infer models list`) or model file (.tflite, .onnx, .pb, .pth)")
@click.option("--backend", "-b", type=click.Choice(BACKEND_CHOICES), default="auto",
              show_default=True, help="where the network runs")
@click.option("--top", "-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="how many classes to print per image")
@click.option("--preprocess", type=click.Choice(FAMILIES), default=None,
              help="image preprocessing, when the model file does not imply one")
@click.option("--output", default=None, metavar="TENSOR",
              help="TensorFlow graphs (.pb): the tensor holding the class scores")
def classify(images: tuple, model: str, backend: str, top: int, preprocess: str | None,
             output: str | None) -> None:
    """Print the top classes of each IMAGE with their probabilities."""
    from vc4infer.cli import fail
    from vc4infer.errors import InputError
    folders = [p for p in images if os.path.isdir(p)]
    if folders:
        fail(InputError(f"{folders[0]} is a folder: give the image files in it "
                        f"(`vc4infer classify {os.path.join(folders[0], '*.jpg')}`), or watch it "
                        f"with `vc4infer camera --source {folders[0]}`"))
    missing = [p for p in images if not os.path.isfile(p)]
    if missing:
        fail(FileNotFoundError(f"image file not found: {', '.join(missing)}"))
    from vc4infer.errors import Vc4InferError
    loaded = _load(model, backend, preprocess, output)
    for path in images:
        start = time.perf_counter()
        try:
            results = loaded.classify(path, top=top)
        except Vc4InferError as err:
            fail(err, f"{path}: {err}")
        elapsed_ms = (time.perf_counter() - start) * 1e3
        click.echo(f"{path}  ({loaded.backend}, {elapsed_ms:.0f} ms)")
        for rank, (index, label, prob) in enumerate(results, start=1):
            name = label if label is not None else f"class {index}"
            click.echo(f"  {rank}. {prob * 100:6.2f}%  {index:4d}  {name}")
