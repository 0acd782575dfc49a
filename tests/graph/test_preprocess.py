"""Image preprocessing per family, and the ImageNet label sets."""
import numpy as np
import pytest
from PIL import Image

from vc4infer.graph.ir import Graph
from vc4infer.graph.labels import imagenet_labels, labels_by_name, labels_for, short_name
from vc4infer.graph.preprocess import ImageInputError, load_rgb, preprocess


def image_graph(shape, dtype="float32", layout="NCHW", family="torchvision"):
    g = Graph(meta={"preprocess": family})
    spec = g.add_input("x", shape, dtype, layout=layout)
    (y,) = g.add_node("relu", [spec.tensor])
    g.add_output(y)
    return g


def solid(width, height, rgb):
    return Image.new("RGB", (width, height), rgb)


def test_torchvision_constant_colour_is_normalised_per_channel():
    g = image_graph((1, 3, 224, 224))
    x = preprocess(solid(300, 200, (255, 128, 0)), g)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    # torchvision: (pixel / 255 - mean) / std with ImageNet mean/std, channels first
    for c, (pixel, mean, std) in enumerate(zip((255, 128, 0), (0.485, 0.456, 0.406),
                                               (0.229, 0.224, 0.225))):
        np.testing.assert_allclose(x[0, c], (pixel / 255 - mean) / std, rtol=1e-5)


def test_torchvision_resize_256_then_centre_crop_224():
    # 600x300: shorter side 300 -> 256, width 512; the centre 224 columns of the resized image
    # are 144..368, i.e. original columns 168.75..431.25. Red columns 0..149 fall outside.
    img = np.zeros((300, 600, 3), np.uint8)
    img[:, :150] = (255, 0, 0)
    img[:, 150:] = (0, 0, 255)
    x = preprocess(img, image_graph((1, 3, 224, 224)))
    red = (x[0, 0] * 0.229 + 0.485) * 255
    assert red.max() < 1.0          # no red survived the crop
    # a crop of the left instead of the centre would start with red columns
    img2 = img.copy()
    img2[:, 150:450] = (0, 255, 0)  # green middle band covers the whole centre crop
    x2 = preprocess(img2, image_graph((1, 3, 224, 224)))
    green = (x2[0, 1] * 0.224 + 0.456) * 255
    assert green.min() > 254.0


def test_tf_slim_range_and_central_crop():
    # a 5% red frame lies outside TF-slim's central 87.5% crop (6.25% off each side)
    img = np.zeros((400, 400, 3), np.uint8)
    img[:] = (255, 0, 0)
    img[20:380, 20:380] = (0, 255, 255)
    g = image_graph((1, 224, 224, 3), layout="NHWC", family="tf_slim")
    x = preprocess(img, g)
    assert x.shape == (1, 224, 224, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, ..., 0], -1.0, atol=1e-6)   # red 0 -> -1
    np.testing.assert_allclose(x[0, ..., 1:], 1.0, atol=1e-6)   # 255 -> +1


def test_tflite_uint8_keeps_pixels_and_layout():
    g = image_graph((1, 128, 160, 3), dtype="uint8", layout="NHWC", family="tflite_uint8")
    x = preprocess(solid(640, 480, (10, 200, 30)), g)
    assert x.shape == (1, 128, 160, 3) and x.dtype == np.uint8
    assert (x[0] == (10, 200, 30)).all()


def test_path_pil_and_array_give_the_same_input(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "p.png")
    g = image_graph((1, 3, 224, 224))
    a = preprocess(arr, g)
    np.testing.assert_array_equal(a, preprocess(Image.fromarray(arr), g))
    np.testing.assert_array_equal(a, preprocess(tmp_path / "p.png", g))
    np.testing.assert_array_equal(a, preprocess(str(tmp_path / "p.png"), g))


def test_bad_images_and_mismatched_families(tmp_path):
    g = image_graph((1, 3, 224, 224))
    with pytest.raises(ImageInputError, match="not found"):
        preprocess(tmp_path / "missing.jpg", g)
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageInputError, match="not an image"):
        preprocess(tmp_path / "text.png", g)
    with pytest.raises(ImageInputError, match="HxWx3 uint8"):
        preprocess(np.zeros((10, 10), np.uint8), g)
    with pytest.raises(ImageInputError, match="HxWx3 uint8"):
        preprocess(np.zeros((10, 10, 3), np.float32), g)
    uint8_graph = image_graph((1, 224, 224, 3), dtype="uint8", layout="NHWC", family="tf_slim")
    with pytest.raises(ImageInputError, match="tflite_uint8"):
        preprocess(np.zeros((10, 10, 3), np.uint8), uint8_graph)
    with pytest.raises(ImageInputError, match="--preprocess"):
        preprocess(np.zeros((10, 10, 3), np.uint8), image_graph((1, 3, 8, 8), family=None))
    with pytest.raises(ImageInputError, match="batch 1 and 3 channels"):
        preprocess(np.zeros((10, 10, 3), np.uint8), image_graph((2, 3, 8, 8)))


