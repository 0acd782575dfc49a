"""A new user's first steps: clone the repository, run the README's Quick start blocks in the
order they are written (set up and classify, then set up and test). CI runs the second block
alone on a clean checkout (.ci/run); this test covers the other order. It installs from PyPI and
compiles the emulator: about 10 minutes."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def quick_start_blocks(readme: str) -> list:
    """The shell blocks of README.md's "Quick start" section, in order."""
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M)


def test_quick_start_has_the_setup_and_the_test_block():
    blocks = quick_start_blocks((REPO / "README.md").read_text())
    assert len(blocks) == 2
    assert "vc4infer classify" in blocks[0] and "--backend emu" in blocks[0]
    assert blocks[1].strip() == "make test"


@pytest.mark.slow
def test_fresh_clone_runs_both_quick_start_blocks_in_order(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout of vc4infer")
    clone = tmp_path / "vc4infer"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    blocks = quick_start_blocks((clone / "README.md").read_text())
    # the user's shell: none of this test run's venv, caches or options
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "NUMBA_CACHE_DIR", "VC4INFER_NO_NUMBA",
                        "PYTEST_ADDOPTS", "MAKEFLAGS", "MAKELEVEL")
           and not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(REPO)))

    def run(block: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=40 * 60)

    first = run(blocks[0])
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Egyptian cat" in first.stdout.splitlines()[1]
    assert "vc4infer: compiling the QPU emulator with numba" in first.stderr

    second = run(blocks[1])
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    assert re.search(r"\d+ passed", second.stdout) and " failed" not in second.stdout

    # block 2 again would install nothing: every install stamp is up to date
    again = subprocess.run(["make", "-q", "install"], cwd=clone, env=env)
    assert again.returncode == 0

    # and `make clean` leaves the clone as it came
    subprocess.run(["make", "clean"], cwd=clone, env=env, check=True, capture_output=True)
    assert not (clone / ".venv").exists()
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=clone, env=env,
                            capture_output=True, text=True, check=True).stdout
    leftovers = [line for line in status.splitlines() if "__pycache__" not in line]
    assert leftovers == [], leftovers
