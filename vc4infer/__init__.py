"""vc4infer: run convolutional networks on the Raspberry Pi's VideoCore IV QPUs.

`vc4infer.load(path_or_zoo_name)` gives a Model; `vc4infer.qpu` is the QPU toolchain.
"""
__version__ = "0.1.0"


def load(path_or_name, backend: str = "auto", **kwargs):
    """Load a model file (TFLite, ONNX, TF frozen graph, torchvision .pth) or a zoo name; see
    `vc4infer.model.load` for the options and `vc4infer.model.Model` for what it returns."""
    from .model import load as _load
    return _load(path_or_name, backend=backend, **kwargs)
