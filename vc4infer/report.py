"""Per-layer speed report of one inference (what `vc4infer bench --model` prints, writes as JSON
and plots).

On the emulator every row has a *modelled* Pi time: QPU layers from the timing model plus one
mailbox round trip per launch, CPU layers and the host's own work (preprocessing the frame,
reading the output, softmax) as hostside.pi_costs estimates them for a Cortex-A53, each with its
basis. The total is the sum of every row: nothing of the inference is left out. Beside each
layer: its multiply-adds and the QPU compute floor (all 12 QPUs doing one 16-wide multiply-add
per instruction at the chosen clock) and the ratio to it. On hw and neon the times are measured
on the machine that ran them.
"""
from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field
from typing import List, Optional

import numpy as np

from vc4infer.emu import timing
from vc4infer.qpu import isa

#: multiply-adds the 12 QPUs complete per clock at best: one 16-wide fmul + fadd per instruction
QPU_MACS_PER_CYCLE = isa.NUM_QPUS * isa.SIMD_WIDTH / timing.ISSUE_CYCLES


def floor_seconds(macs: int, clock_hz: float) -> float:
    """Seconds the QPUs need for `macs` multiply-adds at their peak."""
    return macs / (QPU_MACS_PER_CYCLE * clock_hz)


@dataclass
class Row:
    """One line of the report."""
    layer: str
    where: str
    ms: Optional[float]              # modelled (emu) or measured (hw, neon) milliseconds
    basis: str                       # what `ms` is made of
    macs: int
    floor_ms: float
    host_wall_ms: float              # this machine's wall time for the row (emulation included)
    launches: int = 0

    @property
    def ratio(self) -> Optional[float]:
        return None if self.ms is None or not self.floor_ms else self.ms / self.floor_ms


@dataclass
class Report:
    model: str
    backend: str
    clock_mhz: int
    modelled: bool                   # ms figures come from the timing model (emu)
    host: str                        # the machine the report was made on
    version: str
    rows: List[Row] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return sum(r.ms or 0.0 for r in self.rows)

    @property
    def floor_ms(self) -> float:
        return sum(r.floor_ms for r in self.rows)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    def share(self, row: Row) -> Optional[float]:
        return None if row.ms is None or not self.total_ms else row.ms / self.total_ms

    def to_json(self) -> dict:
        """Plain data: one object per layer plus the totals, with clock, backend and version."""
        layers = []
        for r in self.rows:
            item = asdict(r)
            item.update(share=self.share(r), ratio=r.ratio)
            layers.append(item)
        return {"model": self.model, "backend": self.backend, "clock_mhz": self.clock_mhz,
                "times": "modelled" if self.modelled else "measured", "host": self.host,
                "version": self.version, "layers": layers,
                "totals": {"ms": self.total_ms, "floor_ms": self.floor_ms,
                           "ratio": self.total_ms / self.floor_ms if self.floor_ms else None,
                           "macs": self.macs, "launches": sum(r.launches for r in self.rows),
                           "qpu_ms": sum(r.ms or 0 for r in self.rows if r.where.startswith("qpu")),
                           "host_ms": sum(r.ms or 0 for r in self.rows
                                          if not r.where.startswith("qpu"))}}


def build(model, name: str, x: np.ndarray, clock_mhz: int, host: str) -> Report:
    """Profile one inference of `model` (a vc4infer.Model) on `x` and make its report."""
    from hostside import pi_costs
    from vc4infer import __version__

    clock_hz = clock_mhz * 1e6
    modelled = model.modelled
    report = Report(name, model.backend, clock_mhz, modelled, host, __version__)
    spec = model.graph.inputs[0]
    if modelled:
        seconds, basis = pi_costs.preprocess_seconds(spec.shape, spec.dtype)
        report.rows.append(Row("preprocess (host)", "host", seconds * 1e3, basis, 0, 0.0, 0.0))
    for step in model.profile(x):
        if modelled:
            ms = None if step.modelled_seconds is None else step.modelled_seconds * 1e3
            basis = step.modelled_basis
        else:
            ms, basis = step.wall_seconds * 1e3, "measured on this machine"
        report.rows.append(Row(step.layer, step.where, ms, basis, step.macs,
                               floor_seconds(step.macs, clock_hz) * 1e3, step.wall_seconds * 1e3,
                               step.launches))
    if modelled:
        out_bytes = sum(model.graph.tensors[s.tensor].nbytes for s in model.graph.outputs)
        seconds, basis = pi_costs.copy_seconds(out_bytes, "copy out, softmax, top-k")
        report.rows.append(Row("output (host)", "host", seconds * 1e3, basis, 0, 0.0, 0.0))
    return report


