"""Which machine this is, as far as the `hw` backend cares: Raspberry Pi model and SoC, whether
the Linux vc4 DRM driver owns the V3D, gpu_mem and CMA, and which device files this user may open.

Everything is read below a root directory (default "/") so that tests can hand in simulated
/proc, /sys, /boot and /dev trees. Sources: /proc/cpuinfo (Revision), /proc/device-tree (model,
compatible, the v3d and firmwarekms nodes' status), /sys/firmware/devicetree/base (same tree),
/proc/meminfo (CmaTotal, CmaFree), /proc/modules, /boot/config.txt or /boot/firmware/config.txt.
`hw_blocker()` turns a BoardInfo into the error that says why `hw` cannot run, with the fix.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from .errors import (GpuMemoryTooSmallError, HardwareUnavailableError, HwPermissionError,
                     KmsOwnsV3dError, MailboxUnavailableError, NotRaspberryPiError,
                     UnsupportedBoardError)

# Revision-code fields (Raspberry Pi documentation, "Raspberry Pi revision codes"):
# bit 23 new-style flag, 22:20 memory (256 MB << n), 15:12 processor, 11:4 type.
PROCESSORS = {0: "BCM2835", 1: "BCM2836", 2: "BCM2837", 3: "BCM2711", 4: "BCM2712"}
BOARD_TYPES = {
    0x00: "A", 0x01: "B", 0x02: "A+", 0x03: "B+", 0x04: "2B", 0x05: "Alpha", 0x06: "CM1",
    0x08: "3B", 0x09: "Zero", 0x0A: "CM3", 0x0C: "Zero W", 0x0D: "3B+", 0x0E: "3A+",
    0x10: "CM3+", 0x11: "4B", 0x12: "Zero 2 W", 0x13: "400", 0x14: "CM4", 0x15: "CM4S",
    0x17: "5", 0x18: "CM5", 0x19: "500", 0x1A: "CM5 Lite",
}
# Old-style codes 0x0002..0x0015 are all BCM2835 boards (Pi 1 and CM1).
OLD_STYLE_TYPES = {
    0x2: "B", 0x3: "B", 0x4: "B", 0x5: "B", 0x6: "B", 0x7: "A", 0x8: "A", 0x9: "A", 0xD: "B",
    0xE: "B", 0xF: "B", 0x10: "B+", 0x11: "CM1", 0x12: "A+", 0x13: "B+", 0x14: "CM1", 0x15: "A+",
}
OLD_STYLE_RAM_MB = {0x2: 256, 0x3: 256, 0x4: 256, 0x5: 256, 0x6: 256, 0x7: 256, 0x8: 256, 0x9: 256,
                    0xD: 512, 0xE: 512, 0xF: 512, 0x10: 512, 0x11: 512, 0x12: 256, 0x13: 512,
                    0x14: 512, 0x15: 256}
#: SoCs with a VideoCore IV (V3D with 12 QPUs); later ones carry VideoCore VI / VII
VIDEOCORE_IV_SOCS = ("BCM2835", "BCM2836", "BCM2837")
#: config.txt section filters that select each board type
_FILTERS = {
    "A": {"pi1"}, "B": {"pi1"}, "A+": {"pi1"}, "B+": {"pi1"}, "CM1": {"pi1"}, "2B": {"pi2"},
    "3B": {"pi3"}, "3B+": {"pi3", "pi3+"}, "3A+": {"pi3", "pi3+"}, "CM3": {"pi3"}, "CM3+": {"pi3"},
    "Zero": {"pi0"}, "Zero W": {"pi0", "pi0w"}, "Zero 2 W": {"pi0", "pi02"},
    "4B": {"pi4"}, "400": {"pi4", "pi400"}, "CM4": {"pi4", "cm4"}, "CM4S": {"pi4", "cm4s"},
    "5": {"pi5"}, "CM5": {"pi5", "cm5"}, "500": {"pi5", "pi500"}, "CM5 Lite": {"pi5", "cm5"},
}
_MODEL_FILTERS = {f for names in _FILTERS.values() for f in names}
KMS_OVERLAYS = ("vc4-kms-v3d", "vc4-fkms-v3d")
CONFIG_PATHS = ("boot/firmware/config.txt", "boot/config.txt")
DT_PATHS = ("proc/device-tree", "sys/firmware/devicetree/base")


@dataclass
class ConfigLine:
    """One active line of config.txt (inside a section that applies to this board)."""
    path: str
    number: int
    text: str


@dataclass
class BoardInfo:
    """What `detect_board` found. Sizes in bytes; None where the source was missing."""
    root: str = "/"
    is_raspberry_pi: bool = False
    model: str = ""                   # e.g. "Raspberry Pi 3 Model B Rev 1.2"
    board_type: Optional[str] = None  # revision-code type, e.g. "3B", "Zero W"
    soc: Optional[str] = None         # "BCM2835" ... "BCM2712"
    revision: Optional[int] = None
    ram_bytes: Optional[int] = None
    compatible: Tuple[str, ...] = ()
    machine: str = ""                 # what this is when it is not a Pi (from cpuinfo)
    v3d_owner: Optional[str] = None   # "vc4-kms-v3d" / "vc4-fkms-v3d" when the kernel owns the V3D
    v3d_owner_evidence: List[str] = field(default_factory=list)
    kms_config_lines: List[ConfigLine] = field(default_factory=list)
    config_path: Optional[str] = None
    gpu_mem_mb: Optional[int] = None  # as configured in config.txt (None = firmware default)
    cma_total_bytes: Optional[int] = None
    cma_free_bytes: Optional[int] = None
    modules: Tuple[str, ...] = ()     # graphics-related kernel modules loaded
    devices: Dict[str, Tuple[bool, bool]] = field(default_factory=dict)  # name -> (exists, openable)

    @property
    def has_videocore_iv(self) -> bool:
        """True on Pi Zero / 1 / 2 / 3 (BCM2835/6/7 and the RP3A0 of the Zero 2 W)."""
        return self.soc in VIDEOCORE_IV_SOCS

    def device(self, name: str) -> Tuple[bool, bool]:
        """(exists, this user may open it as the backend does) for /dev/<name>."""
        return self.devices.get(name, (False, False))


def decode_revision(code: int) -> Tuple[Optional[str], Optional[str], Optional[int]]:
    """(board type, SoC, RAM bytes) from a revision code; Nones for unknown codes."""
    if code & (1 << 23):
        soc = PROCESSORS.get((code >> 12) & 0xF)
        board = BOARD_TYPES.get((code >> 4) & 0xFF)
        return board, soc, (256 << ((code >> 20) & 0x7)) * 1024 * 1024
    low = code & 0xFFFF                  # bit 24 and up: warranty / over-voltage flags
    if low in OLD_STYLE_TYPES:
        return OLD_STYLE_TYPES[low], "BCM2835", OLD_STYLE_RAM_MB[low] * 1024 * 1024
    return None, None, None


def _read(root: str, rel: str) -> Optional[str]:
    try:
        with open(os.path.join(root, rel), "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def _dt_read(root: str, rel: str) -> Optional[str]:
    for base in DT_PATHS:
        text = _read(root, os.path.join(base, rel))
        if text is not None:
            return text
    return None


def _dt_nodes(root: str, parent: str, prefix: str) -> List[str]:
    for base in DT_PATHS:
        path = os.path.join(root, base, parent)
        if os.path.isdir(path):
            return [os.path.join(parent, n) for n in sorted(os.listdir(path)) if n.startswith(prefix)]
    return []


def _dt_node_enabled(root: str, node: str) -> bool:
    status = _dt_read(root, os.path.join(node, "status"))
    # device-tree convention: a node without a status property is enabled
    return status is None or status.strip("\0\n ") in ("okay", "ok")


def _cpuinfo(root: str) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for line in (_read(root, "proc/cpuinfo") or "").splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            out.setdefault(key.strip(), value.strip())
    return out


def _meminfo_bytes(root: str, key: str) -> Optional[int]:
    m = re.search(rf"^{key}:\s*(\d+)\s*kB", _read(root, "proc/meminfo") or "", re.M)
    return int(m.group(1)) * 1024 if m else None


def config_lines(root: str, board_type: Optional[str]) -> Tuple[Optional[str], List[ConfigLine]]:
    """(path, active lines) of config.txt: comments and sections for other boards dropped.
    Filters this code cannot evaluate ([HDMI:1], [gpio4=1], [EDID=...]) are taken as applying."""
    for rel in CONFIG_PATHS:
        text = _read(root, rel)
        if text is None:
            continue
        path = "/" + rel
        mine = _FILTERS.get(board_type or "", set())
        applies, out = True, []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                name = line[1:-1].strip().lower()
                if name == "all":
                    applies = True
                elif name == "none":
                    applies = False
                elif name in _MODEL_FILTERS:
                    applies = name in mine
                continue
            if applies:
                out.append(ConfigLine(path, number, line))
        return path, out
    return None, []


def _gpu_mem_mb(lines: List[ConfigLine], ram_bytes: Optional[int]) -> Optional[int]:
    values: Dict[str, int] = {}
    for cl in lines:
        m = re.fullmatch(r"(gpu_mem(?:_\d+)?)\s*=\s*(\d+)", cl.text)
        if m:
            values[m.group(1)] = int(m.group(2))
    if ram_bytes is not None:
        specific = f"gpu_mem_{ram_bytes // (1024 * 1024)}"
        if specific in values:
            return values[specific]
    return values.get("gpu_mem")


def detect_board(root: str = "/", access: Callable[[str, int], bool] = os.access) -> BoardInfo:
    """Read the machine's description below `root`. Never raises for missing files."""
    info = BoardInfo(root=root)
    cpu = _cpuinfo(root)
    info.model = (_dt_read(root, "model") or cpu.get("Model", "")).strip("\0\n ")
    info.compatible = tuple(c for c in (_dt_read(root, "compatible") or "").split("\0") if c)
    rev = cpu.get("Revision")
    if rev:
        try:
            info.revision = int(rev, 16)
        except ValueError:
            info.revision = None
    if info.revision is not None:
        info.board_type, info.soc, info.ram_bytes = decode_revision(info.revision)
    if info.soc is None:                 # fall back on the device tree's SoC name
        for comp in info.compatible:
            m = re.fullmatch(r"brcm,(bcm27\d\d|bcm283\d)", comp)
            if m:
                info.soc = {"BCM2710": "BCM2837", "BCM2709": "BCM2836", "BCM2708": "BCM2835"}.get(
                    m.group(1).upper(), m.group(1).upper())
                break
    info.is_raspberry_pi = ("Raspberry Pi" in info.model
                            or any(c.startswith("raspberrypi,") for c in info.compatible)
                            or (info.board_type is not None and info.soc is not None))
    info.machine = cpu.get("model name") or cpu.get("Hardware") or cpu.get("Processor") or ""

    info.config_path, lines = config_lines(root, info.board_type)
    info.gpu_mem_mb = _gpu_mem_mb(lines, info.ram_bytes)
    for cl in lines:
        m = re.fullmatch(r"dtoverlay\s*=\s*([\w-]+)(,.*)?", cl.text)
        if m and m.group(1) in KMS_OVERLAYS:
            info.kms_config_lines.append(cl)
    info.cma_total_bytes = _meminfo_bytes(root, "CmaTotal")
    info.cma_free_bytes = _meminfo_bytes(root, "CmaFree")
    mods = [ln.split()[0] for ln in (_read(root, "proc/modules") or "").splitlines() if ln.strip()]
    info.modules = tuple(m for m in mods if m in ("vc4", "v3d", "vc_sm_cma", "bcm2835_mmal_vchiq"))
    _detect_v3d_owner(info, root)

    # /dev/vcio is opened read-only; the other two read-write
    for name, mode in (("vcio", os.R_OK), ("vcsm-cma", os.R_OK | os.W_OK), ("mem", os.R_OK | os.W_OK)):
        path = os.path.join(root, "dev", name)
        exists = os.path.exists(path)
        info.devices[name] = (exists, exists and access(path, mode))
    return info


