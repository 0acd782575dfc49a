"""The Driver: numpy arrays in GPU-visible memory, QPU programs, launches. py-videocore's shape:

    with Driver() as drv:
        a = drv.alloc((16,), 'float32')          # Array: ndarray with .address / .addresses()
        prog = drv.program(kernel, *args)         # @qpu kernel, bytes or a uint64 array
        drv.execute(n_threads, prog, uniforms)    # uniforms: n_threads equal rows, one per instance

Every array, program and uniforms block is its own backend allocation with a label (the emulator
names the nearest one when a program strays). Arrays of a closed Driver raise DriverClosedError
instead of touching released memory.
"""
from __future__ import annotations

import itertools
import logging
import math
import numbers
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from vc4infer.qpu.isa import NUM_QPUS

from .backend import Allocation, Backend, LaunchStats
from .errors import (DriverClosedError, DriverError, ForeignObjectError, LaunchTimeoutError,
                     NotAProgramError, OutOfGpuMemoryError, ThreadCountError, UniformsLayoutError)

log = logging.getLogger(__name__)

DEFAULT_DATA_AREA_SIZE = 32 * 1024 * 1024
DEFAULT_CODE_AREA_SIZE = 1024 * 1024
#: program instances one execute may start: one per QPU of the VideoCore IV
MAX_THREADS = NUM_QPUS
#: py-videocore's name for the default `max_threads` (its 1024 only sized a message area; an
#: execute runs at most one instance per QPU)
DEFAULT_MAX_THREADS = MAX_THREADS
#: cache modes of py-videocore's `Driver(cache_mode=...)`, the values of libvcsm / vcsm-cma's cache
#: types (VCSM_CACHE_TYPE_NONE, _HOST, _VC, _HOST_AND_VC), which py-videocore took from rpi_vcsm:
#: HOST maps the memory cached on the ARM (the Driver cleans and invalidates it around every
#: launch), VC lets the GPU side allocate in its L2
CACHE_NONE, CACHE_HOST, CACHE_VC, CACHE_BOTH = 0, 1, 2, 3
#: alignment of every allocation (one page: what the hw backend maps anyway)
ALLOC_ALIGN = 4096
_driver_ids = itertools.count(1)


class _Lease:
    """Shared by everything a Driver handed out; dies when the Driver closes."""
    __slots__ = ("alive", "driver_id")

    def __init__(self, driver_id: int):
        self.alive, self.driver_id = True, driver_id


class _GpuRef:
    """Where an Array's block lives: host pointer and bus address of its first byte."""
    __slots__ = ("lease", "bus", "host", "nbytes", "label")

    def __init__(self, lease: _Lease, bus: int, host: int, nbytes: int, label: str):
        self.lease, self.bus, self.host, self.nbytes, self.label = lease, bus, host, nbytes, label


def _data_ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _check_alive(objs) -> None:
    for obj in objs:
        if isinstance(obj, Array):
            obj._check_alive()
        elif isinstance(obj, (list, tuple)):
            _check_alive(obj)


