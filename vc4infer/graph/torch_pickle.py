"""Read a PyTorch `torch.save` state dict into numpy arrays without torch, refusing any pickle
global a state dict does not need.

Two container formats exist:
- legacy (before PyTorch 1.6): five pickles in a row (magic number, protocol version, system
  info, the object, the list of storage keys), then every storage's raw bytes in key order, each
  after an int64 count;
- zip (PyTorch >= 1.6): `<prefix>/data.pkl` holds the object, `<prefix>/data/<key>` each
  storage's raw bytes.

In both, tensors are rebuilt by `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
...)` and storages are pickle persistent ids `('storage', torch.<Type>Storage, key, location,
numel, ...)`. Unpickling can run arbitrary code, so only `collections.OrderedDict`, that rebuild
function and the storage classes are resolved; any other global raises `UnsafePickleError`
before anything is called.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import struct
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from ..errors import ModelFormatError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch storage class name -> numpy dtype (little-endian, as torch writes on every platform we
# meet; the legacy header's little_endian flag is checked).
STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}

# A zip's storages may be compressed, so their total size is not bounded by the file size; no
# model vc4infer can run on a Raspberry Pi comes near this.
MAX_STATE_DICT_BYTES = 1 << 31

ALLOWED_GLOBALS = (["collections.OrderedDict", "torch._utils._rebuild_tensor_v2"]
                   + [f"torch.{name}" for name in STORAGE_DTYPES])


class UnsafePickleError(ModelFormatError):
    """The pickle asks for a global outside the state-dict allow-list (it could run code)."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(STORAGE_DTYPES[self.name])


