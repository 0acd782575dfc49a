"""Simulated /proc, /sys, /boot and /dev trees of the boards the hw backend meets.

Revision codes are real ones from the Raspberry Pi documentation's revision-code table: 0010 (Pi 1
B+, old style), 900092 (Zero 1.2), 9000c1 (Zero W), a01041 (2B), a02082 (3B), a020d3 (3B+),
c03111 (4B 4 GB).
"""
import os

BOARDS = {
    "pi1": ("0010", "Raspberry Pi Model B Plus Rev 1.2", "raspberrypi,model-b-plus\0brcm,bcm2835"),
    "zero": ("900092", "Raspberry Pi Zero Rev 1.2", "raspberrypi,model-zero\0brcm,bcm2835"),
    "zerow": ("9000c1", "Raspberry Pi Zero W Rev 1.1", "raspberrypi,model-zero-w\0brcm,bcm2835"),
    "pi2": ("a01041", "Raspberry Pi 2 Model B Rev 1.1", "raspberrypi,2-model-b\0brcm,bcm2836"),
    "pi3": ("a02082", "Raspberry Pi 3 Model B Rev 1.2", "raspberrypi,3-model-b\0brcm,bcm2837"),
    "pi3b+": ("a020d3", "Raspberry Pi 3 Model B Plus Rev 1.3",
              "raspberrypi,3-model-b-plus\0brcm,bcm2837"),
    "pi4": ("c03111", "Raspberry Pi 4 Model B Rev 1.1", "raspberrypi,4-model-b\0brcm,bcm2711"),
}

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz
flags\t\t: fpu vme de pse
"""

DEFAULT_CONFIG = """# For more options and information see http://rpf.io/configtxt
dtparam=audio=on
[pi4]
# Enable DRM VC4 V3D driver on top of the dispmanx display stack
dtoverlay=vc4-fkms-v3d
max_framebuffers=2
[all]
gpu_mem=128
"""


def _write(root, rel, text, mode="w"):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)


def make_tree(root, board, kms=None, config=DEFAULT_CONFIG, devices=("vcio", "mem", "vcsm-cma"),
              config_rel="boot/config.txt", cma_kb=262144, modules=None):
    """Write a simulated machine below `root`. `kms`: None, "kms" or "fkms" (the overlay is put in
    config.txt and the device tree's v3d node enabled, as the overlay does)."""
    root = str(root)
    if board == "x86":
        _write(root, "proc/cpuinfo", X86_CPUINFO)
        _write(root, "proc/meminfo", "MemTotal:       16384000 kB\n")
        _write(root, "proc/modules", "kvm_intel 368640 0 - Live 0x0000000000000000\n")
        return root
    code, model, compatible = BOARDS[board]
    cpu = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\n"
    cpu += f"Hardware\t: BCM2835\nRevision\t: {code}\nSerial\t\t: 00000000a1b2c3d4\nModel\t\t: {model}\n"
    _write(root, "proc/cpuinfo", cpu)
    _write(root, "proc/device-tree/model", model + "\0")
    _write(root, "proc/device-tree/compatible", compatible + "\0")
    _write(root, "proc/device-tree/soc/v3d@7ec00000/status", ("okay" if kms else "disabled") + "\0")
    _write(root, "proc/device-tree/soc/v3d@7ec00000/compatible", "brcm,vc4-v3d\0")
    if kms == "fkms":
        _write(root, "proc/device-tree/soc/firmwarekms@7e600000/status", "okay\0")
    _write(root, "proc/meminfo", f"MemTotal:         949448 kB\nCmaTotal:       {cma_kb} kB\n"
                                 f"CmaFree:        {cma_kb - 1024} kB\n")
    if modules is None:
        modules = ["vc4", "snd_soc_core"] if kms else ["bcm2835_codec", "vc_sm_cma"]
    _write(root, "proc/modules", "".join(f"{m} 16384 0 - Live 0x7f000000\n" for m in modules))
    if kms:
        config = config + f"[all]\ndtoverlay=vc4-{'fkms' if kms == 'fkms' else 'kms'}-v3d\n"
    _write(root, config_rel, config)
    for name in devices:
        _write(root, f"dev/{name}", "")
    return root
