"""Which backend a Driver runs on. "auto" takes `hw` on a Raspberry Pi whose V3D is usable and
`emu` anywhere else, and says why (logged at INFO, and returned as the reason)."""
from __future__ import annotations

import inspect
import logging
from typing import Any, Dict, Optional, Tuple, Type

from .backend import Backend
from .errors import DriverError, HardwareUnavailableError

log = logging.getLogger(__name__)

BACKEND_NAMES = ("auto", "hw", "emu")


def _backend_class(name: str) -> Type[Backend]:
    try:
        if name == "hw":
            from .hw import HwBackend
            return HwBackend
        from .emu import EmuBackend
        return EmuBackend
    except ImportError as exc:
        raise DriverError(f"the {name} backend cannot be loaded: {exc}") from exc


def _named(cls: Type[Backend]) -> Tuple[set, bool]:
    """(keyword names the constructor lists, whether it also takes **kwargs)."""
    params = inspect.signature(cls.__init__).parameters
    named = {n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return named - {"self"}, any(p.kind is p.VAR_KEYWORD for p in params.values())


def _accepted(cls: Type[Backend], options: Dict[str, Any],
              other: Optional[Type[Backend]] = None) -> Dict[str, Any]:
    """The options `cls` takes. A constructor with **kwargs takes everything except what the
    `other` backend names explicitly (with "auto", options meant for the other backend)."""
    named, takes_any = _named(cls)
    claimed = _named(other)[0] if other is not None else set()
    return {k: v for k, v in options.items() if k in named or (takes_any and k not in claimed)}


def emu_status() -> Tuple[bool, str]:
    """(usable, note) for the emulator backend: whether it imports, and whether numba makes it fast."""
    import importlib.util
    try:
        from .emu import EmuBackend  # noqa: F401
    except ImportError as exc:
        return False, f"cannot be loaded: {exc}"
    if importlib.util.find_spec("numba") is None:
        return True, "available, but slow: numba is not installed (pip install numba)"
    return True, "available (numba-compiled)"


def open_backend(spec: Any, options: Dict[str, Any],
                 root: str = "/") -> Tuple[Backend, str, str]:
    """(backend, its name, why it was chosen) for `spec`: "auto", "hw", "emu" or a Backend."""
    if isinstance(spec, Backend):
        if options:
            raise DriverError(f"backend options {sorted(options)} given with a backend object: "
                              "configure the object itself")
        return spec, spec.name, "backend object given by the caller"
    if spec not in BACKEND_NAMES:
        raise DriverError(f"backend={spec!r}: choose one of {', '.join(BACKEND_NAMES)} or pass a "
                          "Backend object")
    if spec in ("hw", "emu"):
        return _backend_class(spec)(**options), spec, "requested"

    from .board import detect_board, hw_blocker
    from .hw import HwBackend
    try:
        emu_cls: Optional[Type[Backend]] = _backend_class("emu")
        emu_problem = ""
    except DriverError as exc:
        emu_cls, emu_problem = None, str(exc)
    known = set(_accepted(HwBackend, options, emu_cls)) | set(
        _accepted(emu_cls, options, HwBackend) if emu_cls else ())
    unknown = set(options) - known
    if unknown:
        raise DriverError(f"backend options {sorted(unknown)} are known to neither the hw nor the "
                          "emu backend")
    from . import simboard
    simulated = simboard.requested(options.get("board"))
    if simulated:
        backend = HwBackend(**_accepted(HwBackend, options, emu_cls))
        return backend, "hw", f"a simulated {simulated} board"
    board = detect_board(options.get("root", root))
    blocker: Optional[HardwareUnavailableError] = hw_blocker(board)
    if blocker is None:
        try:
            backend = HwBackend(board=board, **_accepted(HwBackend, options, emu_cls))
            reason = f"{board.model or 'Raspberry Pi'} with a usable V3D"
            log.info("backend auto: using hw (%s)", reason)
            return backend, "hw", reason
        except HardwareUnavailableError as exc:
            blocker = exc
    reason = f"hw not usable: {blocker}"
    if emu_cls is None:
        raise DriverError(f"no backend can run here: {reason}; and {emu_problem}")
    log.info("backend auto: using emu; %s", reason)
    return emu_cls(**_accepted(emu_cls, options, HwBackend)), "emu", reason