@dataclass
class _StorageRef:
    """A storage named by the pickle; `data` (a 1-D array) is filled once the bytes are read."""
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _PendingTensor:
    storage: _StorageRef
    offset: int
    size: tuple
    stride: tuple

    def materialise(self, where: str) -> np.ndarray:
        if self.storage.data is None:
            raise ModelFormatError(f"{where}: storage {self.storage.key!r} has no data in the file")
        if any(s < 0 for s in self.size) or any(s < 0 for s in self.stride) or self.offset < 0:
            raise ModelFormatError(f"{where}: negative size, stride or offset in a tensor")
        numel = int(np.prod(self.size, dtype=np.int64)) if self.size else 1
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) if numel else 0
        if numel and last >= self.storage.data.size:
            raise ModelFormatError(f"{where}: tensor of size {self.size} with stride {self.stride} "
                                   f"at offset {self.offset} reaches past its storage of "
                                   f"{self.storage.data.size} elements")
        item = self.storage.data.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset:], shape=self.size,
            strides=tuple(s * item for s in self.stride), writeable=False)
        return np.array(view)  # contiguous private copy


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored) -> _PendingTensor:
    if not isinstance(storage, _StorageRef):
        raise ModelFormatError("_rebuild_tensor_v2 called on something that is not a storage")
    try:
        size = tuple(int(n) for n in size)
        stride = tuple(int(n) for n in stride)
    except (TypeError, ValueError) as err:
        raise ModelFormatError("tensor size or stride is not a tuple of integers") from err
    if len(size) != len(stride):
        raise ModelFormatError(f"tensor size {size} and stride {stride} differ in length")
    return _PendingTensor(storage, int(storage_offset), size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the allow-listed globals, to stand-ins of ours."""

    def __init__(self, file: BinaryIO, storages: dict[str, _StorageRef]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full == "collections.OrderedDict":
            return collections.OrderedDict
        if full == "torch._utils._rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name.endswith("Storage"):
            raise ModelFormatError(f"tensors stored as torch.{name} are not supported; vc4infer "
                                   f"reads {', '.join(sorted(STORAGE_DTYPES))}")
        raise UnsafePickleError(
            f"refusing pickle global {full!r}: a state dict needs only "
            f"{', '.join(ALLOWED_GLOBALS)}. The file is not a plain state dict (or is malicious); "
            f"re-save it with torch.save(model.state_dict(), path).")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ModelFormatError(f"unexpected persistent id {pid!r:.80} (expected a storage)")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise ModelFormatError(f"storage {key!r} has no torch storage type")
        if not isinstance(numel, int) or numel < 0:
            raise ModelFormatError(f"storage {key!r} has an invalid element count {numel!r:.40}")
        if len(pid) > 5 and pid[5] is not None:
            raise ModelFormatError(f"storage {key!r} is a view of another storage; vc4infer reads "
                                   f"only plain storages (re-save the state dict with torch >= 1.6)")
        ref = self._storages.get(key)
        if ref is None:
            ref = self._storages[key] = _StorageRef(key, storage_type.dtype, numel)
        elif ref.dtype != storage_type.dtype or ref.numel != numel:
            raise ModelFormatError(f"storage {key!r} is declared twice with different types/sizes")
        return ref


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


def _check_memo(file: BinaryIO, what: str) -> None:
    """Refuse a pickle whose memo indices reach past the objects it has built so far: a pickler
    numbers them from 0, and CPython's unpickler grows its memo table to the largest index it is
    given (a 4-byte edit of a .pth made loading take 4.7 GB). Reads up to the pickle's STOP;
    the caller rewinds."""
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(file)):
            if op.name in _MEMO_OPS and isinstance(arg, int) and arg > count:
                raise ModelFormatError(
                    f"the {what} pickle is corrupt: memo index {arg} after only {count} "
                    f"opcodes (a pickle numbers its memo from 0; this index would make the "
                    f"unpickler allocate a table of {arg} entries)")
    except ValueError as err:
        raise ModelFormatError(f"the {what} pickle is corrupt or truncated: {err}") from err


def _unpickle(file: BinaryIO, storages: dict[str, _StorageRef], what: str) -> Any:
    start = file.tell()
    _check_memo(file, what)
    file.seek(start)
    try:
        return _StateDictUnpickler(file, storages).load()
    except (UnsafePickleError, ModelFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, struct.error, MemoryError, RecursionError) as err:
        raise ModelFormatError(f"the {what} pickle is corrupt or truncated: "
                               f"{type(err).__name__}: {err}") from err


def _resolve(obj: Any, where: str) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise ModelFormatError(f"{where} holds a {type(obj).__name__}, not a state dict "
                               f"(a dict of name -> tensor)")
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(value, _PendingTensor):
            raise ModelFormatError(f"{where}: entry {key!r} is a {type(value).__name__}, not a "
                                   f"tensor; expected a plain state dict")
        out[str(key)] = value.materialise(f"{where}: {key}")
    return out


def _load_legacy(file: BinaryIO, size_bytes: int, where: str) -> dict[str, np.ndarray]:
    storages: dict[str, _StorageRef] = {}
    magic = _unpickle(file, storages, "magic-number")
    if magic != LEGACY_MAGIC:
        raise ModelFormatError(f"{where} is not a torch.save file (wrong magic number)")
    version = _unpickle(file, storages, "protocol-version")
    if version != LEGACY_PROTOCOL_VERSION:
        raise ModelFormatError(f"{where}: unsupported torch.save protocol version {version!r}")
    sys_info = _unpickle(file, storages, "system-info")
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise ModelFormatError(f"{where} was saved on a big-endian machine; not supported")
    obj = _unpickle(file, storages, "state-dict")
    keys = _unpickle(file, storages, "storage-key")
    if not isinstance(keys, list):
        raise ModelFormatError(f"{where}: the storage key list is a {type(keys).__name__}")
    for key in keys:
        ref = storages.get(str(key))
        if ref is None:
            raise ModelFormatError(f"{where}: storage {key!r} is listed but no tensor uses it")
        head = file.read(8)
        if len(head) != 8:
            raise ModelFormatError(f"{where}: truncated before the data of storage {key!r}")
        count = struct.unpack("<q", head)[0]
        # torch 1.x writes the element count; some writers store the byte count instead.
        if count == ref.numel:
            nbytes = ref.numel * ref.dtype.itemsize
        elif count == ref.numel * ref.dtype.itemsize:
            nbytes = count
        else:
            raise ModelFormatError(f"{where}: storage {key!r} declares {ref.numel} elements but "
                                   f"its data header says {count}")
        if nbytes > size_bytes - file.tell():
            raise ModelFormatError(f"{where}: truncated in the data of storage {key!r}")
        ref.data = np.frombuffer(file.read(nbytes), dtype=ref.dtype)
    return _resolve(obj, where)


def _load_zip(path: str, where: str) -> dict[str, np.ndarray]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, NotImplementedError) as err:   # e.g. "zip file version"
        raise ModelFormatError(f"{where} is not a readable zip archive: {err}") from err
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ModelFormatError(f"{where}: a zip torch.save file has exactly one data.pkl; "
                                   f"found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        storages: dict[str, _StorageRef] = {}
        try:
            if archive.getinfo(pickles[0]).file_size > MAX_STATE_DICT_BYTES:
                raise ModelFormatError(f"{where}: data.pkl claims an implausible size")
            obj = _unpickle(io.BytesIO(archive.read(pickles[0])), storages, "state-dict")
            total = sum(ref.numel * ref.dtype.itemsize for ref in storages.values())
            if total > MAX_STATE_DICT_BYTES:
                raise ModelFormatError(f"{where}: tensors total {total} bytes, more than the "
                                       f"{MAX_STATE_DICT_BYTES} vc4infer accepts")
            for key, ref in storages.items():
                name = f"{prefix}data/{key}"
                try:
                    info = archive.getinfo(name)
                except KeyError as err:
                    raise ModelFormatError(f"{where}: storage file {name} is missing") from err
                nbytes = ref.numel * ref.dtype.itemsize
                if info.file_size != nbytes:
                    raise ModelFormatError(f"{where}: {name} holds {info.file_size} bytes, "
                                           f"expected {nbytes}")
                ref.data = np.frombuffer(archive.read(name), dtype=ref.dtype)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
                NotImplementedError, RuntimeError) as err:
            # NotImplementedError: an unknown compression method; RuntimeError: an entry
            # flagged as encrypted (torch.save writes neither)
            raise ModelFormatError(f"{where}: corrupt zip archive: {err}") from err
    return _resolve(obj, where)


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a `torch.save` file of a state dict (legacy or zip format) into name -> numpy array
    (float32 parameters stay float32; integer buffers such as num_batches_tracked are int64).

    Raises UnsafePickleError on any pickle global outside ALLOWED_GLOBALS, ModelFormatError on a
    corrupt, truncated or non-state-dict file.
    """
    where = os.fspath(path)
    try:
        size_bytes = os.path.getsize(where)
        with open(where, "rb") as file:
            head = file.read(4)
            if head[:1] == b"\x80":
                # in memory: a pickle's declared string length is then read as at most what
                # the file holds, never allocated in full (legacy files are small)
                file.seek(0)
                return _load_legacy(io.BytesIO(file.read()), size_bytes, where)
    except OSError as err:
        raise ModelFormatError(f"cannot read {where}: {err}") from err
    if head == b"PK\x03\x04":
        return _load_zip(where, where)
    raise ModelFormatError(f"{where} is not a torch.save file (neither a zip archive nor a "
                           f"pickle)")
