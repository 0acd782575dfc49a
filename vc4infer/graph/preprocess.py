"""Image preprocessing for classifiers: turn a photo into exactly the array a model's input spec
asks for (shape, layout, dtype), following the convention the model was trained with.

Families (Graph.meta["preprocess"]):
- "torchvision": resize the shorter side to 256 (bilinear), centre crop 224 (scaled with the
  input size: crop = input, resize = input * 256 / 224), scale to [0, 1], subtract the ImageNet
  mean (0.485, 0.456, 0.406), divide by the std (0.229, 0.224, 0.225).
- "tf_slim": central crop of 87.5% of each side, bilinear resize to the input size, scale to
  [-1, 1] (TF-slim's Inception/MobileNet evaluation preprocessing).
- "tflite_uint8": the same crop and resize, pixels kept as uint8 0..255 (int8 inputs get
  pixel - 128), for quantized TFLite classifiers whose input quantization maps 0..255 to the
  range the float model saw.

Resizing uses Pillow's bilinear filter, which (like torchvision on PIL images) widens its
support when shrinking; TensorFlow's resize_bilinear does not, so TF-slim inputs differ slightly
from TensorFlow's own pipeline (not enough to change a confident top-1).
"""
from __future__ import annotations

import os
from typing import Any, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import Vc4InferError

FAMILIES = ("torchvision", "tf_slim", "tflite_uint8")
TORCHVISION_MEAN = (0.485, 0.456, 0.406)
TORCHVISION_STD = (0.229, 0.224, 0.225)
TORCHVISION_RESIZE_RATIO = 256 / 224
TF_SLIM_CENTRAL_FRACTION = 0.875

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]


class ImageInputError(Vc4InferError, ValueError):
    """An image cannot be read or has the wrong form (missing file, not an image, not HxWx3)."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB of any Pillow image; 16- and 32-bit grey scaled to 8 bits instead of clipped (Pillow's
    convert("RGB") clips them at 255, which turns most of a 16-bit photo white)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(img, dtype=np.int64)
        top = 65535 if img.mode.startswith("I;16") else max(int(values.max()), 1)
        grey = np.clip(values * 255 // top, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return img.convert("RGB")


def load_rgb(image: ImageLike) -> Image.Image:
    """A path, a PIL image or an HxWx3 uint8 array -> an RGB PIL image."""
    if isinstance(image, Image.Image):
        return _to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ImageInputError(f"an image array must be HxWx3 uint8 (RGB); got shape "
                                  f"{image.shape}, dtype {image.dtype}")
        return Image.fromarray(image, "RGB")
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise ImageInputError(f"image file not found: {path}")
        try:
            with Image.open(path) as img:
                return _to_rgb(img)
        except Image.DecompressionBombError as err:
            raise ImageInputError(f"{path} declares an image too large to decode safely ({err}); "
                                  "resize it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust "
                                  "the file") from err
        except (UnidentifiedImageError, OSError) as err:
            raise ImageInputError(f"{path} is not an image Pillow can read: {err}") from err
    raise ImageInputError(f"expected an image path, a PIL image or an HxWx3 uint8 array; got "
                          f"{type(image).__name__}")


def _resize_shorter(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    if w <= h:
        new = (size, max(1, int(size * h / w)))
    else:
        new = (max(1, int(size * w / h)), size)
    return img.resize(new, Image.BILINEAR)


def _centre_crop(img: Image.Image, crop_h: int, crop_w: int) -> Image.Image:
    w, h = img.size
    top = int(round((h - crop_h) / 2.0))
    left = int(round((w - crop_w) / 2.0))
    return img.crop((left, top, left + crop_w, top + crop_h))


def _central_fraction(img: Image.Image, fraction: float) -> Image.Image:
    w, h = img.size
    top = int((h - h * fraction) / 2)
    left = int((w - w * fraction) / 2)
    return img.crop((left, top, w - left, h - top))


def image_to_hwc(image: ImageLike, family: str, height: int, width: int) -> np.ndarray:
    """The preprocessed image as an HxWx3 array: float32 for "torchvision" and "tf_slim", uint8
    for "tflite_uint8"."""
    img = load_rgb(image)
    if family == "torchvision":
        img = _resize_shorter(img, int(round(min(height, width) * TORCHVISION_RESIZE_RATIO)))
        img = _centre_crop(img, height, width)
        x = np.asarray(img, dtype=np.float32) / 255.0
        return ((x - np.float32(TORCHVISION_MEAN)) / np.float32(TORCHVISION_STD)).astype(np.float32)
    if family in ("tf_slim", "tflite_uint8"):
        img = _central_fraction(img, TF_SLIM_CENTRAL_FRACTION).resize((width, height),
                                                                      Image.BILINEAR)
        pixels = np.asarray(img, dtype=np.uint8)
        if family == "tflite_uint8":
            return pixels
        return (pixels.astype(np.float32) / 127.5 - 1.0).astype(np.float32)
    raise ImageInputError(f"unknown preprocessing family {family!r}; known: {', '.join(FAMILIES)}")


def _spec_and_family(model_or_graph: Any) -> tuple:
    graph = getattr(model_or_graph, "graph", model_or_graph)
    inputs = getattr(graph, "inputs", None)
    if not inputs:
        raise ImageInputError(f"{type(model_or_graph).__name__} has no input spec to preprocess for")
    if len(inputs) != 1:
        raise ImageInputError(f"the model has {len(inputs)} inputs; an image classifier has one")
    return inputs[0], graph.meta.get("preprocess")


def preprocess(image: ImageLike, model_or_graph: Any, family: Union[str, None] = None) -> np.ndarray:
    """Turn `image` (path, PIL image or HxWx3 uint8 RGB array) into the model's input array:
    the input spec's exact shape (batch 1), layout (NCHW or NHWC) and dtype.

    family: overrides Graph.meta["preprocess"]; one of FAMILIES."""
    spec, meta_family = _spec_and_family(model_or_graph)
    family = family or meta_family
    if family is None:
        raise ImageInputError(f"the model does not say how its images are preprocessed; pass "
                              f"one of {', '.join(FAMILIES)} (CLI: --preprocess)")
    if spec.layout == "NCHW":
        n, c, h, w = spec.shape
    elif spec.layout == "NHWC":
        n, h, w, c = spec.shape
    else:
        raise ImageInputError(f"input {spec.name!r} has shape {spec.shape}: not an image input "
                              f"(expected rank 4, NCHW or NHWC)")
    if n != 1 or c != 3:
        raise ImageInputError(f"input {spec.name!r} has shape {spec.shape} ({spec.layout}); a "
                              f"single RGB image needs batch 1 and 3 channels")
    hwc = image_to_hwc(image, family, h, w)
    if spec.dtype == "float32":
        if hwc.dtype != np.float32:
            raise ImageInputError(f"preprocessing {family!r} gives uint8 pixels but the model "
                                  f"takes float32; use 'torchvision' or 'tf_slim'")
    elif spec.dtype == "uint8":
        if hwc.dtype != np.uint8:
            raise ImageInputError(f"the model takes uint8 pixels; preprocessing {family!r} gives "
                                  f"floats (use 'tflite_uint8')")
    elif spec.dtype == "int8" and hwc.dtype == np.uint8:
        hwc = (hwc.astype(np.int16) - 128).astype(np.int8)
    else:
        raise ImageInputError(f"input dtype {spec.dtype} with preprocessing {family!r} is not "
                              f"supported")
    x = hwc[None]
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)
