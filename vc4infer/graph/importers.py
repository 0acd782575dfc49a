"""`import_model(path, **opts)`: read any supported model file into a Graph, choosing the importer
from the file's contents (magic bytes), with the file extension only to break ties."""
from __future__ import annotations

import importlib
import inspect
import os
from typing import Callable, Union

from vc4infer.errors import ImportOptionError, ModelFormatError, UnsupportedModelError
from vc4infer.graph.ir import Graph

# format -> (module, function); importers are imported only when their format is met
IMPORTERS = {
    "onnx": ("vc4infer.graph.onnx_import", "import_onnx"),
    "tflite": ("vc4infer.graph.tflite_import", "import_tflite"),
    "tf_graphdef": ("vc4infer.graph.tf_import", "import_tf_graphdef"),
    "torchvision": ("vc4infer.graph.torch_import", "import_torchvision_mobilenet_v2"),
}
# other spellings of the same formats (the zoo manifest names the torch format this way)
ALIASES = {"torchvision_mobilenet_v2": "torchvision", "tf": "tf_graphdef", "pb": "tf_graphdef"}
_EXTENSIONS = {".onnx": "onnx", ".tflite": "tflite", ".pb": "tf_graphdef", ".pth": "torchvision",
               ".pt": "torchvision"}


def detect_format(path: Union[str, os.PathLike]) -> str:
    """One of IMPORTERS' keys, from the first bytes of the file.

    TFLite: a FlatBuffer with identifier "TFL3" at bytes 4..8. PyTorch: a zip archive ("PK\\3\\4")
    or a legacy pickle (protocol byte 0x80). ONNX ModelProto and TF GraphDef are both protobuf:
    ONNX starts with field 1 `ir_version` (varint, tag byte 0x08), a GraphDef with field 1 `node`
    (length-delimited, tag byte 0x0a)."""
    with open(path, "rb") as f:
        head = f.read(8)
    ext = _EXTENSIONS.get(os.path.splitext(str(path))[1].lower())
    if not head:
        raise ModelFormatError(f"{path}: the file is empty")
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":
        return "torchvision"
    if head[:1] == b"\x08":
        return "onnx"
    if head[:1] == b"\x0a":
        return "tf_graphdef"
    if ext is not None and ext != "tflite":
        # protobuf writers may order fields differently; let the importer judge the contents
        return ext
    raise ModelFormatError(f"{path}: unknown model format (first bytes {head!r}); vc4infer reads "
                           f"TFLite (.tflite), ONNX (.onnx), TensorFlow frozen graphs (.pb) and "
                           f"torchvision MobileNetV2 state dicts (.pth)")


def import_model(path: Union[str, os.PathLike], format: str = "auto", **opts) -> Graph:
    """Read a model file into a Graph. `format` ("auto" or a key of IMPORTERS) overrides the
    detection; `opts` go to the importer (see each importer's docstring)."""
    if os.path.isdir(path):
        raise ModelFormatError(f"{str(path)!r} is a folder, not a model file: give the .tflite, "
                               ".onnx, .pb or .pth file inside it")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    fmt = detect_format(path) if format == "auto" else ALIASES.get(format, format)
    if fmt not in IMPORTERS:
        raise ValueError(f"format {format!r} is not one of {sorted(IMPORTERS)} or 'auto'")
    module, func = IMPORTERS[fmt]
    importer = getattr(importlib.import_module(module), func)
    check_options(fmt, importer, opts)
    try:
        return importer(path, **opts)
    except (ModelFormatError, UnsupportedModelError) as err:
        if err.args and isinstance(err.args[0], str) and str(path) not in err.args[0]:
            err.args = (f"{path}: {err.args[0]}",) + err.args[1:]     # every message names its file
        raise


def check_options(fmt: str, importer: Callable, opts: dict) -> None:
    """The one rule for every importer: an option it does not take is an ImportOptionError that
    lists the ones it does (the importer's keyword parameters)."""
    taken = [name for name, p in inspect.signature(importer).parameters.items()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)][1:]   # [0] is the path
    unknown = sorted(set(opts) - set(taken))
    if unknown:
        raise ImportOptionError(f"the {fmt} importer does not take {', '.join(map(repr, unknown))}; "
                                f"its options are {', '.join(taken)}")
