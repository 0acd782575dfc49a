"""A real QPU program through the Driver: add 1 to a 16-word vector. Runs on the backend chosen
with --backend (emu by default; hw on a Raspberry Pi). The program is the instruction words of
spec Appendix A.2 (py-videocore's hardware-tested boilerplate: DMA-load one VPM row, add 1 with
an integer add, DMA-store it, raise the host interrupt, end)."""
import numpy as np
import pytest

from hostside.driver import Driver, DriverClosedError
from spec_words import APPENDIX_A2_WORDS

ADD_ONE = np.array(APPENDIX_A2_WORDS, dtype=np.uint64)


def _open(backend):
    return Driver(backend=backend)    # a backend that fails to import fails the test


def _add_one(drv, values):
    src = drv.array(values, dtype=np.uint32)
    dst = drv.alloc(16, np.uint32)
    prog = drv.program(ADD_ONE)
    drv.execute(1, prog, [src.address, dst.address], timeout=1.0)
    return np.array(dst)


def test_add_one(backend):
    values = np.arange(16, dtype=np.uint32) * 1000 + 0xFFFFFFF0    # wraps around at 2**32
    with _open(backend) as drv:
        out = _add_one(drv, values)
        np.testing.assert_array_equal(out, values + np.uint32(1))
        assert drv.last_stats.n_threads == 1 and drv.last_stats.backend == backend


@pytest.mark.hw
def test_hw_repeated_launches_release_everything(backend):
    """On a Pi: many Drivers one after the other; leaked firmware memory would run out."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        drv = _open(backend)
        assert drv.backend_name == "hw" and drv.max_launch_seconds == 1.0
        values = rng.integers(0, 2**31, 16).astype(np.uint32)
        arrays = [drv.alloc((256, 1024), np.float32) for _ in range(4)]   # 4 MB
        np.testing.assert_array_equal(_add_one(drv, values), values + 1)
        drv.close()
        with pytest.raises(DriverClosedError):
            arrays[0].sum()


@pytest.mark.hw
def test_hw_info_says_usable():
    from vc4infer.commands.info import collect
    rows = dict(collect())
    assert rows["Backend hw"].startswith("usable") and rows["auto picks"] == "hw"
    assert rows["V3D clock"].endswith("(firmware)")
