"""One rule for importer options: every importer refuses an option it does not take, before it
reads the file, with an error that lists the options it takes."""
import pytest

import vc4infer
from vc4infer.errors import ImportOptionError
from vc4infer.graph.importers import import_model

# format -> (first bytes that select it, the options its docstring documents)
FORMATS = {
    "onnx": (b"\x08\x07", ["batch", "input_shapes", "preprocess", "labels"]),
    "tflite": (b"\x1c\x00\x00\x00TFL3", ["name"]),
    "tf_graphdef": (b"\x0a\x05", ["output", "input", "input_shape", "preprocess", "labels", "name"]),
    "torchvision": (b"PK\x03\x04", ["input_size", "batch", "name", "labels", "preprocess"]),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_unknown_option_is_refused_with_the_list_of_options(tmp_path, fmt):
    head, options = FORMATS[fmt]
    path = tmp_path / "model.bin"
    path.write_bytes(head + bytes(64))          # not a valid file: the option check comes first
    with pytest.raises(ImportOptionError) as info:
        import_model(str(path), bathc=4)
    message = str(info.value)
    assert f"the {fmt} importer does not take 'bathc'" in message
    assert message.endswith("its options are " + ", ".join(options))


def test_load_of_an_onnx_file_with_a_tf_option_says_so(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07" + bytes(16))
    with pytest.raises(ImportOptionError, match=r"does not take 'bathc', 'output'; its options are batch"):
        vc4infer.load(str(path), output="no_such_tensor", bathc=4)