def _fmt(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render(report: Report) -> str:
    """The report as a text table."""
    kind = "modelled" if report.modelled else "measured"
    lines = [f"model {report.model}, backend {report.backend}, V3D clock {report.clock_mhz} MHz; "
             f"times {kind.upper()}"
             + (" (emulator timing model; CPU steps as Cortex-A53 estimates)" if report.modelled
                else f" on this {report.host}"),
             f"{'layer':36} {'where':24} {kind + ' ms':>12} {'share':>6} {'MACs':>12} "
             f"{'floor ms':>9} {'ratio':>6}"]
    for r in report.rows:
        share = report.share(r)
        lines.append(f"{r.layer[:36]:36} {r.where[:24]:24} {_fmt(r.ms, '12.3f')} "
                     f"{_fmt(None if share is None else 100 * share, '5.1f')}% {r.macs:12,} "
                     f"{r.floor_ms:9.3f} {_fmt(r.ratio, '6.1f')}")
    total = report.total_ms
    ratio = total / report.floor_ms if report.floor_ms else None
    lines.append(f"total: {total:.1f} ms {kind} at {report.clock_mhz} MHz for {report.macs:,} "
                 f"MACs; QPU floor {report.floor_ms:.1f} ms; ratio {_fmt(ratio, '.2f')}")
    return "\n".join(lines)


def plot(report: Report, path: str) -> None:
    """A per-layer bar chart of the times with each layer's QPU floor marked, as an image file.
    Needs matplotlib (`pip install 'vc4infer[plot]'`)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install 'vc4infer[plot]' "
                           "(or pip install matplotlib)") from None
    rows = [r for r in report.rows if r.ms is not None]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(10, 0.22 * len(rows) + 1.5))
    colours = ["tab:blue" if r.where.startswith("qpu") else "tab:orange" for r in rows]
    ax.barh(y, [r.ms for r in rows], color=colours)
    ax.scatter([r.floor_ms for r in rows], y, marker="|", color="black", s=80, zorder=3,
               label="QPU compute floor")
    ax.set_yticks(y, [r.layer[-40:] for r in rows], fontsize=6)
    ax.invert_yaxis()
    kind = "modelled" if report.modelled else "measured"
    ax.set_xlabel(f"{kind} ms (blue: QPU, orange: host)")
    ax.set_title(f"{report.model} on {report.backend} at {report.clock_mhz} MHz: "
                 f"{report.total_ms:.1f} ms {kind}, floor {report.floor_ms:.1f} ms")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def this_host() -> str:
    """This machine as reports name it: architecture and CPU model."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith(("model name", "Model"))), "")
    except OSError:
        pass
    return f"{platform.machine()} ({model or platform.processor() or platform.system()})"


def markdown_table(reports: List[dict]) -> str:
    """A README table from `Report.to_json()` objects: one line per model and clock."""
    lines = ["| Model | Backend | V3D clock | Total | QPU | host (A53 est.) | QPU floor | ratio | "
             "launches | times |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(reports, key=lambda r: (r["model"], r["clock_mhz"])):
        t = r["totals"]
        ratio = "-" if t["ratio"] is None else f"{t['ratio']:.2f}"
        lines.append(f"| {r['model']} | {r['backend']} | {r['clock_mhz']} MHz | {t['ms']:.1f} ms | "
                     f"{t['qpu_ms']:.1f} ms | {t['host_ms']:.1f} ms | {t['floor_ms']:.1f} ms | "
                     f"{ratio} | {t['launches']} | {r['times']} (vc4infer {r['version']}) |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    """`python -m vc4infer.report FILE.json...`: the README's speed table from bench --json."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("files", nargs="+", help="JSON files written by vc4infer bench --json")
    args = parser.parse_args(argv)
    reports = []
    for path in args.files:
        with open(path) as f:
            reports.append(json.load(f))
    print(markdown_table(reports))


if __name__ == "__main__":
    main()
