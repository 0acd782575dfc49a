"""`vc4infer selftest`: run the QPU test suite (vc4infer.selftest) on this board or on the
emulator and print one table row per case; the exit status is 1 when any case fails."""
from __future__ import annotations

import time
from typing import List, Optional

import click

CLOCKS_MHZ = ("250", "300", "400")      # the V3D clocks of the boards (vc4infer.emu.timing)


def _si(seconds: Optional[float]) -> str:
    """Seconds in a readable unit: 3.2 ms, 41 us."""
    if seconds is None:
        return "-"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"


def _num(value: float) -> str:
    return f"{value:.3g}" if value else "0"


class _Table:
    """Rows printed as the cases finish, in columns sized for the selected cases."""

    def __init__(self, cases, modelled: bool):
        self.group_w = max([len("case")] + [len(c.group) for c in cases])
        self.shape_w = max([len("shape")] + [len(c.shape) for c in cases])
        self.modelled = modelled

    def header(self) -> str:
        cols = (f"{'case':<{self.group_w}}  {'shape':<{self.shape_w}}  {'max abs err':>11}  "
                f"{'tolerance':>10}  result  {'time':>9}")
        return cols + (f"  {'modelled':>9}" if self.modelled else f"  {'QPU time':>9}")

    def row(self, result) -> str:
        c, out = result.case, result.outcome
        err = _num(out.max_abs_error) if out else "-"
        tol = _num(out.tolerance) if out else "-"
        verdict = "PASS" if result.passed else ("ERROR" if out is None else "FAIL")
        line = (f"{c.group:<{self.group_w}}  {c.shape:<{self.shape_w}}  {err:>11}  {tol:>10}  "
                f"{verdict:<6}  {_si(result.wall_seconds):>9}")
        qpu = result.modelled_seconds if self.modelled else result.launch_seconds
        return line + f"  {_si(qpu):>9}"


@click.command()
@click.option("--backend", "-b", type=click.Choice(("auto", "emu", "hw")), default="auto",
              show_default=True, help="where the QPU programs run: this Pi's V3D (hw), the "
              "emulator (emu), or hw when this is a usable Pi and emu otherwise (auto)")
@click.option("--quick", is_flag=True, help="a few cases per kernel (the edges most likely to break)")
@click.option("-k", "patterns", multiple=True, metavar="PATTERN",
              help="only cases whose name (group[shape]) contains PATTERN; wildcards * ? allowed; "
              "repeat for several")
@click.option("--clock", "clock_mhz", type=click.Choice(CLOCKS_MHZ), default="250",
              show_default=True, help="emulator only: the V3D clock of the modelled times")
@click.option("--list", "list_only", is_flag=True, help="list the selected cases, run nothing")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the random operands")
def selftest(backend: str, quick: bool, patterns: tuple, clock_mhz: str, list_only: bool,
             seed: int) -> None:
    """Run every QPU kernel against the NEON (numpy) reference and check the QPUs themselves.

    Prints case, shape, max abs error (of the element closest to its bound), tolerance,
    PASS/FAIL, the case's wall time and the QPU time: modelled on the emulator, measured (the
    launches' wall time) on a Pi. Exits 1 if any case fails."""
    from vc4infer import selftest as suite
    chosen = suite.cases(quick=quick, patterns=patterns)
    if not chosen:
        raise click.UsageError(f"no selftest case matches {' or '.join(patterns)!r}; "
                               f"see `vc4infer selftest --list`")
    if list_only:
        for c in chosen:
            click.echo(c.name)
        return
    drv = _open_driver(backend, float(clock_mhz) * 1e6)
    with drv:
        emulated = drv.modelled
        if drv.backend_name == "hw" and drv.clock_hz:    # a simulated board runs at its own clock
            clock_mhz = f"{drv.clock_hz / 1e6:.0f}"
        click.echo(_backend_line(drv, backend, clock_mhz))
        table = _Table(chosen, modelled=emulated)
        click.echo(table.header())
        results = []
        start = time.perf_counter()
        for c in chosen:
            result = suite.run_case(c, drv, seed=seed)
            results.append(result)
            click.echo(table.row(result))
        elapsed = time.perf_counter() - start
    _report(results, elapsed, emulated, clock_mhz)


def _open_driver(backend: str, clock_hz: float):
    from hostside.driver import Driver, DriverError
    # emulator options (auto hands them to the emulator only): strict makes behaviour that the
    # hardware leaves undefined fail the case instead of passing by luck
    options = {} if backend == "hw" else {"strict": True, "clock_hz": clock_hz}
    try:
        return Driver(backend=backend, **options)
    except DriverError as exc:
        from vc4infer.cli import fail
        fail(exc, f"cannot open the {backend} backend: {exc}")


def _backend_line(drv, requested: str, clock_mhz: str) -> str:
    line = f"backend: {drv.backend_name}"
    if requested == "auto":
        line += f" (auto: {drv.backend_reason})"
    if drv.backend_name == "emu":
        line += (f"; strict emulation; modelled times are for a V3D clock of {clock_mhz} MHz, "
                 "not measured")
    elif drv.modelled:
        line += (f" on a simulated board; modelled times are for its V3D clock of "
                 f"{drv.clock_hz / 1e6:.0f} MHz, not measured")
    return line


def _report(results: List, elapsed: float, emulated: bool, clock_mhz: str) -> None:
    failed = [r for r in results if not r.passed]
    for r in failed:
        why = r.error or (r.outcome.detail if r.outcome else "")
        click.echo(f"FAILED {r.case.name}: {why or 'error above its tolerance'}")
    summary = f"{len(results) - len(failed)} passed, {len(failed)} failed in {_si(elapsed)}"
    if emulated:
        modelled = sum(r.modelled_seconds or 0.0 for r in results)
        summary += f"; modelled QPU time {_si(modelled)} at {clock_mhz} MHz"
    click.echo(summary)
    if failed:
        raise SystemExit(1)