def _detect_v3d_owner(info: BoardInfo, root: str) -> None:
    """The firmware refuses QPU mailbox work while the device tree enables the v3d node, which the
    vc4-kms-v3d and vc4-fkms-v3d overlays do (spec §13.7)."""
    v3d = [n for n in _dt_nodes(root, "soc", "v3d@") if _dt_node_enabled(root, n)]
    fkms = [n for n in _dt_nodes(root, "soc", "firmwarekms@") if _dt_node_enabled(root, n)]
    have_dt = bool(_dt_nodes(root, "", "soc"))
    if v3d:
        info.v3d_owner = "vc4-fkms-v3d" if fkms else "vc4-kms-v3d"
        info.v3d_owner_evidence.append(f"device tree node /{v3d[0]} is enabled")
    elif not have_dt and info.kms_config_lines:
        overlay = re.match(r"dtoverlay\s*=\s*([\w-]+)", info.kms_config_lines[0].text)
        info.v3d_owner = overlay.group(1) if overlay else "vc4-kms-v3d"
        info.v3d_owner_evidence.append("config.txt loads " + info.v3d_owner)
    if info.v3d_owner and "vc4" in info.modules:
        info.v3d_owner_evidence.append("kernel module vc4 is loaded")


def kms_fix(info: BoardInfo) -> str:
    """The config.txt edit and reboot that hand the V3D back to the firmware."""
    if info.kms_config_lines:
        edits = "; ".join(f"line {cl.number} of {cl.path}: `{cl.text}` -> `#{cl.text}`"
                          for cl in info.kms_config_lines)
        return f"comment out {edits}; then `sudo reboot`"
    where = info.config_path or "/boot/firmware/config.txt (or /boot/config.txt)"
    overlay = info.v3d_owner or "vc4-kms-v3d"
    return (f"no active `dtoverlay={overlay}` line was found in {where}: if you have just "
            f"commented it out, `sudo reboot`; otherwise find the file or section that loads "
            f"{overlay} (an `include`d file, a [pi...] section), comment out the "
            f"`dtoverlay={overlay}` line there and `sudo reboot`")


