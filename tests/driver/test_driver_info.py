"""`vc4infer info` on this machine and on simulated boards."""
import sys
import types

import pytest
from click.testing import CliRunner
from drv_fake_boards import make_tree

from vc4infer.cli import main


def run_info(*args):
    result = CliRunner().invoke(main, ["info", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def with_emu(monkeypatch):
    mod = types.ModuleType("hostside.driver.emu")
    mod.EmuBackend = type("EmuBackend", (), {})
    monkeypatch.setitem(sys.modules, "hostside.driver.emu", mod)


@pytest.mark.not_on_pi
def test_this_machine_is_not_a_pi():
    out = run_info()
    assert "not a Raspberry Pi" in out
    assert "Backend emu:" in out and "Backend hw:  not usable" in out


def test_x86_with_emulator(tmp_path, with_emu, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",        # numba there, whatever this host has
                        lambda name, *a: object() if name == "numba" else real(name, *a))
    out = run_info("--root", str(make_tree(tmp_path, "x86")))
    assert "Machine:" in out and "not a Raspberry Pi (Intel(R) Xeon(R)" in out
    assert "Backend emu: available (numba-compiled)" in out
    assert "auto picks:  emu" in out


def test_emulator_without_numba_is_slow(tmp_path, with_emu, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba" else real(name, *a))
    out = run_info("--root", str(make_tree(tmp_path, "x86")))
    assert "slow: numba is not installed" in out


def test_pi3_under_kms_shows_the_fix(tmp_path, with_emu):
    out = " ".join(run_info("--root", str(make_tree(tmp_path, "pi3", kms="kms"))).split())
    assert "Board: Raspberry Pi 3 Model B Rev 1.2 (type 3B, revision a02082)" in out
    assert "SoC: BCM2837 (VideoCore IV, 12 QPUs)" in out
    assert "gpu_mem=128 in /boot/config.txt" in out and "CMA: 256 MB total" in out
    assert "V3D owner: vc4-kms-v3d" in out
    assert "`dtoverlay=vc4-kms-v3d` -> `#dtoverlay=vc4-kms-v3d`; then `sudo reboot`" in out
    assert "auto picks: emu" in out


def test_usable_pi_zero(tmp_path, with_emu):
    out = run_info("--root", str(make_tree(tmp_path, "zero", devices=("vcio", "mem"))))
    assert "Backend hw:  usable (GPU memory via mailbox + /dev/mem)" in out
    assert "/dev/vcsm-cma missing" in out and "auto picks:  hw" in out


def test_pi4_is_named_unsupported(tmp_path, with_emu):
    out = " ".join(run_info("--root", str(make_tree(tmp_path, "pi4"))).split())
    assert "BCM2711 (VideoCore VI/VII: not supported)" in out
    assert "Pi 4, 400, 5 and CM4/CM5 are not supported" in out


def test_a_denied_vcio_shows_the_video_group_and_the_udev_rule(tmp_path, with_emu, monkeypatch):
    import functools
    import os

    from hostside.driver import board
    denied = functools.partial(board.detect_board,
                               access=lambda path, mode: os.path.basename(path) != "vcio")
    monkeypatch.setattr(board, "detect_board", denied)
    out = " ".join(run_info("--root", str(make_tree(tmp_path, "pi3"))).split())
    assert "/dev/vcio no permission" in out
    assert "sudo usermod -aG video $USER" in out
    # the rule Raspberry Pi OS ships for the mailbox device (kernel subsystem bcm2708_vcio)
    assert 'SUBSYSTEM=="bcm2708_vcio", KERNEL=="vcio", GROUP="video", MODE="0660"' in out
    assert "/etc/udev/rules.d/99-vc4infer.rules" in out
