"""Every CLI command turns the failures a user can cause into one line and an exit code of its
kind (vc4infer.cli.EXIT_CODES: 3 an input, 4 the model file, 5 this machine, 6 the GPU or a QPU
program; 2 click's usage errors); `--debug` shows the traceback instead."""
import pytest
from click.testing import CliRunner

from vc4infer.cli import main

IMAGE = "demos/images/coffee.png"


@pytest.fixture
def garbage(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00\x01not a model" * 20)
    return str(path)


@pytest.fixture
def not_an_image(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_text("hello")
    return str(path)


CASES = [
    ("classify, missing image", lambda g, i: ["classify", "/no/such.png", "--backend", "neon"], 3,
     "not found"),
    ("classify, unreadable image", lambda g, i: ["classify", i, "--backend", "neon"], 3,
     "not an image"),
    ("classify, corrupt model", lambda g, i: ["classify", IMAGE, "--model", g, "--backend", "neon"],
     4, "junk.onnx"),
    ("classify, missing model", lambda g, i: ["classify", IMAGE, "--model", "/no/m.onnx",
                                              "--backend", "neon"], 3, "does not exist"),
    ("classify, hw off a Pi", lambda g, i: ["classify", IMAGE, "--backend", "hw"], 5,
     "not a Raspberry Pi"),
    ("bench, corrupt model", lambda g, i: ["bench", "--model", g, "--backend", "neon"], 4,
     "junk.onnx"),
    ("camera, corrupt model", lambda g, i: ["camera", "--model", g, "--source", "demos/images",
                                            "--frames", "1", "--backend", "neon"], 4, "junk.onnx"),
    ("emu, missing kernel", lambda g, i: ["emu", "/no/kernel.bin"], 2, "No such file"),
    ("disasm, missing file", lambda g, i: ["disasm", "/no/kernel.bin"], 2, "No such file"),
    ("asm, no kernel named", lambda g, i: ["asm", "/no/kernel.py"], 2, "MODULE:KERNEL"),
]


@pytest.mark.not_on_pi
@pytest.mark.parametrize("name, args, code, says", CASES, ids=[c[0] for c in CASES])
def test_each_bad_input_is_one_line_and_its_exit_code(name, args, code, says, garbage, not_an_image):
    result = CliRunner().invoke(main, args(garbage, not_an_image))
    assert result.exit_code == code, (name, result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert says in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output


def test_debug_shows_the_traceback(garbage):
    result = CliRunner().invoke(main, ["--debug", "classify", IMAGE, "--model", garbage,
                                       "--backend", "neon"])
    assert result.exit_code != 0 and result.exception is not None
    assert not isinstance(result.exception, SystemExit)          # the error itself escaped