class Array(np.ndarray):
    """A numpy array in GPU-visible memory. `.address` is the bus address of its first element,
    `.addresses()` that of every element. Views (slices, reshapes) stay in GPU memory and know
    their addresses; arithmetic results and copies are ordinary host arrays."""

    _gpu: Optional[_GpuRef] = None

    def __array_finalize__(self, obj):
        ref = getattr(obj, "_gpu", None)
        if ref is not None and self.nbytes and not ref.host <= _data_ptr(self) < ref.host + ref.nbytes:
            ref = None                      # new memory (a copy), not a view of the GPU block
        self._gpu = ref

    # --- addresses --------------------------------------------------------------------------------
    def _ref(self) -> _GpuRef:
        if self._gpu is None:
            raise DriverError("this array is a copy in host memory, not in GPU memory: it has no bus "
                              "address. Allocate with drv.alloc / drv.copy / drv.array.")
        self._check_alive()
        return self._gpu

    def _check_alive(self) -> None:
        if self._gpu is not None and not self._gpu.lease.alive:
            raise DriverClosedError(
                f"array {self._gpu.label} belongs to a Driver that has been closed; its GPU memory "
                "is released. Copy results out (np.array(a)) before closing the Driver.")

    @property
    def address(self) -> int:
        """Bus address (as the QPUs see it) of the first element."""
        ref = self._ref()
        return ref.bus + (_data_ptr(self) - ref.host)

    def addresses(self) -> np.ndarray:
        """uint32 array of the bus address of every element, same shape as the array."""
        base = self.address
        out = np.full(self.shape, base, dtype=np.int64)
        for axis, (n, stride) in enumerate(zip(self.shape, self.strides)):
            shape = [1] * self.ndim
            shape[axis] = n
            out += (np.arange(n, dtype=np.int64) * stride).reshape(shape)
        return out.astype(np.uint32)

    # --- guards against use after the Driver closed -----------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _check_alive(inputs)
        outs = kwargs.get("out")
        args = [x.view(np.ndarray) if isinstance(x, Array) else x for x in inputs]
        if outs:
            _check_alive(outs)
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Array) else o for o in outs)
        result = getattr(ufunc, method)(*args, **kwargs)
        if outs and method != "at":
            return outs[0] if len(outs) == 1 else tuple(outs)
        return result

    def __array_function__(self, func, types, args, kwargs):
        _check_alive(args)
        _check_alive(list(kwargs.values()))
        return super().__array_function__(func, types, args, kwargs)

    def __getitem__(self, key):
        self._check_alive()
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        self._check_alive()
        _check_alive((value,))
        super().__setitem__(key, value)

    def __repr__(self):
        self._check_alive()
        return super().__repr__()

    def __str__(self):
        self._check_alive()
        return super().__str__()

    def tobytes(self, order="C"):
        self._check_alive()
        return super().tobytes(order)

    def __reduce__(self):
        self._check_alive()
        return np.asarray(self).__reduce__()    # pickles as a plain ndarray

    # --- py-videocore's cache operations ----------------------------------------------------------
    def clean(self) -> None:
        """py-videocore: write the ARM cache's copy of this array back. The Driver already does it
        for every block before each launch, so there is nothing left to do."""
        self._check_alive()

    def invalidate(self) -> None:
        """py-videocore: drop the ARM cache's copy of this array. The Driver already does it for
        every block after each launch, so there is nothing left to do."""
        self._check_alive()


class Program:
    """QPU code copied into GPU memory. `address`: bus address of the first instruction; `code`:
    the bytes; `words`: the 64-bit instruction words; `name`: for error messages."""

    def __init__(self, address: int, code: bytes, name: str, lease: _Lease):
        self.address, self.code, self.name, self._lease = address, code, name, lease

    @property
    def words(self) -> np.ndarray:
        """The instructions as little-endian uint64 words."""
        return np.frombuffer(self.code, dtype="<u8").copy()

    def __len__(self) -> int:
        return len(self.code) // 8

    @property
    def size(self) -> int:
        """Bytes of code (py-videocore's `Program.size`)."""
        return len(self.code)

    def __repr__(self) -> str:
        return f"<Program {self.name!r}: {len(self)} instructions at 0x{self.address:08x}>"


