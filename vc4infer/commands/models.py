"""`vc4infer models list | fetch NAME | path NAME`: the model zoo."""
from __future__ import annotations

import sys
from typing import Optional

import click

from vc4infer.cli import fail
from vc4infer.graph import zoo


def _size(n: Optional[int]) -> str:
    return f"{n / 1e6:.1f} MB" if n else "?"


@click.group()
def models() -> None:
    """List, fetch and locate the models vc4infer knows by name."""


@models.command("list")
def list_models() -> None:
    """Show every zoo model: format, size, whether it is on this machine, where it comes from."""
    try:
        known = zoo.entries()
    except zoo.ZooError as err:
        fail(err)
    rows = [("NAME", "FORMAT", "SIZE", "INSTALLED", "FROM")]
    hints = []
    for entry in known.values():
        installed = zoo.local_path(entry) is not None
        rows.append((entry.name, entry.format, _size(entry.size_bytes),
                     "yes" if installed else "no", entry.origin))
        if not installed:
            hints.append(f"  {entry.name}: " + (entry.pip if entry.source == "package"
                                                 else f"vc4infer models fetch {entry.name}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
    if hints:
        click.echo("\nto install:\n" + "\n".join(hints))
    click.echo(f"\ncache: {zoo.cache_dir()} (set VC4INFER_HOME to change it)")


class _Progress:
    """Download progress on stderr: a redrawn bar on a terminal, a line per quarter otherwise."""

    def __init__(self, name: str, interactive: bool):
        self.name = name
        self.interactive = interactive
        self.last_step = -1
        self.drawn = False

    def __call__(self, done: int, total: Optional[int]) -> None:
        percent = int(done * 100 / total) if total else None
        step = percent if self.interactive else (percent // 25 if percent is not None else None)
        if step is not None and step == self.last_step:
            return
        if step is None and not self.interactive:
            return
        self.last_step = step if step is not None else self.last_step
        if percent is not None:
            bar = "#" * (percent // 4)
            text = f"{self.name} [{bar:<25}] {percent:3d}% {done / 1e6:.1f}/{total / 1e6:.1f} MB"
        else:
            text = f"{self.name} {done / 1e6:.1f} MB"
        if self.interactive:
            click.echo("\r" + text, nl=False, err=True)
            self.drawn = True
        else:
            click.echo(text, err=True)

    def finish(self) -> None:
        if self.drawn:
            click.echo("", err=True)


@models.command("fetch")
@click.argument("name")
@click.option("--trust-unverified", is_flag=True,
              help="keep a download whose publisher gives no checksum (its SHA-256 is printed)")
@click.option("--force", is_flag=True, help="download again even if the file is in the cache")
def fetch(name: str, trust_unverified: bool, force: bool) -> None:
    """Download the zoo model NAME into the cache, checking its SHA-256."""
    progress = _Progress(name, interactive=sys.stderr.isatty())
    try:
        entry = zoo.get(name)
        path = zoo.fetch(name, trust_unverified=trust_unverified, force=force, progress=progress)
    except zoo.ZooError as err:
        progress.finish()
        fail(err)
    progress.finish()
    if entry.source == "package":
        click.echo(f"{name} ships in the installed package {entry.package}: {path}")
        return
    digest = zoo.sha256_of(path)
    verified = "verified" if entry.sha256 else "UNVERIFIED (no published checksum)"
    click.echo(f"{name}: {path}\n  sha256 {digest} {verified}")


@models.command("path")
@click.argument("name")
def path(name: str) -> None:
    """Print the local file of the zoo model NAME (error if it is not on this machine)."""
    try:
        click.echo(zoo.resolve(name).path)
    except zoo.ZooError as err:
        fail(err)