#: udev rules that give the video group /dev/vcio (the firmware mailbox, kernel subsystem
#: bcm2708_vcio) and /dev/vcsm-cma, as Raspberry Pi OS's own rules do; for systems that lack them
UDEV_RULES = ('SUBSYSTEM=="bcm2708_vcio", KERNEL=="vcio", GROUP="video", MODE="0660"',
              'KERNEL=="vcsm-cma", GROUP="video", MODE="0660"')
UDEV_RULES_PATH = "/etc/udev/rules.d/99-vc4infer.rules"


def udev_fix() -> str:
    """One shell line that installs UDEV_RULES and applies them."""
    lines = "\\n".join(rule.replace('"', '\\"') for rule in UDEV_RULES)
    return (f'printf "{lines}\\n" | sudo tee {UDEV_RULES_PATH} && sudo udevadm control --reload '
            "&& sudo udevadm trigger")


def hw_blocker(info: BoardInfo) -> Optional[HardwareUnavailableError]:
    """The error that keeps the `hw` backend from running here, or None when nothing does."""
    if not info.is_raspberry_pi:
        what = info.machine or "unknown hardware"
        return NotRaspberryPiError(
            f"this is not a Raspberry Pi ({what}): the hw backend needs a Pi Zero, 1, 2 or 3 "
            "(VideoCore IV). Use backend='emu' to run QPU programs on the emulator.")
    if not info.has_videocore_iv:
        name = info.model or f"a {info.soc} board"
        return UnsupportedBoardError(
            f"{name} has a VideoCore VI/VII GPU ({info.soc}), not the VideoCore IV that vc4infer's "
            "QPU code is written for: Pi 4, 400, 5 and CM4/CM5 are not supported. Use a Pi Zero, "
            "1, 2 or 3 for hw, or backend='emu' here.")
    if info.v3d_owner:
        return KmsOwnsV3dError(
            f"the Linux vc4 DRM driver ({info.v3d_owner}) owns the V3D "
            f"({', '.join(info.v3d_owner_evidence)}), so the firmware refuses QPU work from user "
            f"space. Fix: {kms_fix(info)}. The desktop then runs without GL acceleration.")
    if info.gpu_mem_mb is not None and info.gpu_mem_mb <= 16:
        return GpuMemoryTooSmallError(
            f"gpu_mem={info.gpu_mem_mb} in {info.config_path} selects the cut-down firmware, which "
            "has no usable 3D block. Fix: set `gpu_mem=64` (or more) there, then `sudo reboot`.")
    exists, usable = info.device("vcio")
    if not exists:
        return MailboxUnavailableError(
            "/dev/vcio does not exist: this kernel has no firmware mailbox device. Use Raspberry "
            "Pi OS's kernel, or on old kernels `sudo mknod /dev/vcio c 100 0`.")
    if not usable:
        return HwPermissionError(
            "no permission to open /dev/vcio: add yourself to the video group (`sudo usermod -aG "
            "video $USER`, then log in again) or run as root. If `ls -l /dev/vcio` does not show "
            f"group video, this system lacks the udev rule that gives it: `{udev_fix()}`.")
    if not info.device("vcsm-cma")[1] and not info.device("mem")[1]:
        if info.device("vcsm-cma")[0]:
            why = ("/dev/vcsm-cma exists but this user may not open it (join the video group; "
                   f"if the device is not group video, install the udev rule: `{udev_fix()}`)")
        else:
            why = "this kernel has no /dev/vcsm-cma"
        return HwPermissionError(
            f"cannot map GPU memory: {why}, and /dev/mem needs root. Fix: run as root (sudo), or "
            "join the video group on a kernel with /dev/vcsm-cma (Raspberry Pi OS since 5.9).")
    return None