def _uniform_words(uniforms: Any) -> np.ndarray:
    """Host-side uniforms -> flat uint32 words. Integers must fit in 32 bits (signed values are
    stored as two's complement); Python floats and float32 arrays are stored as float32 bits."""
    if isinstance(uniforms, np.ndarray):
        a = uniforms
        if a.dtype == np.float32:
            return a.reshape(-1).view(np.uint32).copy()
        if a.dtype.kind in "iu":
            flat = a.reshape(-1).astype(np.int64)
            if flat.size and (flat.min() < -2**31 or flat.max() >= 2**32):
                raise UniformsLayoutError("uniforms hold integers that do not fit in 32 bits")
            return (flat & 0xFFFFFFFF).astype(np.uint32)
        raise UniformsLayoutError(
            f"uniforms of dtype {a.dtype}: pass 32-bit words (uint32 / int32) or float32 "
            "(a float64 array would lose bits silently: use .astype(np.float32))")
    if isinstance(uniforms, (list, tuple)):
        try:
            flat = np.array(uniforms, dtype=object).reshape(-1)
        except ValueError:
            flat = None
        if flat is None or any(isinstance(v, (list, tuple, np.ndarray)) for v in flat):
            raise UniformsLayoutError("uniforms rows are not all the same length")
        words = np.empty(flat.size, dtype=np.uint32)
        for i, v in enumerate(flat):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.generic)):
                raise UniformsLayoutError(f"uniform {i} is {v!r}: uniforms are integers or floats")
            if isinstance(v, (numbers.Integral, np.integer)):
                if not -2**31 <= int(v) < 2**32:
                    raise UniformsLayoutError(f"uniform {i} = {v} does not fit in 32 bits")
                words[i] = int(v) & 0xFFFFFFFF
            else:
                words[i] = np.array(v, dtype=np.float32).view(np.uint32)
        return words
    raise UniformsLayoutError(
        f"uniforms of type {type(uniforms).__name__}: pass a list, an ndarray or a Driver array")


def _does_cache_maintenance(backend: Backend) -> bool:
    """Whether the backend replaces Backend's no-op sync_for_gpu / sync_for_cpu (in its class or
    on the instance); if not, launches skip the per-allocation calls."""
    return any(getattr(type(backend), name) is not getattr(Backend, name) or name in vars(backend)
               for name in ("sync_for_gpu", "sync_for_cpu"))


