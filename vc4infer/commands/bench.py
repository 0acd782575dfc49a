"""`vc4infer bench`: speed figures. `--emulator` measures the emulator itself (emulated QPU
instructions per second of host time) on an SGEMM-like and a DMA-heavy 12-QPU kernel.

Each kind of benchmark is one entry of BENCHMARKS (flag name -> runner), so other kinds (for
example a whole model) are added as another flag and runner without touching these."""
from __future__ import annotations

from typing import Callable, Dict

import click


def _emulator(clock_mhz: int, quick: bool) -> None:
    from vc4infer.emu.bench import run_emulator_benchmarks
    from vc4infer.emu.jit import NUMBA_ENABLED

    click.echo(f"emulator benchmark (numba {'on' if NUMBA_ENABLED else 'OFF: plain Python'}), "
               f"modelled V3D clock {clock_mhz} MHz")
    for r in run_emulator_benchmarks(clock_mhz * 1e6, "quick" if quick else "full",
                                     repeats=1 if quick else 3):
        click.echo(f"  {r.name} on {r.n_qpus} QPUs: {r.instructions} instructions in "
                   f"{r.host_seconds:.3f} s CPU ({r.wall_seconds:.3f} s wall) = "
                   f"{r.instructions_per_second / 1e6:.2f} M emulated instructions/s; "
                   f"modelled Pi time {r.modelled_seconds * 1e3:.3f} ms; "
                   f"max |error| vs numpy {r.max_abs_error:.2e}")


BENCHMARKS: Dict[str, Callable[..., None]] = {"emulator": _emulator}


@click.command()
@click.option("--emulator", is_flag=True, help="Measure the emulator's speed (instructions per second).")
@click.option("--clock", "clock_mhz", type=click.Choice(["250", "300", "400"]), default="250",
              show_default=True, help="V3D clock (MHz) for the modelled Pi times.")
@click.option("--quick", is_flag=True, help="Small problem sizes, one timed run (a smoke test).")
def bench(emulator: bool, clock_mhz: str, quick: bool) -> None:
    """Benchmarks. Times from the emulator's timing model are labelled modelled."""
    chosen = [name for name, flag in (("emulator", emulator),) if flag]
    if not chosen:
        raise click.UsageError("choose what to benchmark: --emulator")
    for name in chosen:
        BENCHMARKS[name](int(clock_mhz), quick)
