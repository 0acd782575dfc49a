"""Class names of classifier outputs.

`vc4infer/data/imagenet_classes.txt` holds the 1000 ImageNet-1k classes in the standard index
order, one "wnid<TAB>names" line each. The 1001-class variant used by TF-slim and TFLite models
is derived from it: "background" at index 0, then the same 1000 classes shifted by one.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Optional

LABEL_SETS = ("imagenet1000", "imagenet1001")
BACKGROUND = "background"


@lru_cache(maxsize=None)
def imagenet_labels(classes: int = 1000) -> tuple:
    """ImageNet class names (the text after the WordNet id) for 1000 or 1001 outputs."""
    if classes not in (1000, 1001):
        raise ValueError(f"ImageNet label sets have 1000 or 1001 classes, not {classes}")
    text = resources.files("vc4infer").joinpath("data/imagenet_classes.txt").read_text("utf-8")
    names = [line.split("\t", 1)[1].strip() for line in text.splitlines() if line.strip()]
    if len(names) != 1000:
        raise RuntimeError(f"vc4infer/data/imagenet_classes.txt has {len(names)} classes, "
                           f"not 1000: the installation is damaged")
    return tuple(names) if classes == 1000 else (BACKGROUND, *names)


def labels_by_name(name: str) -> tuple:
    """The label set called `name` ("imagenet1000" or "imagenet1001")."""
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    return imagenet_labels(int(name[len("imagenet"):]))


def labels_for(model_or_graph: Any) -> Optional[tuple]:
    """Class names for a model's (or graph's) single output, or None when unknown.

    Uses Graph.meta["labels"]; when that is None and the output has exactly 1000 or 1001
    classes, the ImageNet set of that size is assumed (the only common label sets of those
    sizes)."""
    graph = getattr(model_or_graph, "graph", model_or_graph)
    name = graph.meta.get("labels")
    if name is not None:
        return labels_by_name(name)
    outputs = getattr(graph, "outputs", [])
    if len(outputs) == 1 and len(outputs[0].shape) >= 1 and outputs[0].shape[-1] in (1000, 1001):
        return imagenet_labels(outputs[0].shape[-1])
    return None


def short_name(label: str) -> str:
    """The first of a class's comma-separated names ("tabby, tabby cat" -> "tabby")."""
    return label.split(",", 1)[0].strip()
