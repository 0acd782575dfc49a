"""qpu_kernels.bench_sgemm64, the calibration SGEMM (C = alpha A.B + beta C, py-videocore's
blocking), against float64 numpy, in strict emulation."""
import numpy as np
import pytest

from kernel_support import assert_within, gemm_bound
from qpu_kernels.bench_sgemm64 import Sgemm64ShapeError, sgemm64, sgemm64_kernel, thread_grid
from vc4infer.qpu import assemble_program


@pytest.mark.parametrize("p,q,r,threads,alpha,beta", [
    (32, 2, 64, 2, 1.0, 1.0),          # q = 2: the loop runs once
    (32, 37, 128, 2, 0.5, -2.0),       # 2 column tiles per instance
    (64, 20, 384, 12, 1.5, 0.25),      # the 2 x 6 grid, 2 row tiles per instance
])
def test_sgemm64_matches_numpy(drv, p, q, r, threads, alpha, beta):
    rng = np.random.default_rng(p + q + r)
    a = rng.standard_normal((p, q)).astype(np.float32)
    b = rng.standard_normal((q, r)).astype(np.float32)
    c = rng.standard_normal((p, r)).astype(np.float32)
    out = sgemm64(drv, a, b, c, threads, alpha, beta)
    a64, b64, c64 = a.astype(np.float64), b.astype(np.float64), c.astype(np.float64)
    ref = alpha * a64 @ b64 + beta * c64
    magnitude = abs(alpha) * np.abs(a64) @ np.abs(b64) + abs(beta) * np.abs(c64)
    assert_within(out, ref, gemm_bound(magnitude, q + 3), f"sgemm64 {p}x{q}x{r}")


def test_the_kernel_passes_the_hazard_checker():
    assemble_program(sgemm64_kernel, check=True)


def test_thread_grid_is_the_examples():
    assert thread_grid(12) == (2, 6) and thread_grid(2) == (2, 1) and thread_grid(1) == (1, 1)


def test_shapes_that_do_not_tile_are_refused(drv):
    z = np.zeros
    with pytest.raises(Sgemm64ShapeError, match="multiple of 16"):
        sgemm64(drv, z((40, 8)), z((8, 384)), z((40, 384)))
    with pytest.raises(Sgemm64ShapeError, match="q >= 2"):
        sgemm64(drv, z((32, 1)), z((1, 384)), z((32, 384)))
