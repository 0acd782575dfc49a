"""Fixtures of the QPU suites: one Driver per test module, on the backend chosen with --backend
(emu by default, hw on a Raspberry Pi), so the same tests check the emulator here and the GPU there."""
import pytest


@pytest.fixture(scope="module")
def drv(backend):
    """A Driver on the chosen backend, shared by the tests of one module. On the emulator it runs in
    strict mode, so a test program that strays into behaviour the guide leaves undefined fails
    instead of passing on a value the hardware might not give."""
    from hostside.driver import Driver

    options = {"strict": True} if backend == "emu" else {}
    with Driver(backend=backend, **options) as driver:
        yield driver


@pytest.fixture
def emu_only(backend):
    """Skip a test that inspects emulator-only results (errors raised before hardware would hang,
    modelled statistics) when the suite runs on a Pi."""
    if backend != "emu":
        pytest.skip("checks an emulator-only result; the hardware cannot report it")
