"""Fixtures of the kernel tests: one Driver per test module (programs are assembled and cached
once per Driver), strict emulation on the emulator so that undefined behaviour fails the test."""
import pytest

from hostside.driver import Driver


@pytest.fixture(scope="module")
def drv(backend):
    options = {"strict": True} if backend == "emu" else {}
    with Driver(backend=backend, **options) as driver:
        yield driver
