"""Build torchvision's MobileNetV2 as an IR graph from its `torch.save` state dict, without torch.

The architecture is torchvision's `mobilenet_v2` (Sandler et al. 2018 as implemented in
torchvision.models.mobilenetv2): a 3x3 stride-2 stem, 17 inverted-residual blocks (1x1 expand
unless the expansion is 1, 3x3 depthwise, 1x1 linear projection, a skip connection when the
stride is 1 and the widths match), a 1x1 conv to the last width, global average pooling and a
linear classifier. Every convolution is bias-free and followed by BatchNorm (eps 1e-5); ReLU6
follows all but the projections. Channel widths come from the weights (so width multipliers
load too); strides are the architecture's and are not stored in a state dict.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np

from ..errors import ModelFormatError
from .ir import Graph
from .torch_pickle import load_state_dict

# torchvision's inverted-residual table: expansion t, output channels c, repeats n, stride s.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
BN_EPSILON = 1e-5


def block_strides() -> list:
    """Stride of each inverted-residual block, features.1 .. features.17 in order."""
    strides = []
    for _t, _c, n, s in INVERTED_RESIDUAL_SETTING:
        strides.extend([s] + [1] * (n - 1))
    return strides


class _Builder:
    def __init__(self, state: dict, meta: dict):
        self.state = state
        self.used: set = set()
        self.g = Graph(meta=meta)

    def take(self, key: str, ndim: Optional[int] = None) -> np.ndarray:
        if key not in self.state:
            raise ModelFormatError(f"state dict has no {key!r}: this is not torchvision's "
                                   f"MobileNetV2 state dict")
        value = self.state[key]
        if ndim is not None and value.ndim != ndim:
            raise ModelFormatError(f"{key} has shape {value.shape}, expected {ndim} dimensions")
        self.used.add(key)
        return value.astype(np.float32, copy=False)

    def conv_bn(self, x: str, conv: str, bn: str, stride: int, relu6: bool) -> str:
        """Bias-free conv (torch OIHW weight), BatchNorm, optional ReLU6."""
        w = self.take(f"{conv}.weight", 4)
        cin = self.g.tensor(x).shape[3]
        out_ch, in_per_group, kh, kw = w.shape
        if cin % in_per_group:
            raise ModelFormatError(f"{conv}.weight {w.shape} does not fit {cin} input channels")
        groups = cin // in_per_group
        w_name = self.g.add_constant(self.g.unique_name(f"{conv}.weight"),
                                     np.ascontiguousarray(w.transpose(0, 2, 3, 1)))
        pad_h, pad_w = (kh - 1) // 2, (kw - 1) // 2
        (y,) = self.g.add_node("conv2d", [x, w_name], name=self.g.unique_name(conv),
                               strides=(stride, stride), pads=(pad_h, pad_w, pad_h, pad_w),
                               groups=groups)
        params = []
        for field in ("weight", "bias", "running_mean", "running_var"):
            value = self.take(f"{bn}.{field}", 1)
            if value.shape != (out_ch,):
                raise ModelFormatError(f"{bn}.{field} has shape {value.shape}, expected "
                                       f"({out_ch},)")
            params.append(self.g.add_constant(self.g.unique_name(f"{bn}.{field}"), value))
        self.used.add(f"{bn}.num_batches_tracked")
        (y,) = self.g.add_node("batch_norm", [y, *params], name=self.g.unique_name(bn),
                               epsilon=BN_EPSILON)
        if relu6:
            (y,) = self.g.add_node("relu6", [y], name=self.g.unique_name(f"{bn}.relu6"))
        return y

    def block(self, x: str, index: int, stride: int) -> str:
        p = f"features.{index}.conv"
        cin = self.g.tensor(x).shape[3]
        if f"{p}.0.0.weight" in self.state and self.state[f"{p}.0.0.weight"].shape[1] == 1:
            # expansion 1: depthwise (conv.0), projection (conv.1), its BN (conv.2)
            y = self.conv_bn(x, f"{p}.0.0", f"{p}.0.1", stride, relu6=True)
            y = self.conv_bn(y, f"{p}.1", f"{p}.2", 1, relu6=False)
        else:
            y = self.conv_bn(x, f"{p}.0.0", f"{p}.0.1", 1, relu6=True)
            y = self.conv_bn(y, f"{p}.1.0", f"{p}.1.1", stride, relu6=True)
            y = self.conv_bn(y, f"{p}.2", f"{p}.3", 1, relu6=False)
        if stride == 1 and self.g.tensor(y).shape[3] == cin:
            (y,) = self.g.add_node("add", [x, y], name=self.g.unique_name(f"features.{index}.add"))
        return y

    def build(self, batch: int, height: int, width: int) -> Graph:
        spec = self.g.add_input("input", (batch, 3, height, width), "float32", layout="NCHW")
        x = self.conv_bn(spec.tensor, "features.0.0", "features.0.1", 2, relu6=True)
        strides = block_strides()
        for index, stride in enumerate(strides, start=1):
            x = self.block(x, index, stride)
        last = len(strides) + 1
        x = self.conv_bn(x, f"features.{last}.0", f"features.{last}.1", 1, relu6=True)
        (x,) = self.g.add_node("global_avg_pool", [x], name="avgpool")
        channels = self.g.tensor(x).shape[3]
        (x,) = self.g.add_node("reshape", [x], name="flatten", shape=(batch, channels))
        w = self.g.add_constant("classifier.1.weight", self.take("classifier.1.weight", 2))
        b = self.g.add_constant("classifier.1.bias", self.take("classifier.1.bias", 1))
        (x,) = self.g.add_node("fully_connected", [x, w, b], outputs=["logits"],
                               name="classifier.1")
        self.g.add_output(x, name="logits")
        unused = sorted(set(self.state) - self.used)
        if unused:
            raise ModelFormatError(f"state dict has entries torchvision's MobileNetV2 does not "
                                   f"use: {', '.join(unused[:6])}{' ...' if len(unused) > 6 else ''}")
        self.g.validate()
        return self.g


def build_mobilenet_v2(state: dict, input_size: int = 224, batch: int = 1,
                       name: str = "mobilenet_v2", labels: Optional[str] = None,
                       preprocess: str = "torchvision") -> Graph:
    """The IR graph of torchvision's MobileNetV2 with the weights of `state` (name -> array).

    Input: float32 NCHW (batch, 3, input_size, input_size), normalised as torchvision does
    (Graph.meta preprocess "torchvision"). Output: the classifier's logits (batch, classes).
    labels: Graph.meta labels; default "imagenet1000" when the classifier has 1000 classes."""
    if labels is None:
        classes = state.get("classifier.1.weight", np.zeros((0, 0))).shape[0]
        labels = "imagenet1000" if classes == 1000 else None
    meta = {"source_format": "torchvision", "preprocess": preprocess, "labels": labels,
            "name": name}
    return _Builder(state, meta).build(batch, input_size, input_size)


def import_torchvision_mobilenet_v2(path: Union[str, os.PathLike], input_size: int = 224,
                                    batch: int = 1, name: Optional[str] = None,
                                    labels: Optional[str] = None,
                                    preprocess: str = "torchvision") -> Graph:
    """Read a torchvision MobileNetV2 state dict saved with `torch.save` (legacy or zip format)
    and build its IR graph (see `build_mobilenet_v2`). Only the pickle globals a state dict
    needs are allowed (`torch_pickle.ALLOWED_GLOBALS`)."""
    path = os.fspath(path)
    state = load_state_dict(path)
    return build_mobilenet_v2(state, input_size=input_size, batch=batch, labels=labels,
                              preprocess=preprocess,
                              name=name or os.path.splitext(os.path.basename(path))[0])
