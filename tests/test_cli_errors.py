"""Every CLI command turns the failures a user can cause into one line and an exit code of its
kind (vc4infer.cli.EXIT_CODES: 3 an input, 4 the model file, 5 this machine, 6 the GPU or a QPU
program; 2 click's usage errors); `--debug` shows the traceback instead."""
import importlib.util
import struct
import zlib

import pytest
from click.testing import CliRunner

from vc4infer.cli import main
from vc4infer.qpu import assemble

IMAGE = "demos/images/coffee.png"

KERNELS = '''
from vc4infer.qpu import qpu


@qpu
def raises(asm):
    raise ValueError("boom")


@qpu
def two_args(asm, n, m):
    nop()


@qpu
def forever(asm):
    L.top
    jmp(L.top)
    nop()
    nop()
    nop()


@qpu
def store_at_uniform(asm):
    setup_vpm_write()
    mov(vpm, 1.0)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def host_function(drv, x):
    return x
'''


def _png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (its pixel data is a few bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _unsupported_onnx(path) -> None:
    """A well-formed ONNX model whose one operator (Hardmax) vc4infer does not implement."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="hm")], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


@pytest.fixture
def files(tmp_path):
    """The bad inputs, by name: paths as strings."""
    f = {}

    def put(name, data):
        path = tmp_path / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
        f[name] = str(path)

    put("junk.onnx", b"\x00\x01not a model" * 20)
    put("photo.jpg", "hello")
    with open(IMAGE, "rb") as image:
        put("cut.png", image.read()[:5000])
    put("bomb.png", _png(30000, 30000))
    put("odd.bin", b"\x01\x02\x03")
    put("bad.hex", "0x12 zz\n")
    put("kernels.py", KERNELS)
    put("broken.py", "def k(asm:\n")
    (tmp_path / "empty").mkdir()
    f["empty"] = str(tmp_path / "empty")
    _unsupported_onnx(tmp_path / "hardmax.onnx")
    f["hardmax.onnx"] = str(tmp_path / "hardmax.onnx")
    spec = importlib.util.spec_from_file_location("cli_error_kernels", f["kernels.py"])
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    put("forever.bin", assemble(kernels.forever))
    put("store.bin", assemble(kernels.store_at_uniform))
    return f


NEON = ["--backend", "neon"]
CAMERA = ["camera", "--frames", "1", "--backend", "neon"]

# (name, arguments given the files, exit code, text the one error line holds)
CASES = [
    # classify: images, then models, then the machine
    ("classify, missing image", lambda f: ["classify", "/no/such.png", *NEON], 3, "not found"),
    ("classify, a folder", lambda f: ["classify", f["empty"], *NEON], 3, "is a folder"),
    ("classify, not an image", lambda f: ["classify", f["photo.jpg"], *NEON], 3, "photo.jpg"),
    ("classify, truncated image", lambda f: ["classify", f["cut.png"], *NEON], 3, "cut.png"),
    ("classify, decompression bomb", lambda f: ["classify", f["bomb.png"], *NEON], 3, "too large"),
    ("classify, corrupt model", lambda f: ["classify", IMAGE, "--model", f["junk.onnx"], *NEON], 4,
     "junk.onnx"),
    ("classify, unsupported operator", lambda f: ["classify", IMAGE, "--model", f["hardmax.onnx"],
                                                  *NEON], 4, "Hardmax"),
    ("classify, model is a folder", lambda f: ["classify", IMAGE, "--model", f["empty"], *NEON], 4,
     "is a folder"),
    ("classify, missing model", lambda f: ["classify", IMAGE, "--model", "/no/m.onnx", *NEON], 3,
     "does not exist"),
    ("classify, unknown zoo name", lambda f: ["classify", IMAGE, "--model", "mobilenet_v9", *NEON], 3,
     "unknown model 'mobilenet_v9'"),
    ("classify, hw off a Pi", lambda f: ["classify", IMAGE, "--backend", "hw"], 5, "not a Raspberry Pi"),
    # camera
    ("camera, corrupt model", lambda f: [*CAMERA, "--model", f["junk.onnx"], "--source", "demos/images"],
     4, "junk.onnx"),
    ("camera, missing source", lambda f: [*CAMERA, "--source", "/no/frames"], 3, "/no/frames"),
    ("camera, folder without images", lambda f: [*CAMERA, "--source", f["empty"]], 3, "holds no images"),
    ("camera, source not an image", lambda f: [*CAMERA, "--source", f["photo.jpg"]], 3, "photo.jpg"),
    ("camera, bad resolution", lambda f: [*CAMERA, "--resolution", "big"], 3, "WIDTHxHEIGHT"),
    ("camera, no camera", lambda f: [*CAMERA, "--source", "picamera"], 5, "no camera found"),
    ("camera, bad --web address", lambda f: [*CAMERA, "--source", "demos/images", "--web", "localhost"],
     3, "[HOST:]PORT"),
    # bench
    ("bench, corrupt model", lambda f: ["bench", "--model", f["junk.onnx"], *NEON], 4, "junk.onnx"),
    ("bench, missing model", lambda f: ["bench", "--model", "/no/m.onnx", *NEON], 3, "does not exist"),
    ("bench, --json into a missing folder", lambda f: ["bench", "--model", "mobilenet_v2", *NEON,
                                                       "--json", "/no/dir/r.json"], 2, "/no/dir"),
    ("bench, nothing chosen", lambda f: ["bench"], 2, "choose what to benchmark"),
    # selftest, models
    ("selftest, no case matches", lambda f: ["selftest", "-k", "no-such-case"], 2, "no-such-case"),
    ("selftest, hw off a Pi", lambda f: ["selftest", "--backend", "hw"], 5, "not a Raspberry Pi"),
    ("models path, unknown name", lambda f: ["models", "path", "mobilenet_v9"], 3, "mobilenet_v9"),
    ("models fetch, unknown name", lambda f: ["models", "fetch", "mobilenet_v9"], 3, "mobilenet_v9"),
    # asm
    ("asm, no kernel named", lambda f: ["asm", "/no/kernel.py"], 2, "MODULE:KERNEL"),
    ("asm, missing file", lambda f: ["asm", "/no/kernel.py:k"], 2, "no such file"),
    ("asm, no such kernel", lambda f: ["asm", f["kernels.py"] + ":nothing"], 2, "no kernel function"),
    ("asm, not a kernel", lambda f: ["asm", f["kernels.py"] + ":host_function"], 2, "not a QPU kernel"),
    ("asm, file does not load", lambda f: ["asm", f["broken.py"] + ":k"], 3, "SyntaxError at line 1"),
    ("asm, kernel raises", lambda f: ["asm", f["kernels.py"] + ":raises"], 3, "ValueError at line 7"),
    ("asm, wrong arguments", lambda f: ["asm", f["kernels.py"] + ":two_args", "1"], 2, "(asm, n, m)"),
    ("asm, unwritable output", lambda f: ["asm", f["kernels.py"] + ":two_args", "1", "2", "-o",
                                          "/no/dir/k.bin"], 3, "cannot write /no/dir/k.bin"),
    # disasm
    ("disasm, missing file", lambda f: ["disasm", "/no/kernel.bin"], 2, "No such file"),
    ("disasm, not whole instructions", lambda f: ["disasm", f["odd.bin"]], 3, "3 bytes"),
    ("disasm, bad hex", lambda f: ["disasm", f["bad.hex"], "--format", "hex"], 3, "'zz'"),
    # emu: arguments, then programs that fail
    ("emu, missing kernel", lambda f: ["emu", "/no/kernel.bin"], 2, "No such file"),
    ("emu, not whole instructions", lambda f: ["emu", f["odd.bin"]], 2, "3 bytes"),
    ("emu, bad uniform", lambda f: ["emu", f["store.bin"], "--uniforms", "bufx"], 2, "'bufx'"),
    ("emu, no such buffer", lambda f: ["emu", f["store.bin"], "--uniforms", "buf0"], 2, "0 buffers"),
    ("emu, bad --trace-qpus", lambda f: ["emu", f["store.bin"], "--trace", "--trace-qpus", "x"], 2,
     "--trace-qpus"),
    ("emu, traced QPU not launched", lambda f: ["emu", f["store.bin"], "--trace", "--trace-qpus", "5"],
     2, "QPU 5 is not launched"),
    ("emu, --dump of no buffer", lambda f: ["emu", f["store.bin"], "--alloc", "64", "--uniforms", "buf0",
                                            "--dump", "3"], 2, "--dump 3"),
    ("emu, more memory than it has", lambda f: ["emu", f["store.bin"], "--alloc", str(1 << 40)], 6,
     "cannot allocate"),
    ("emu, store outside every buffer", lambda f: ["emu", f["store.bin"], "--alloc", "64", "--uniforms",
                                                   "buf0+32"], 6, "MemoryFaultError"),
    ("emu, program that never ends", lambda f: ["emu", f["forever.bin"], "--max-instructions", "5000"],
     6, "BudgetExceededError"),
]


@pytest.mark.not_on_pi
@pytest.mark.parametrize("name, args, code, says", CASES, ids=[c[0] for c in CASES])
def test_each_bad_input_is_one_line_and_its_exit_code(name, args, code, says, files, monkeypatch):
    monkeypatch.delenv("VC4INFER_SIMULATED_BOARD", raising=False)
    result = CliRunner().invoke(main, args(files))
    assert result.exit_code == code, (name, result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert says in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output


def test_every_command_is_in_the_matrix():
    from vc4infer.cli import COMMANDS
    tried = {args(dict.fromkeys(["junk.onnx", "photo.jpg", "cut.png", "bomb.png", "odd.bin", "bad.hex",
                                 "kernels.py", "broken.py", "empty", "hardmax.onnx", "forever.bin",
                                 "store.bin"], "x"))[0]
             for _, args, _, _ in CASES}
    assert set(COMMANDS) - tried == {"info"}      # info takes no input: it reports, never fails


def test_a_bad_simulated_board_name_is_an_input_error(monkeypatch):
    monkeypatch.setenv("VC4INFER_SIMULATED_BOARD", "pi9")
    result = CliRunner().invoke(main, ["classify", IMAGE, "--backend", "hw"])
    assert result.exit_code == 3 and "simulated board 'pi9'" in result.output, result.output
    info = CliRunner().invoke(main, ["info"])                 # info reports it and goes on
    assert info.exit_code == 0 and "not usable" in info.output, info.output


def test_debug_shows_the_traceback(files):
    result = CliRunner().invoke(main, ["--debug", "classify", IMAGE, "--model", files["junk.onnx"],
                                       "--backend", "neon"])
    assert result.exit_code != 0 and result.exception is not None
    assert not isinstance(result.exception, SystemExit)          # the error itself escaped
