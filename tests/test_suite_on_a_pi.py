"""The suite runs on a board with `--backend hw`; on a host that cannot give it one, every test
that needs the board is skipped with the reason instead of failing."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from requires import host_facts

TESTS = Path(__file__).resolve().parent


@pytest.mark.not_on_pi
def test_backend_hw_off_a_pi_skips_what_needs_the_board_and_says_why():
    is_pi, blocker = host_facts()
    assert not is_pi and blocker
    files = ["driver/test_driver_on_backend.py", "kernels/test_pooling.py", "test_selftest.py"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:xdist",
                           "-p", "no:cacheprovider", "--backend", "hw", *files],
                          cwd=TESTS, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and re.search(r"\d+ skipped", summary), summary
    reasons = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    board = [r for r in reasons if "the hw backend cannot run on this host" in r]
    assert any("test_driver_on_backend.py" in r for r in board)
    assert any("test_pooling.py" in r for r in board)
    assert all("not a Raspberry Pi" in r for r in board)
    # what does not need the board still runs: the selftest's CLI checks on this host
    assert re.search(r"(\d+) passed", summary), summary


@pytest.mark.not_on_pi
def test_collect_only_under_backend_hw_says_what_will_be_skipped():
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist",
                           "-p", "no:cacheprovider", "--backend", "hw", "driver/test_driver_on_backend.py"],
                          cwd=TESTS, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"^3 tests will be skipped: --backend hw, but the hw backend cannot run on "
                     r"this host: this is not a Raspberry Pi", done.stdout, flags=re.M), done.stdout
