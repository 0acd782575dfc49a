"""`vc4infer info`: this machine as vc4infer sees it — board and SoC, V3D clock, gpu_mem and CMA,
who owns the V3D, which backends can run here, and the exact fix where one cannot."""
from __future__ import annotations

import os
import textwrap
from typing import List, Optional, Tuple

import click

MB = 1024 * 1024


def _mb(nbytes: Optional[int]) -> str:
    return "?" if nbytes is None else f"{nbytes / MB:.0f} MB"


def _firmware_facts(root: str, simulated=None
                    ) -> Tuple[Optional[float], Optional[float], Optional[int], str]:
    """(V3D Hz, max V3D Hz, GPU memory bytes, note) from the mailbox (of the `simulated` firmware
    if given); Nones when it cannot be asked."""
    from hostside.driver.errors import DriverError
    from hostside.driver.mailbox import CLOCK_V3D, Mailbox, VcioDevice
    try:
        mbox = (Mailbox(simulated, pointer_size=simulated.pointer_size) if simulated is not None
                else Mailbox(VcioDevice(os.path.join(root, "dev", "vcio"))))
    except DriverError as exc:
        return None, None, None, str(exc).split(":")[0]
    try:
        return (float(mbox.get_clock_rate(CLOCK_V3D)), float(mbox.get_max_clock_rate(CLOCK_V3D)),
                mbox.get_vc_memory()[1], "")
    except (DriverError, TimeoutError) as exc:
        return None, None, None, f"the mailbox did not answer ({exc})"
    finally:
        mbox.close()


def collect(root: str = "/") -> List[Tuple[str, str]]:
    """The report as (heading, text) rows."""
    from hostside.driver import simboard
    from hostside.driver.board import UDEV_RULES, UDEV_RULES_PATH, detect_board, hw_blocker
    from hostside.driver.selection import emu_status

    rows: List[Tuple[str, str]] = []
    simulated = None
    name = simboard.requested()
    if name:
        try:
            simulated = simboard.firmware_for(name)
        except simboard.SimulatedBoardError as exc:
            rows.append(("Simulated", f"not usable: {exc}"))
        else:
            rows.append(("Simulated", f"{name} ({simboard.ENV_VAR}): the hw backend runs on a "
                                      "simulated board, its times modelled by the emulator"))
    info = simulated.board_info() if simulated is not None else detect_board(root)
    if not info.is_raspberry_pi:
        rows.append(("Machine", f"not a Raspberry Pi ({info.machine or 'unknown CPU'})"))
    else:
        rev = f", revision {info.revision:04x}" if info.revision is not None else ""
        rows.append(("Board", f"{info.model or 'Raspberry Pi'} (type {info.board_type or '?'}{rev})"))
        gpu = "VideoCore IV, 12 QPUs" if info.has_videocore_iv else "VideoCore VI/VII: not supported"
        rows.append(("SoC", f"{info.soc or '?'} ({gpu})"))
        rows.append(("RAM", _mb(info.ram_bytes)))
        if info.has_videocore_iv:
            hz, max_hz, vc_bytes, note = _firmware_facts(root, simulated)
            rows.append(("V3D clock", f"{hz / 1e6:.0f} MHz now, {max_hz / 1e6:.0f} MHz max (firmware)"
                         if hz else f"unknown: {note}"))
            configured = (f"gpu_mem={info.gpu_mem_mb} in {info.config_path}" if info.gpu_mem_mb
                          else "gpu_mem not set in config.txt (firmware default)")
            firmware = f"; the firmware reports {_mb(vc_bytes)}" if vc_bytes else ""
            rows.append(("gpu_mem", configured + firmware))
        cma = ("no CMA pool reported" if info.cma_total_bytes is None else
               f"{_mb(info.cma_total_bytes)} total, {_mb(info.cma_free_bytes)} free")
        rows.append(("CMA", cma))
        if info.v3d_owner:
            owner = f"{info.v3d_owner} (Linux vc4 DRM driver): {', '.join(info.v3d_owner_evidence)}"
        else:
            owner = "the firmware (no vc4-kms-v3d / vc4-fkms-v3d overlay active)"
        rows.append(("V3D owner", owner))
        devices = []
        for name in ("vcio", "vcsm-cma", "mem"):
            exists, usable = info.device(name)
            devices.append(f"/dev/{name} " + ("usable" if usable else
                                             "no permission" if exists else "missing"))
        rows.append(("Devices", ", ".join(devices)))
        denied = [name for name in ("vcio", "vcsm-cma") if info.device(name) == (True, False)]
        if denied:
            rows.append(("udev rules", f"/dev/{' and /dev/'.join(denied)} not usable by this user: "
                         f"join the video group; where the devices are not group video, "
                         f"{UDEV_RULES_PATH} needs: " + " / ".join(UDEV_RULES)))
    blocker = hw_blocker(info)
    if blocker is None:
        memory = "vcsm-cma" if info.device("vcsm-cma")[1] else "mailbox + /dev/mem"
        rows.append(("Backend hw", f"usable (GPU memory via {memory})"))
    else:
        rows.append(("Backend hw", f"not usable: {blocker}"))
    usable, note = emu_status()
    rows.append(("Backend emu", note if usable else f"not usable: {note}"))
    if usable:
        rows.extend(_emulator_cache())
    choice = "hw" if blocker is None else ("emu" if usable else "none")
    rows.append(("auto picks", choice))
    return rows


def _emulator_cache() -> List[Tuple[str, str]]:
    """Where the compiled emulator lives, and whether the next emulated run compiles it."""
    from vc4infer.emu import core, warmup

    folder = warmup.cache_dir(core._run)
    if folder is None:
        return []
    state = ("compiled: loads in about a second" if warmup.is_cached(core._run) else
             "empty or out of date: the next emulated run compiles the emulator, about 2 minutes")
    return [("Emu cache", f"{folder} ({state})")]


def render(rows: List[Tuple[str, str]], width: int = 100) -> str:
    """Rows as aligned, wrapped text."""
    key_width = max(len(k) for k, _ in rows) + 2
    out = []
    for key, text in rows:
        wrapped = textwrap.wrap(text, width - key_width) or [""]
        out.append(f"{key + ':':<{key_width}}{wrapped[0]}")
        out.extend(" " * key_width + line for line in wrapped[1:])
    return "\n".join(out)


@click.command()
@click.option("--root", default="/", hidden=True, help="read /proc, /sys, /boot, /dev below this directory")
def info(root: str) -> None:
    """Show the board, its GPU, and which backends can run here (and how to fix one that cannot)."""
    click.echo(render(collect(root)))
