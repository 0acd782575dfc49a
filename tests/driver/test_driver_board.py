"""Board detection on simulated /proc, /sys, /boot and /dev trees, and the hw blockers' messages."""
import os

import pytest
from drv_fake_boards import make_tree

from hostside.driver.board import decode_revision, detect_board, hw_blocker
from hostside.driver.errors import (GpuMemoryTooSmallError, HwPermissionError, KmsOwnsV3dError,
                                    MailboxUnavailableError, NotRaspberryPiError,
                                    UnsupportedBoardError)

MB = 1024 * 1024


@pytest.mark.parametrize("code, board, soc, ram", [
    # expected values from the Raspberry Pi documentation's revision-code tables
    (0x0002, "B", "BCM2835", 256 * MB),
    (0x0010, "B+", "BCM2835", 512 * MB),
    (0x1000002, "B", "BCM2835", 256 * MB),     # over-volted Pi 1 (bit 24 set)
    (0x900092, "Zero", "BCM2835", 512 * MB),
    (0x9000C1, "Zero W", "BCM2835", 512 * MB),
    (0xA01041, "2B", "BCM2836", 1024 * MB),
    (0xA22042, "2B", "BCM2837", 1024 * MB),    # Pi 2 v1.2 carries a BCM2837
    (0xA02082, "3B", "BCM2837", 1024 * MB),
    (0xA020D3, "3B+", "BCM2837", 1024 * MB),
    (0x9020E0, "3A+", "BCM2837", 512 * MB),
    (0x902120, "Zero 2 W", "BCM2837", 512 * MB),
    (0xC03111, "4B", "BCM2711", 4096 * MB),
    (0xD04170, "5", "BCM2712", 8192 * MB),
])
def test_decode_revision(code, board, soc, ram):
    assert decode_revision(code) == (board, soc, ram)


def test_unknown_old_revision():
    assert decode_revision(0x0001) == (None, None, None)


@pytest.mark.parametrize("name, board_type, soc", [
    ("pi1", "B+", "BCM2835"), ("zero", "Zero", "BCM2835"), ("zerow", "Zero W", "BCM2835"),
    ("pi2", "2B", "BCM2836"), ("pi3", "3B", "BCM2837"), ("pi3b+", "3B+", "BCM2837"),
])
def test_videocore_iv_boards_are_usable(tmp_path, name, board_type, soc):
    info = detect_board(str(make_tree(tmp_path, name)))
    assert info.is_raspberry_pi and info.has_videocore_iv
    assert (info.board_type, info.soc) == (board_type, soc)
    assert info.v3d_owner is None
    assert info.gpu_mem_mb == 128
    assert info.cma_total_bytes == 262144 * 1024
    assert info.device("vcio") == (True, True)
    assert hw_blocker(info) is None


def test_config_in_boot_firmware(tmp_path):
    make_tree(tmp_path, "pi3", config_rel="boot/firmware/config.txt", config="gpu_mem=96\n")
    info = detect_board(str(tmp_path))
    assert info.config_path == "/boot/firmware/config.txt" and info.gpu_mem_mb == 96


def test_gpu_mem_per_ram_size_wins(tmp_path):
    make_tree(tmp_path, "pi3", config="gpu_mem=64\ngpu_mem_1024=200\ngpu_mem_512=100\n")
    assert detect_board(str(tmp_path)).gpu_mem_mb == 200


def test_pi4_is_refused_with_reason(tmp_path):
    info = detect_board(str(make_tree(tmp_path, "pi4")))
    assert info.is_raspberry_pi and not info.has_videocore_iv
    err = hw_blocker(info)
    assert isinstance(err, UnsupportedBoardError)
    assert "Raspberry Pi 4 Model B" in str(err) and "not supported" in str(err)
    assert "BCM2711" in str(err) and "emu" in str(err)


def test_x86_is_not_a_pi(tmp_path):
    info = detect_board(str(make_tree(tmp_path, "x86")))
    assert not info.is_raspberry_pi
    err = hw_blocker(info)
    assert isinstance(err, NotRaspberryPiError)
    assert "not a Raspberry Pi" in str(err) and "Xeon" in str(err) and "emu" in str(err)


def test_kms_overlay_owns_v3d(tmp_path):
    make_tree(tmp_path, "pi3", kms="kms")
    info = detect_board(str(tmp_path))
    assert info.v3d_owner == "vc4-kms-v3d"
    assert "vc4" in info.modules
    err = hw_blocker(info)
    assert isinstance(err, KmsOwnsV3dError)
    text = str(err)
    # the [pi4] section's fkms line does not apply to a Pi 3; the [all] kms line (line 10) does
    assert "line 10 of /boot/config.txt: `dtoverlay=vc4-kms-v3d` -> `#dtoverlay=vc4-kms-v3d`" in text
    assert "fkms" not in text and "sudo reboot" in text


