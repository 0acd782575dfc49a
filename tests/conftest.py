"""Shared pytest options: `--backend emu|hw` chooses where QPU code runs; markers `hw` (needs a
Raspberry Pi with a usable V3D), `not_on_pi` (checks what vc4infer does on a host that is not a
Pi) and `slow` (run with `--runslow` or `-m slow`).

The same suite runs on x86 with the emulator and on a board: under `--backend hw` every test that
runs QPU code through the `backend` fixture needs the board, and where this host cannot give it
they are skipped with the reason (`vc4infer info` says how to fix it)."""
import pytest
from requires import host_facts


def pytest_addoption(parser):
    parser.addoption("--backend", default="emu", choices=["emu", "hw"],
                     help="where QPU programs run: the emulator (default) or a Pi's V3D")
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "hw: needs a Raspberry Pi (run with --backend hw)")
    config.addinivalue_line("markers", "not_on_pi: checks what vc4infer does on a host that is "
                                       "not a Raspberry Pi (skipped on one)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds (run with --runslow)")


def pytest_collection_modifyitems(config, items):
    on_hw = config.getoption("--backend") == "hw"
    run_slow = config.getoption("--runslow") or "slow" in (config.getoption("-m") or "")
    is_pi, blocker = host_facts()
    skip_hw = pytest.mark.skip(reason="needs a Raspberry Pi: run with --backend hw on one")
    skip_no_board = pytest.mark.skip(reason=f"--backend hw, but the hw backend cannot run on this "
                                            f"host: {blocker}")
    skip_pi = pytest.mark.skip(reason="checks what vc4infer does on a host that is not a "
                                      "Raspberry Pi; this one is")
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        needs_board = "hw" in item.keywords or (on_hw and "backend" in item.fixturenames)
        if "hw" in item.keywords and not on_hw:
            item.add_marker(skip_hw)
        elif needs_board and blocker is not None:
            item.add_marker(skip_no_board)
        if "not_on_pi" in item.keywords and is_pi:
            item.add_marker(skip_pi)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)


def pytest_report_collectionfinish(config, start_path, items):
    """Under --backend hw, say how many tests this host will skip and why (also with
    --collect-only, which runs no test)."""
    if config.getoption("--backend") != "hw":
        return []
    reasons = {}
    for item in items:
        for mark in item.iter_markers("skip"):
            reason = mark.kwargs.get("reason", "")
            if "Raspberry Pi" in reason:
                reasons[reason] = reasons.get(reason, 0) + 1
    return [f"{count} tests will be skipped: {reason}" for reason, count in reasons.items()]


@pytest.fixture(scope="session")
def small_v2(tmp_path_factory):
    """A small MobileNet v2 ONNX file (width 0.25, 64x64 input, 10 classes) built by
    models/build_onnx.py: a whole network that loads and runs in a second."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "graph"))
    from test_onnx_helpers import load_build_onnx

    build = load_build_onnx()
    path = tmp_path_factory.mktemp("small_v2") / "v2.onnx"
    return build.write(build.mobilenet_v2(alpha=0.25, resolution=64, num_classes=10), str(path))


@pytest.fixture(scope="session")
def backend(request) -> str:
    """The QPU backend chosen on the command line ("emu" or "hw")."""
    return request.config.getoption("--backend")