class Driver:
    """QPU programs and their memory on one backend ("auto", "hw", "emu", or a Backend instance).

    `data_area_size` bounds the bytes of arrays plus uniforms, `code_area_size` the bytes of
    programs; `max_threads` (py-videocore's name) the program instances of one launch (at most
    the 12 QPUs); `cache_mode` one of CACHE_NONE, CACHE_HOST, CACHE_VC, CACHE_BOTH (py-videocore's
    rpi_vcsm constants; on hw CACHE_HOST / CACHE_BOTH map the memory cached on the ARM, elsewhere
    the mode changes nothing: the emulator's memory is coherent). Other keyword arguments go to
    the backend's constructor (emu: memory_bytes, clock_hz, strict, trace, ...; hw: memory,
    host_cached). `backend_name` says which backend runs and `backend_reason` why (with "auto":
    why hw was not usable, when it was not).
    """

    def __init__(self, backend: Union[str, Backend] = "auto",
                 data_area_size: int = DEFAULT_DATA_AREA_SIZE,
                 code_area_size: int = DEFAULT_CODE_AREA_SIZE, max_threads: int = MAX_THREADS,
                 cache_mode: int = CACHE_NONE, **backend_options: Any):
        from .selection import open_backend
        for name, value in (("data_area_size", data_area_size), ("code_area_size", code_area_size),
                            ("max_threads", max_threads)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise DriverError(f"{name}={value!r}: give a positive number")
        if cache_mode not in (CACHE_NONE, CACHE_HOST, CACHE_VC, CACHE_BOTH):
            raise DriverError(f"cache_mode={cache_mode!r}: give CACHE_NONE, CACHE_HOST, CACHE_VC or "
                              "CACHE_BOTH (0..3)")
        self.cache_mode = cache_mode
        if cache_mode & CACHE_HOST and backend == "hw":
            backend_options.setdefault("host_cached", True)
        self.data_area_size, self.code_area_size = int(data_area_size), int(code_area_size)
        self.max_threads = min(int(max_threads), MAX_THREADS)
        self.closed = True                # until the backend is open
        self._backend, self.backend_name, self.backend_reason = open_backend(backend, backend_options)
        self._syncs = _does_cache_maintenance(self._backend)
        self.closed = False
        self._lease = _Lease(next(_driver_ids))
        self._data_used = 0
        self._code_used = 0
        self._allocations: Dict[int, Allocation] = {}      # id -> block, in allocation order
        self._array_count = 0
        self._execute_count = 0
        self.last_stats: Optional[LaunchStats] = None

    # --- life cycle -------------------------------------------------------------------------------
    def __enter__(self) -> "Driver":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        """Release all GPU memory and the backend. Arrays of this Driver become unusable (their
        use raises DriverClosedError). Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._lease.alive = False
        self._allocations.clear()
        self._backend.close()

    @property
    def modelled(self) -> bool:
        """Whether launch times come from the emulator's timing model (the emu backend, or hw on a
        simulated board) rather than from a V3D."""
        return self._backend.modelled

    @property
    def clock_hz(self) -> Optional[float]:
        """The V3D clock the launches run at (emu: are modelled at), when the backend knows it."""
        return self._backend.clock_hz

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._data_used}/{self.data_area_size} data bytes"
        return f"<Driver backend={self.backend_name} {state}>"

    @property
    def backend(self) -> Backend:
        """The backend object (for its `max_launch_seconds`, statistics, emulator options)."""
        self._check_open()
        return self._backend

    @property
    def max_launch_seconds(self) -> Optional[float]:
        """Longest one execute may run on this backend (None: no limit)."""
        return self._backend.max_launch_seconds

    def _check_open(self) -> None:
        if self.closed:
            raise DriverClosedError("this Driver has been closed: create a new one")

    # --- memory -----------------------------------------------------------------------------------
    def _alloc_block(self, nbytes: int, label: str, code: bool = False) -> Allocation:
        used, limit, area = ((self._code_used, self.code_area_size, "code_area_size") if code
                             else (self._data_used, self.data_area_size, "data_area_size"))
        if used + nbytes > limit:
            raise OutOfGpuMemoryError(
                f"{label} needs {nbytes} bytes but {used} of {area}={limit} are in use: create the "
                f"Driver with a larger {area}= (at least {used + nbytes}).")
        allocation = self._backend.alloc(max(nbytes, 1), ALLOC_ALIGN, label)
        if code:
            self._code_used += nbytes
        else:
            self._data_used += nbytes
        self._allocations[id(allocation)] = allocation
        return allocation

    def _release_block(self, allocation: Allocation, nbytes: int) -> None:
        del self._allocations[id(allocation)]
        self._data_used -= nbytes
        self._backend.free(allocation)

    def alloc(self, shape: Union[int, Sequence[int]], dtype: Any = np.float32) -> Array:
        """A zero-filled C-ordered array of `shape` and `dtype` in GPU memory."""
        self._check_open()
        dtype = np.dtype(dtype)
        shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(n) for n in shape)
        if any(n < 0 for n in shape):
            raise DriverError(f"alloc: negative dimension in shape {shape}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self._array_count += 1
        label = f"array#{self._array_count} {dtype.name}{list(shape)}"
        allocation = self._alloc_block(nbytes, label)
        raw = np.asarray(allocation.buffer).view(np.uint8)
        arr = np.ndarray.__new__(Array, shape, dtype, buffer=raw[:max(nbytes, 1)], offset=0)
        arr._gpu = _GpuRef(self._lease, allocation.bus_address, _data_ptr(raw), nbytes, label)
        raw[:nbytes] = 0
        return arr

    def copy(self, array: Any) -> Array:
        """A GPU-memory copy of `array` (same shape and dtype)."""
        self._check_open()
        _check_alive((array,))
        src = np.asarray(array)
        new = self.alloc(src.shape, src.dtype)
        new.view(np.ndarray)[...] = src
        return new

    def array(self, obj: Any, dtype: Any = None) -> Array:
        """Like np.array(obj, dtype), in GPU memory."""
        self._check_open()
        _check_alive((obj,))
        return self.copy(np.asarray(obj, dtype=dtype))

    # --- programs ---------------------------------------------------------------------------------
    def program(self, program: Any, *args: Any, **kwargs: Any) -> Program:
        """Copy a QPU program into GPU memory: a @qpu kernel (assembled with vc4infer.qpu.assemble
        and `args`/`kwargs`), bytes, or a uint64 array of instruction words."""
        self._check_open()
        if isinstance(program, Program):
            self._check_program(program)
            return program
        if isinstance(program, (bytes, bytearray, memoryview, np.ndarray)) and (args or kwargs):
            raise NotAProgramError("arguments are for @qpu kernels; this program is already code")
        if isinstance(program, (bytes, bytearray, memoryview)):
            code, name = bytes(program), f"code of {len(bytes(program)) // 8} instructions"
        elif isinstance(program, np.ndarray):
            if program.dtype.kind != "u" or program.dtype.itemsize != 8:
                raise NotAProgramError(f"a program array must hold uint64 instruction words, not "
                                       f"{program.dtype}")
            code, name = program.astype("<u8").tobytes(), f"code of {program.size} instructions"
        elif callable(program):
            try:
                from vc4infer.qpu import assemble
            except ImportError as exc:
                raise DriverError(f"cannot assemble {program!r}: the QPU assembler "
                                  f"(vc4infer.qpu) is not available ({exc})") from exc
            code = bytes(assemble(program, *args, **kwargs))
            name = getattr(program, "__name__", None) or repr(program)
        else:
            raise NotAProgramError(
                f"{type(program).__name__} is not a QPU program: pass a @qpu kernel, bytes or a "
                "uint64 array of instruction words")
        if not code or len(code) % 8:
            raise NotAProgramError(f"program {name!r} is {len(code)} bytes: QPU code is a non-empty "
                                   "sequence of 8-byte instructions")
        allocation = self._alloc_block(len(code), f"program {name!r}", code=True)
        np.asarray(allocation.buffer).view(np.uint8)[:len(code)] = np.frombuffer(code, np.uint8)
        return Program(allocation.bus_address, code, name, self._lease)

    def _check_program(self, program: Any) -> None:
        if not isinstance(program, Program):
            raise NotAProgramError(f"execute() takes a Program from drv.program(), not "
                                   f"{type(program).__name__}")
        if program._lease is not self._lease:
            if not program._lease.alive:
                raise DriverClosedError(f"program {program.name!r} belongs to a closed Driver")
            raise ForeignObjectError(f"program {program.name!r} belongs to another Driver")

    # --- launches ---------------------------------------------------------------------------------
    def execute(self, n_threads: Optional[int] = None, program: Optional[Program] = None,
                uniforms: Any = None, timeout: float = 10.0, *,
                num_threads: Optional[int] = None) -> LaunchStats:
        """Run `n_threads` (1-12) instances of `program`. `uniforms` (a list, an ndarray or a Driver
        array) is viewed as `n_threads` equal rows of 32-bit words; row i is the uniform stream of
        instance i. `timeout` is in seconds (py-videocore took milliseconds); on `hw` no launch
        can outlast `max_launch_seconds`. `num_threads` is an early py-videocore name for
        `n_threads` (its test_sfu uses it). Returns the LaunchStats (also kept in `last_stats`)."""
        self._check_open()
        if num_threads is not None:
            if n_threads is not None:
                raise DriverError("give n_threads or num_threads (the same count), not both")
            n_threads = num_threads
        if program is None:
            raise NotAProgramError("execute needs a program: drv.program(kernel) gives one")
        if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) \
                or not 1 <= n_threads <= self.max_threads:
            raise ThreadCountError(f"n_threads={n_threads!r}: a launch runs 1 to {self.max_threads} "
                                   f"program instances (one per QPU; max_threads={self.max_threads})")
        n_threads = int(n_threads)
        self._check_program(program)
        if not isinstance(timeout, numbers.Real) or not timeout > 0:
            raise DriverError(f"timeout={timeout!r}: give a positive number of seconds")
        self._execute_count += 1
        temp: Optional[Tuple[Allocation, int]] = None
        if uniforms is None:
            rows = [0] * n_threads
        elif isinstance(uniforms, Array) and uniforms._gpu is not None:
            rows = self._uniform_rows_in_place(uniforms, n_threads)
        else:
            words = _uniform_words(uniforms)
            self._check_row_split(words.size, n_threads)
            label = f"uniforms of execute#{self._execute_count} ({program.name})"
            allocation = self._alloc_block(words.nbytes, label)
            temp = (allocation, words.nbytes)
            np.asarray(allocation.buffer).view(np.uint8)[:words.nbytes] = words.view(np.uint8)
            row_bytes = words.nbytes // n_threads
            rows = [allocation.bus_address + i * row_bytes for i in range(n_threads)]
        try:
            if self._syncs:
                for allocation in self._allocations.values():
                    self._backend.sync_for_gpu(allocation)
            control = [(row, program.address) for row in rows]
            try:
                stats = self._backend.execute(control, float(timeout))
            except LaunchTimeoutError as exc:
                if type(exc) is not LaunchTimeoutError:
                    raise                       # a backend's more specific kind: keep it whole
                limit = min(timeout, self._backend.max_launch_seconds or math.inf)
                raise LaunchTimeoutError(
                    f"program {program.name!r} on {n_threads} QPUs did not finish within its time "
                    f"limit of {limit:g} s ({self.backend_name} backend; timeout={timeout:g} s, "
                    f"max_launch_seconds={self._backend.max_launch_seconds}): {exc}. A hung kernel "
                    "(waiting on a semaphore, VPM or DMA that never comes) or too much work per "
                    "launch: split the work into launches that end within max_launch_seconds."
                ) from exc
            if self._syncs:
                for allocation in self._allocations.values():
                    self._backend.sync_for_cpu(allocation)
        finally:
            if temp is not None and not self.closed:
                self._release_block(*temp)
        self.last_stats = stats
        return stats

    @staticmethod
    def _check_row_split(n_words: int, n_threads: int) -> None:
        if n_words == 0:
            raise UniformsLayoutError("uniforms are empty: pass None for programs without uniforms")
        if n_words % n_threads:
            raise UniformsLayoutError(
                f"{n_words} uniform words do not split into {n_threads} equal rows (one per "
                f"program instance): give a multiple of {n_threads} words, e.g. an array of shape "
                f"({n_threads}, k)")

    def _uniform_rows_in_place(self, uniforms: Array, n_threads: int) -> List[int]:
        ref = uniforms._ref()
        if ref.lease is not self._lease:
            raise ForeignObjectError(f"uniforms {ref.label} belong to another Driver")
        if uniforms.itemsize != 4:
            raise UniformsLayoutError(f"uniforms {ref.label} have {uniforms.itemsize}-byte elements: "
                                      "uniforms are 32-bit words (uint32, int32 or float32)")
        self._check_row_split(uniforms.size, n_threads)
        if uniforms.flags.c_contiguous:          # the common case: rows one after the other
            base, row_bytes = uniforms.address, uniforms.nbytes // n_threads
            return [base + i * row_bytes for i in range(n_threads)]
        addrs = uniforms.addresses().astype(np.int64).reshape(n_threads, -1)
        if addrs.shape[1] > 1 and not np.all(np.diff(addrs, axis=1) == 4):
            raise UniformsLayoutError(f"uniforms {ref.label}: each row must be contiguous words in "
                                      "memory (the QPU reads a uniform stream sequentially)")
        return [int(a) for a in addrs[:, 0]]
