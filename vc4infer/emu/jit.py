"""The emulator's optional numba compilation.

Every hot function of the emulator is written in the subset of Python that numba compiles and is
decorated with `jit`. With numba installed it is compiled (cached on disk, so later processes skip the
compile); without numba, or with the environment variable VC4INFER_NO_NUMBA=1 set before the first
import, the same functions run as plain Python on the same numpy arrays (slowly, but identically).

How the compiled loop is kept fast (each measured with `vc4infer bench --emulator`):
- no reference counting (`_nrt=False`): numba's atomic increments and decrements on every array
  view took over half of the loop's time. Compiled functions therefore cannot allocate arrays:
  scratch arrays come from the caller or from `stack_array`;
- `stack_array` scratch lives on the compiled function's stack, which the compiler knows no
  argument array overlaps, so 16-element loops that write it can become SIMD code;
- `vectorizing()` turns on LLVM's SLP vectorizer (numba's default is off, numba issue #8705)
  while the emulator compiles, and only then; it is what turns those 16-element loops into
  SIMD instructions.

Numba keys the on-disk cache of a function on the content of its own source file only, but the
loop in core.py inlines and links helpers from the other modules and constants from isa.py; so
the first `jit` of a process compares a digest of all those sources with the one stored beside
the cache and drops the emulator's cache files when they differ (after an edit or an upgrade).
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import os
from pathlib import Path

import numpy as np

#: True when the hot loop is compiled by numba
NUMBA_ENABLED = False

if os.environ.get("VC4INFER_NO_NUMBA", "") not in ("1", "true", "yes"):
    try:
        import numba as _numba
        NUMBA_ENABLED = True
    except ImportError:  # numba is an optional extra ([emu]); fall back to plain Python
        _numba = None


#: numba's "numpy" error model drops the zero-divisor test (and its exception path) from every
#: integer `//`, `%` and float `/` of the hot loop; harmless here because every divisor in the
#: emulator is a positive constant or a positive timing parameter, and the SFU guards its own
#: divisions by zero.
ERROR_MODEL = "numpy"
_OPTIONS = dict(cache=True, nogil=True, error_model=ERROR_MODEL, _nrt=False)


def jit(function):
    """Compile `function` with numba (nopython, cached) when available; else return it unchanged."""
    if NUMBA_ENABLED:
        return _checked_cache(_numba.njit(**_OPTIONS)(function))
    return function


def jit_inline(function):
    """`jit`, and inlined into its callers by numba: for the per-instruction ALU functions, whose
    call would otherwise cost more than their work (ten array arguments per call)."""
    if NUMBA_ENABLED:
        return _checked_cache(_numba.njit(inline="always", **_OPTIONS)(function))
    return function


_EMU_DIR = Path(__file__).resolve().parent
#: emulator modules that only the host-side Python reads (tests/emu/test_backend.py checks that no
#: compiled module imports them): editing them needs no recompile
HOST_ONLY_MODULES = ("__init__", "bench", "errors", "machine", "trace", "warmup")
_SOURCES = sorted(p for p in _EMU_DIR.glob("*.py") if p.stem not in HOST_ONLY_MODULES) + [
    _EMU_DIR.parent / "qpu" / "isa.py"]
STAMP_NAME = "vc4infer-emu.sources"
_checked_dirs: set = set()


def sources_digest() -> str:
    digest = hashlib.sha256()
    for path in _SOURCES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _checked_cache(dispatcher):
    """Drop stale emulator cache files in the dispatcher's cache directory (once per process and
    directory): those compiled from other versions of the emulator's sources."""
    cache_dir = dispatcher._cache.cache_path
    if cache_dir in _checked_dirs:
        return dispatcher
    _checked_dirs.add(cache_dir)
    stamp = os.path.join(cache_dir, STAMP_NAME)
    digest = sources_digest()
    try:
        with open(stamp) as f:
            if f.read() == digest:
                return dispatcher
    except OSError:
        pass
    try:
        for source in _SOURCES:
            if source.parent == _EMU_DIR:
                for cached in glob.glob(os.path.join(cache_dir, source.stem + ".*.nb[ic]")):
                    os.remove(cached)
        os.makedirs(cache_dir, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(digest)
    except OSError:           # a read-only or shared cache: numba then recompiles or reuses
        pass
    return dispatcher


@contextlib.contextmanager
def vectorizing():
    """Compile whatever numba compiles inside this block with LLVM's SLP vectorizer on."""
    if not NUMBA_ENABLED:
        yield
        return
    from numba.core import config
    saved = config.SLP_VECTORIZE
    config.SLP_VECTORIZE = 1
    try:
        yield
    finally:
        config.SLP_VECTORIZE = saved


def _stack_array_intrinsic(dtype):
    """A numba intrinsic `f(n)` (n a literal int) giving a 1-D C array of n `dtype` elements on
    the stack of the compiled function that calls it (uninitialised)."""
    from numba import types
    from numba.core import cgutils
    from numba.core.errors import TypingError
    from numba.extending import intrinsic
    from numba.np.arrayobj import populate_array

    element = _numba.from_dtype(np.dtype(dtype))
    array_type = types.Array(element, 1, "C")

    @intrinsic
    def stack_array(typingctx, n):
        if not isinstance(n, types.IntegerLiteral):
            raise TypingError("stack_array needs a literal element count")
        count = n.literal_value

        def codegen(context, builder, signature, args):
            intp = lambda v: context.get_constant(types.intp, v)  # noqa: E731
            itemsize = context.get_abi_sizeof(context.get_value_type(element))
            data = cgutils.alloca_once(builder, context.get_value_type(element), size=intp(count))
            array = context.make_array(array_type)(context, builder)
            populate_array(array, data=data, shape=cgutils.pack_array(builder, [intp(count)]),
                           strides=cgutils.pack_array(builder, [intp(itemsize)]),
                           itemsize=intp(itemsize), meminfo=None)
            return array._getvalue()
        return array_type(n), codegen
    return stack_array


if NUMBA_ENABLED:
    stack_u32 = _stack_array_intrinsic(np.uint32)
    stack_u8 = _stack_array_intrinsic(np.uint8)
    stack_f64 = _stack_array_intrinsic(np.float64)
else:
    def stack_u32(n: int) -> np.ndarray:
        """n uint32 scratch elements (on the stack when compiled)."""
        return np.zeros(n, dtype=np.uint32)

    def stack_u8(n: int) -> np.ndarray:
        """n uint8 scratch elements (on the stack when compiled)."""
        return np.zeros(n, dtype=np.uint8)

    def stack_f64(n: int) -> np.ndarray:
        """n float64 scratch elements (on the stack when compiled)."""
        return np.zeros(n, dtype=np.float64)
