"""Fixtures of the QPU suites: one Driver per test module, on the backend chosen with --backend
(emu by default, hw on a Raspberry Pi), so the same tests check the emulator here and the GPU there."""
import pytest


@pytest.fixture(scope="module", params=["strict", "fast"])
def drv(backend, request):
    """A Driver on the chosen backend, shared by the tests of one module. On the emulator each
    module runs twice: in strict mode, so that a test program that strays into behaviour the guide
    leaves undefined fails instead of passing on a value the hardware might not give, and in the
    default mode, where plain ALU instructions take the fast path (vc4infer.emu.fastpath), so that
    both paths are held to the guide's values."""
    from hostside.driver import Driver

    if backend != "emu" and request.param == "fast":
        pytest.skip("the fast path is the emulator's")
    options = {"strict": request.param == "strict"} if backend == "emu" else {}
    with Driver(backend=backend, **options) as driver:
        yield driver


@pytest.fixture
def emu_only(backend):
    """Skip a test that inspects emulator-only results (errors raised before hardware would hang,
    modelled statistics) when the suite runs on a Pi."""
    if backend != "emu":
        pytest.skip("checks an emulator-only result; the hardware cannot report it")