def test_family_override():
    g = image_graph((1, 224, 224, 3), layout="NHWC", family=None)
    x = preprocess(solid(50, 50, (255, 255, 255)), g, family="tf_slim")
    np.testing.assert_allclose(x, 1.0)


def test_imagenet_label_sets():
    l1000, l1001 = imagenet_labels(1000), imagenet_labels(1001)
    assert len(l1000) == 1000 and len(l1001) == 1001
    assert l1001[0] == "background" and l1001[1:] == l1000
    # standard ImageNet-1k indices
    assert l1000[0].startswith("tench")
    assert short_name(l1000[281]) == "tabby" and l1000[285] == "Egyptian cat"
    assert l1000[967] == "espresso" and l1000[999].startswith("toilet tissue")
    assert labels_by_name("imagenet1001") is l1001
    with pytest.raises(ValueError):
        labels_by_name("coco")


def test_labels_for_graphs():
    g = Graph(meta={"labels": "imagenet1001"})
    assert labels_for(g)[0] == "background"
    g = Graph()
    g.add_input("x", (1, 1000), "float32")
    g.add_output("x")
    assert labels_for(g) is imagenet_labels(1000)   # guessed from the class count
    g = Graph()
    g.add_input("x", (1, 10), "float32")
    g.add_output("x")
    assert labels_for(g) is None


def ramp_image(width, height):
    """red = x, green = y, blue = 255 - x at pixel (x, y): integer ramps (no rounding in the input)
    that bilinear resampling keeps exactly away from the borders, so the output follows from
    geometry alone, within the 0.5 of its own rounding to uint8."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)


def ramp_at(x, y):
    return np.stack(np.broadcast_arrays(x, y, 255 - x), axis=-1)


#: ImageNet mean and std as torchvision's reference scripts normalise with them
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def test_torchvision_resize_and_crop_geometry_on_a_ramp():
    """240x160: the shorter side 160 -> 256 (scale 1.6, width 384); the centre 224x224 starts at
    row 16, column 80 of the resized image. Output pixel (i, j) samples the original at the
    half-pixel-centre position ((80 + j + 0.5) / 1.6 - 0.5, (16 + i + 0.5) / 1.6 - 0.5). A crop
    one resized pixel off moves red by 0.625 and fails."""
    x = preprocess(ramp_image(240, 160), image_graph((1, 3, 224, 224)))
    i, j = np.mgrid[0:224, 0:224].astype(np.float64)
    want = ramp_at((80 + j + 0.5) / 1.6 - 0.5, (16 + i + 0.5) / 1.6 - 0.5)
    got = (x[0].transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN) * 255
    assert np.abs(got - want).max() <= 0.5 + 1e-3


def test_tf_slim_central_crop_and_resize_geometry_on_a_ramp():
    """240x160: the central 87.5% is rows 10..149 and columns 15..224 (TF's central_crop: offset
    int((side - 0.875 side) / 2)); resized to 224x224, output pixel (i, j) samples
    (15 + (j + 0.5) * 210 / 224 - 0.5, 10 + (i + 0.5) * 140 / 224 - 0.5); then x / 127.5 - 1."""
    g = image_graph((1, 224, 224, 3), layout="NHWC", family="tf_slim")
    x = preprocess(ramp_image(240, 160), g)
    i, j = np.mgrid[0:224, 0:224].astype(np.float64)
    want = ramp_at(15 + (j + 0.5) * 210 / 224 - 0.5, 10 + (i + 0.5) * 140 / 224 - 0.5)
    got = (x[0].astype(np.float64) + 1) * 127.5
    assert np.abs(got - want).max() <= 0.5 + 1e-3


def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    values = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)      # 0 .. 65520
    path = tmp_path / "grey16.png"
    Image.fromarray(values).save(path)
    from vc4infer.graph.preprocess import load_rgb
    rgb = np.asarray(load_rgb(str(path)))
    assert rgb.shape == (64, 64, 3)
    np.testing.assert_array_equal(rgb[..., 0], (values.astype(np.int64) * 255 // 65535))
    assert len(np.unique(rgb)) > 200                                          # not clipped white


def test_an_image_that_declares_a_huge_size_is_a_clear_error(tmp_path, monkeypatch):
    import PIL.Image
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100 * 100 // 2)       # 300x300 is > 2x that
    with pytest.raises(ImageInputError, match="too large to decode safely"):
        preprocess(str(path), image_graph((1, 3, 224, 224)))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_corrupt_images_give_an_image_error_or_an_image(tmp_path, fmt):
    """Bit flips, truncations and 4-byte overwrites of a small image: load_rgb returns an RGB
    image or raises ImageInputError, never another exception (3,000 such mutants were clean)."""
    import io
    import warnings

    from mutate import mutate
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(buf, fmt)
    data = buf.getvalue()
    outcomes = {"image": 0, "refused": 0}
    for _ in range(60):
        path = tmp_path / f"m.{fmt.lower()}"
        path.write_bytes(mutate(data, rng))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")          # Pillow's notes on corrupt metadata
                img = load_rgb(path)
            assert img.mode == "RGB"
            outcomes["image"] += 1
        except ImageInputError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0, outcomes
