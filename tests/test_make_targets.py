"""The Makefile's targets work: lint, kernels, demo and bench run here, from the Makefile's own
venv. (test runs in CI through the README; test-all is CI's second command; install, and clean,
in tests/test_fresh_clone.py.)"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def make_env():
    venv = REPO / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip("runs the Makefile's targets only from its own venv (make test)")
    if subprocess.run(["make", "-q", "install"], cwd=REPO).returncode != 0:
        pytest.skip("the Makefile's venv is not up to date; make install first")
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MAKE"))}


def make(target: str, env: dict) -> str:
    done = subprocess.run(["make", target], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"make {target}: {(done.stdout + done.stderr)[-3000:]}"
    return done.stdout


def test_make_lint(make_env):
    assert "All checks passed!" in make("lint", make_env)


def test_make_kernels_writes_every_variant_and_its_listing(make_env):
    from qpu_kernels.build import variants
    from vc4infer.qpu import assemble_text

    out = make("kernels", make_env)
    stems = [stem for stem, _, _ in variants()]
    assert f"{len(stems)} kernels in out/kernels" in out
    folder = REPO / "out" / "kernels"
    for stem in stems:
        code = (folder / f"{stem}.bin").read_bytes()
        listing = (folder / f"{stem}.txt").read_text()
        assert len(code) > 0 and len(code) % 8 == 0
        assert assemble_text(listing).code == code, stem     # the listing reassembles to the words


def test_make_demo_classifies_the_sample_photos(make_env):
    out = make("demo", make_env)
    assert "demos/images/chelsea.png" in out and "demos/images/coffee.png" in out
    assert "Egyptian cat" in out and "espresso" in out


def test_make_bench_runs_both_benchmarks(make_env):
    out = make("bench", make_env)
    assert "M emulated instructions/s" in out and "modelled Pi time" in out
    assert "onnxruntime" in out
