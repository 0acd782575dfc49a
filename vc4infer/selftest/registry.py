"""The selftest registry: what a case is, how cases are declared, and what running one yields.

A case is a function of a `CaseContext` (the Driver, a seeded random generator, launch helpers)
that runs something on the QPUs, compares it with a reference worked out independently on the
host and returns an `Outcome`. Kernel modules contribute a whole shape sweep with one `sweep(...)`
declaration; single whole-program checks use the `@case(...)` decorator.
"""
from __future__ import annotations

import fnmatch
import functools
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np


class SelftestError(Exception):
    """The selftest cannot run as asked (unknown case pattern, duplicate case name)."""


@dataclass
class Outcome:
    """What a case found. `max_abs_error` is the largest |result - reference|; `tolerance` is the
    bound of the element that came closest to (or went furthest past) its own bound."""
    max_abs_error: float
    tolerance: float
    passed: bool
    detail: str = ""


@dataclass
class CaseContext:
    """What a case gets: the Driver `drv`, a seeded generator `rng`; `run` and `execute` launch
    programs and add up their host wall time and the modelled Pi time the emulator reports (None
    on hardware)."""
    drv: object
    rng: np.random.Generator
    modelled_seconds: Optional[float] = None
    launch_seconds: float = 0.0
    launches: int = 0

    def _account(self, stats) -> None:
        self.launches += 1
        self.launch_seconds += stats.wall_seconds
        modelled = getattr(stats, "modelled_seconds", None)
        if modelled is not None:
            self.modelled_seconds = (self.modelled_seconds or 0.0) + modelled

    def execute(self, n_threads: int, program, uniforms) -> None:
        """One launch: `drv.execute(n_threads, program, uniforms)`."""
        self._account(self.drv.execute(n_threads, program, uniforms))

    def run(self, launches: Iterable) -> None:
        """Run kernel Launch objects (qpu_kernels.launch.Launch) in order."""
        for launch in launches:
            launch.run(self.drv)
            self._account(self.drv.last_stats)


@dataclass(frozen=True)
class Case:
    """One named check. `group` is the kernel module or "program"; `shape` a short description of
    the sizes; `quick` cases make up `--quick`."""
    group: str
    shape: str
    check: Callable[[CaseContext], Outcome]
    quick: bool = False

    @property
    def name(self) -> str:
        return f"{self.group}[{self.shape}]"


_REGISTRY: Dict[str, Case] = {}


def register(c: Case) -> Case:
    """Add a case; names (group[shape]) are unique."""
    if c.name in _REGISTRY:
        raise SelftestError(f"selftest case {c.name} is declared twice")
    _REGISTRY[c.name] = c
    return c


def case(group: str, shape: str, quick: bool = True) -> Callable:
    """Decorator: register `check(ctx) -> Outcome` as one case."""
    def wrap(check: Callable[[CaseContext], Outcome]) -> Callable[[CaseContext], Outcome]:
        register(Case(group, shape, check, quick))
        return check
    return wrap


def sweep(group: str, check: Callable[..., Outcome], shapes: Sequence[dict],
          quick: Sequence[int] = (0,), label: Optional[Callable[[dict], str]] = None) -> List[Case]:
    """The one declaration a kernel module needs: `check(ctx, **params)` run once per parameter
    dict in `shapes`; the shapes at positions `quick` also run under --quick. `label` turns a
    parameter dict into the shape column (default: "k=v" pairs)."""
    label = label or (lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
    return [register(Case(group, label(params), functools.partial(check, **params), i in set(quick)))
            for i, params in enumerate(shapes)]


def registered() -> List[Case]:
    """Every registered case, in declaration order."""
    return list(_REGISTRY.values())


def select(cases: Sequence[Case], quick: bool = False, patterns: Sequence[str] = ()) -> List[Case]:
    """The cases to run: only quick ones with `quick`; with `patterns`, those whose name contains
    one of them (case-insensitive; shell wildcards * ? [ ] allowed)."""
    chosen = [c for c in cases if c.quick or not quick]
    if patterns:
        def matches(name: str, pattern: str) -> bool:
            name, pattern = name.lower(), pattern.lower()
            if any(ch in pattern for ch in "*?["):
                return fnmatch.fnmatchcase(name, pattern if "*" in pattern else f"*{pattern}*")
            return pattern in name
        chosen = [c for c in chosen if any(matches(c.name, p) for p in patterns)]
    return chosen


@dataclass
class Result:
    """A case after it ran: its Outcome (None when it raised), the case's wall seconds, the
    launches' wall seconds (on hw: measured QPU time) and their modelled seconds (emu)."""
    case: Case
    outcome: Optional[Outcome]
    wall_seconds: float
    modelled_seconds: Optional[float]
    launch_seconds: float = 0.0
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome is not None and self.outcome.passed


def run_case(c: Case, drv, seed: int = 0) -> Result:
    """Run one case on `drv`. An exception (a fault the emulator caught, a launch timeout, a
    kernel refusing a shape) makes the case fail with the exception's message."""
    ctx = CaseContext(drv, np.random.default_rng(seed))
    start = time.perf_counter()
    try:
        outcome = c.check(ctx)
        error = ""
    except Exception as exc:  # noqa: BLE001 - any failure of the case is reported, not raised
        outcome, error = None, f"{type(exc).__name__}: {exc}"
    return Result(c, outcome, time.perf_counter() - start, ctx.modelled_seconds,
                  ctx.launch_seconds, error)
