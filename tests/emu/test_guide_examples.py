"""Whole programs: the examples and benchmark kernels of qpu_kernels against numpy, and the
launch statistics the emulator reports for programs whose instruction count and DMA traffic can
be worked out from the program itself.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from hostside.driver import Driver
from qpu_kernels import bench_dma, bench_sgemm
from qpu_kernels.examples import hello_world, vector_add
from vc4infer.qpu import assemble, qpu

RNG = np.random.default_rng(31)


def test_hello_world_adds_two_vectors(drv):
    a = RNG.random(16).astype(np.float32)
    b = RNG.random(16).astype(np.float32)
    c = hello_world.add16(drv, a, b)
    exact = a.astype(np.float64) + b
    assert np.all(np.abs(c - exact) <= np.abs(exact) * 2.0 ** -23)


@pytest.mark.parametrize("rows, threads", [(1, 12), (13, 12), (100, 12), (7, 3)])
def test_vector_add_on_twelve_qpus(drv, rows, threads):
    a = RNG.standard_normal(16 * rows).astype(np.float32)
    b = RNG.standard_normal(16 * rows).astype(np.float32)
    c = vector_add.add(drv, a, b, threads)
    exact = a.astype(np.float64) + b
    assert np.all(np.abs(c - exact) <= np.abs(exact) * 2.0 ** -23)


@pytest.mark.parametrize("chunks, threads", [(1, 12), (12, 12), (37, 12), (5, 2)])
def test_dma_streaming_vector_add(drv, chunks, threads):
    n = chunks * bench_dma.CHUNK_FLOATS
    a = RNG.standard_normal(n).astype(np.float32)
    b = RNG.standard_normal(n).astype(np.float32)
    c = bench_dma.vector_add(drv, a, b, threads)
    exact = a.astype(np.float64) + b
    assert np.all(np.abs(c - exact) <= np.abs(exact) * 2.0 ** -23)


def test_dma_streaming_rejects_partial_chunks(drv):
    a = np.zeros(bench_dma.CHUNK_FLOATS + 1, np.float32)
    with pytest.raises(bench_dma.VectorLengthError):
        bench_dma.vector_add(drv, a, a)


def sgemm_bound(a, b):
    """Error bound of a float32 dot product of length q accumulated with round-toward-zero adds."""
    q = a.shape[1]
    return (q + 2) * 2.0 ** -23 * (np.abs(a).astype(np.float64) @ np.abs(b))


@pytest.mark.parametrize("p, q, r, threads", [(16, 1, 32, 1), (32, 20, 64, 12), (48, 37, 96, 5)])
def test_sgemm_against_numpy(drv, p, q, r, threads):
    a = RNG.standard_normal((p, q)).astype(np.float32)
    b = RNG.standard_normal((q, r)).astype(np.float32)
    c = bench_sgemm.sgemm(drv, a, b, threads)
    exact = a.astype(np.float64) @ b
    assert np.all(np.abs(c - exact) <= sgemm_bound(a, b))


@pytest.mark.slow
def test_sgemm_py_videocore_shape(drv):
    """The p, q of py-videocore's sgemm example with a narrower r."""
    a = RNG.standard_normal((96, 363)).astype(np.float32)
    b = RNG.standard_normal((363, 384)).astype(np.float32)
    c = bench_sgemm.sgemm(drv, a, b, 12, timeout=600)
    assert np.all(np.abs(c - a.astype(np.float64) @ b) <= sgemm_bound(a, b))


def test_sgemm_rejects_shapes_it_cannot_tile(drv):
    with pytest.raises(bench_sgemm.SgemmShapeError):
        bench_sgemm.sgemm(drv, np.zeros((15, 4), np.float32), np.zeros((4, 32), np.float32))
    with pytest.raises(bench_sgemm.SgemmShapeError):
        bench_sgemm.sgemm(drv, np.zeros((16, 4), np.float32), np.zeros((5, 32), np.float32))


# ------------------------------------------------------------------ launch statistics (emulator)

@qpu
def straight_line(asm, n_nops):
    for _ in range(n_nops):
        nop()
    exit()


def test_stats_count_the_instructions_of_a_straight_line_program(emu_only):
    code = assemble(straight_line, 100)
    seconds = {}
    for clock_hz in (250e6, 400e6):
        with Driver(backend="emu", clock_hz=clock_hz) as drv:
            drv.execute(n_threads=1, program=drv.program(straight_line, 100))
            stats = drv.last_stats
        assert stats.backend == "emu" and stats.clock_hz == clock_hz
        assert stats.instructions[0] == len(code) // 8
        # one instruction per 4 clocks, and the waits for code lines from SDRAM
        assert stats.cycles[0] == 4 * stats.instructions[0] + stats.stalls["instruction_fetch"]
        seconds[clock_hz] = (4 * stats.instructions[0] / clock_hz,
                             stats.stalls["instruction_fetch"] / clock_hz)
    # ALU work takes the same cycles at a higher clock; the SDRAM, on its own clock, the same time
    assert seconds[250e6][0] / seconds[400e6][0] == pytest.approx(400 / 250, rel=1e-9)
    assert seconds[250e6][1] == pytest.approx(seconds[400e6][1], rel=0.02)


def test_stats_count_dma_bytes(emu_only, drv):
    hello_world.add16(drv, np.ones(16, np.float32), np.ones(16, np.float32))
    stats = drv.last_stats
    assert stats.dma_load_bytes == 2 * 64 and stats.dma_store_bytes == 64
    assert stats.n_threads == 1 and len(stats.instructions) >= 1


def test_stats_of_twelve_instances(emu_only, drv):
    a = np.ones(16 * 24, np.float32)
    vector_add.add(drv, a, a, 12)
    stats = drv.last_stats
    assert stats.n_threads == 12
    assert sum(1 for n in stats.instructions if n > 0) == 12
    assert stats.dma_store_bytes == a.nbytes
    assert stats.tmu_bytes >= 2 * a.nbytes