def test_fkms_overlay_owns_v3d(tmp_path):
    make_tree(tmp_path, "zero", kms="fkms")
    err = hw_blocker(detect_board(str(tmp_path)))
    assert isinstance(err, KmsOwnsV3dError)
    assert "vc4-fkms-v3d" in str(err) and "#dtoverlay=vc4-fkms-v3d" in str(err)


def test_kms_detected_from_device_tree_alone(tmp_path):
    make_tree(tmp_path, "pi2", kms="kms", config_rel="boot/other.txt")   # no config.txt found
    info = detect_board(str(tmp_path))
    assert info.v3d_owner == "vc4-kms-v3d" and not info.kms_config_lines
    text = str(hw_blocker(info))
    assert "no active `dtoverlay=vc4-kms-v3d` line was found" in text
    assert "if you have just commented it out, `sudo reboot`" in text


def test_kms_line_with_parameters_and_sys_devicetree(tmp_path):
    make_tree(tmp_path, "pi3", kms="kms")
    # the same tree under /sys/firmware/devicetree/base instead of /proc/device-tree
    os.rename(tmp_path / "proc" / "device-tree", tmp_path / "dt")
    os.makedirs(tmp_path / "sys" / "firmware" / "devicetree")
    os.rename(tmp_path / "dt", tmp_path / "sys" / "firmware" / "devicetree" / "base")
    with open(tmp_path / "boot" / "config.txt", "a") as f:
        f.write("dtoverlay=vc4-kms-v3d,cma-256\n")
    info = detect_board(str(tmp_path))
    assert info.model.startswith("Raspberry Pi 3") and info.v3d_owner == "vc4-kms-v3d"
    assert [cl.text for cl in info.kms_config_lines] == ["dtoverlay=vc4-kms-v3d",
                                                         "dtoverlay=vc4-kms-v3d,cma-256"]


def test_commented_overlay_is_ignored(tmp_path):
    make_tree(tmp_path, "pi3", config="#dtoverlay=vc4-kms-v3d\ngpu_mem=64\n")
    info = detect_board(str(tmp_path))
    assert info.kms_config_lines == [] and info.v3d_owner is None


def test_cut_down_firmware(tmp_path):
    make_tree(tmp_path, "pi3", config="gpu_mem=16\n")
    err = hw_blocker(detect_board(str(tmp_path)))
    assert isinstance(err, GpuMemoryTooSmallError) and "gpu_mem=64" in str(err)


def test_no_vcio(tmp_path):
    make_tree(tmp_path, "pi3", devices=("mem",))
    err = hw_blocker(detect_board(str(tmp_path)))
    assert isinstance(err, MailboxUnavailableError) and "/dev/vcio" in str(err)


def _deny(*names):
    return lambda path, mode: os.path.basename(path) not in names


def test_no_permission_on_vcio(tmp_path):
    make_tree(tmp_path, "pi3")
    err = hw_blocker(detect_board(str(tmp_path), access=_deny("vcio")))
    assert isinstance(err, HwPermissionError) and "video group" in str(err)
    assert "\n" not in str(err)                                   # one line for the CLI


def test_the_udev_fix_writes_the_rules(tmp_path):
    """The shell line the permission errors give writes exactly the two rules (run here with
    `tee` into a temporary file instead of sudo into /etc)."""
    import subprocess

    from hostside.driver.board import UDEV_RULES, UDEV_RULES_PATH, udev_fix
    target = tmp_path / "99-vc4infer.rules"
    line = udev_fix().split(" && ")[0].replace(f"sudo tee {UDEV_RULES_PATH}", f"tee {target}")
    subprocess.run(["sh", "-c", line], check=True, capture_output=True)
    assert target.read_text().splitlines() == list(UDEV_RULES)
    assert UDEV_RULES[0] == 'SUBSYSTEM=="bcm2708_vcio", KERNEL=="vcio", GROUP="video", MODE="0660"'


def test_no_vcsm_cma_and_not_root(tmp_path):
    make_tree(tmp_path, "pi1", devices=("vcio", "mem"))
    err = hw_blocker(detect_board(str(tmp_path), access=_deny("mem")))
    assert isinstance(err, HwPermissionError)
    assert "/dev/mem needs root" in str(err) and "no /dev/vcsm-cma" in str(err)


def test_vcsm_cma_is_enough_without_root(tmp_path):
    make_tree(tmp_path, "pi3")
    assert hw_blocker(detect_board(str(tmp_path), access=_deny("mem"))) is None


def test_overlay_commented_out_but_not_rebooted(tmp_path):
    make_tree(tmp_path, "pi3", kms="kms")
    cfg = tmp_path / "boot" / "config.txt"
    cfg.write_text(cfg.read_text().replace("\ndtoverlay=vc4-kms-v3d", "\n#dtoverlay=vc4-kms-v3d"))
    info = detect_board(str(tmp_path))
    assert info.v3d_owner == "vc4-kms-v3d" and info.kms_config_lines == []
    assert "`sudo reboot`" in str(hw_blocker(info))
