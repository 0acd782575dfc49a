"""Shared pytest options: `--backend emu|hw` chooses where QPU code runs; markers `hw` (needs a
Raspberry Pi with a usable V3D) and `slow` (run with `--runslow` or `-m slow`)."""
import pytest


def pytest_addoption(parser):
    parser.addoption("--backend", default="emu", choices=["emu", "hw"],
                     help="where QPU programs run: the emulator (default) or a Pi's V3D")
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "hw: needs a Raspberry Pi (run with --backend hw)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds (run with --runslow)")


def pytest_collection_modifyitems(config, items):
    on_hw = config.getoption("--backend") == "hw"
    run_slow = config.getoption("--runslow") or "slow" in (config.getoption("-m") or "")
    skip_hw = pytest.mark.skip(reason="needs a Raspberry Pi: run with --backend hw on one")
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "hw" in item.keywords and not on_hw:
            item.add_marker(skip_hw)
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def backend(request) -> str:
    """The QPU backend chosen on the command line ("emu" or "hw")."""
    return request.config.getoption("--backend")
