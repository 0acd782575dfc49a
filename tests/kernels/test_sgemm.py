"""qpu_kernels.sgemm on the QPUs (strict emulator by default) against float64 numpy references.

Operands are allocated at their exact sizes (any read past A, B or R faults in the emulator) and C
sits inside a guard frame whose contents must survive (a write past C's rows or columns shows).
"""
import numpy as np
import pytest

from qpu_kernels import launch, sgemm
from qpu_kernels.launch import KernelShapeError
from vc4infer.qpu import assemble_program

from kernel_support import activate, assert_guard_intact, assert_within, gemm_bound, guarded


def run_sgemm(drv, m, k, n, act=None, residual=False, a_pad=0, seed=0, corrupt=None):
    """Run C = act(A @ B + bias) (+ R) and check it against float64 numpy; returns the launches.
    `corrupt(panels)` edits the packed weights the kernel sees, as (panel, K + 1, panel width)
    (tests of this test)."""
    rng = np.random.default_rng(seed)
    a_host = rng.standard_normal((m, k + a_pad)).astype(np.float32)
    a_full = drv.copy(a_host)                         # A may be a strided view of a wider array
    a = a_full[:, :k]
    b = rng.standard_normal((k, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    packed = sgemm.pack_weights(b, bias, m)
    if corrupt is not None:
        corrupt(packed.reshape(-1, k + 1, sgemm.panel_width(m, k, n)))
    weights = drv.copy(packed)
    whole, c = guarded(drv, m, n)
    r = drv.copy(rng.standard_normal((m, n)).astype(np.float32)) if residual else None
    launches = sgemm.build(drv, m, k, n, a.address, a.strides[0], weights.address, c.address,
                           c.strides[0], act, r.address if residual else None,
                           r.strides[0] if residual else None)
    for lc in launches:
        lc.run(drv)
    a64, b64 = np.array(a, np.float64), b.astype(np.float64)
    ref = activate(np.matmul(a64, b64) + bias, act)
    magnitude = np.matmul(np.abs(a64), np.abs(b64)) + np.abs(bias)
    if residual:
        ref = ref + np.array(r, np.float64)
        magnitude = magnitude + np.abs(np.array(r, np.float64))
    assert_within(np.array(c), ref, gemm_bound(magnitude, k + 2), f"sgemm {m}x{k}x{n} {act}")
    assert_guard_intact(whole, m, n)
    return launches


@pytest.mark.parametrize("m,k,n,act,residual", [
    (1, 2, 1, None, False),            # smallest: one row, one column, K = 2 (TMU depth 2)
    (16, 16, 16, "relu", False),       # exactly one tile
    (17, 5, 33, "relu6", False),       # M, N one past a multiple of 16; odd K
    (40, 37, 50, "relu6", True),       # residual add, several tiles and panels
    (5, 3, 1000, None, False),         # 1000 columns (ImageNet classes), K = 3 (depth 3)
    (33, 7, 96, "relu", True),
    (100, 260, 40, "relu", True),      # long k-loops over 7 row tiles: tiles start at a barrier
])
def test_sgemm_matches_numpy(drv, m, k, n, act, residual):
    run_sgemm(drv, m, k, n, act, residual)


def _drop_last_k_step(panels):
    """What an SGEMM that skips its last K step computes: B's last row left out of every panel."""
    panels[:, -2, :] = 0.0          # rows 0..K-1 hold B, row K the bias


def test_the_check_fails_a_kernel_that_drops_its_last_k_step(drv):
    with pytest.raises(AssertionError, match="sgemm 17x5x33"):
        run_sgemm(drv, 17, 5, 33, "relu6", corrupt=_drop_last_k_step)


def test_strided_a(drv):
    """A as every row's first K of a wider array (A's row stride > 4K)."""
    run_sgemm(drv, 19, 9, 20, "relu", a_pad=5)


@pytest.mark.parametrize("nt", sgemm.PANEL_WIDTHS)
@pytest.mark.parametrize("act", sgemm.ACTIVATIONS)
@pytest.mark.parametrize("residual", [False, True])
def test_every_variant_passes_the_hazard_checker(nt, act, residual):
    for depth in range(2, sgemm.MAX_TMU_DEPTH + 1):
        assemble_program(sgemm.sgemm_kernel, nt, act, residual, depth, check=True)
        if sgemm.vpm_banks(nt) > 1:
            assemble_program(sgemm.sgemm_kernel, nt, act, residual, depth, False, True, check=True)


@pytest.mark.parametrize("m,k,n,act,residual", [
    (200, 4, 32, "relu", False),       # 13 row tiles on 12 QPUs: 11 instances idle a turn
    (1536, 16, 96, "relu6", True),     # MobileNet v2's first expansion, 8 rows of it
    (100, 60, 144, None, True),        # 48-column panels: one VPM bank, the turn is the lock
    (5, 3, 20, "relu", False),         # fewer tiles than QPUs: a ring of 2 instances
])
def test_ordered_stores(drv, m, k, n, act, residual):
    """Store-bound shapes store in turn; the result is exact."""
    assert sgemm.tile_sync(m, k, sgemm.panel_width(m, k, n)) == "ordered"
    run_sgemm(drv, m, k, n, act, residual)


def test_ordered_stores_keep_the_instances_together(drv):
    """Every instance has 24 tiles; storing in turn, they finish one store after another, all
    within a round of stores (instances left waiting on a bank lock would end long after the
    others: 94,000 cycles apart when this was written without the turns)."""
    run_sgemm(drv, 1536, 16, 96, "relu6")
    cycles = drv.last_stats.cycles
    assert max(cycles) - min(cycles) < (len(cycles) + 2) * sgemm.store_cycles(32), cycles


@pytest.mark.parametrize("n", [16, 48])
def test_the_panel_is_read_ahead_into_the_l2(drv, n):
    """One tile with a 512-row panel: TMU1 brings each panel row into the L2C before the uniform
    stream reaches it, so the uniforms path seldom misses: a few rows before the first prefetch,
    and prefetched lines that A's lines evict again (A's 16 rows, 2 KiB apart, fill all 4 ways of
    the sets they map to). Without the prefetch every one of the panel's 513 x n / 16 lines
    misses."""
    k = 512
    run_sgemm(drv, 16, k, n)
    panel_lines = (k + 1) * n // 16
    assert drv.last_stats.extra["uniform_l2_misses"] < panel_lines / 6


def test_panel_layout():
    """pack_weights: panel p holds B[k, p*NT + j] k-major, zero past N, then the bias."""
    k, n, m = 3, 40, 64
    b = np.arange(k * n, dtype=np.float32).reshape(k, n) + 1
    bias = -np.arange(n, dtype=np.float32) - 1
    nt = sgemm.panel_width(m, k, n)
    packed = sgemm.pack_weights(b, bias, m).reshape(-1, k + 1, nt)
    assert packed.shape[0] == -(-n // nt)
    for p in range(packed.shape[0]):
        for j in range(nt):
            col = p * nt + j
            want = b[:, col] if col < n else np.zeros(k)
            assert np.array_equal(packed[p, :k, j], want)
            assert packed[p, k, j] == (bias[col] if col < n else 0)


def test_work_splits_into_several_launches(drv, monkeypatch):
    """A launch budget of a few tiles forces several launches; the result is still exact."""
    monkeypatch.setattr(launch, "launch_budget_cycles", lambda drv: 5000.0)
    launches = run_sgemm(drv, 256, 8, 64, "relu")
    assert len(launches) > 1


def test_barrier_rounds_across_several_launches(drv, monkeypatch):
    """Each launch's instances meet at the barrier as many times as the fewest tiles any of
    them has: no instance waits for one that has finished (a wrong count would hang)."""
    nt = sgemm.panel_width(192, 300, 100)
    assert sgemm.barrier_pays(192, 300, nt)
    per_tile = sgemm._tile_cycles(300, nt, False)
    monkeypatch.setattr(launch, "launch_budget_cycles", lambda drv: 2.5 * per_tile)
    launches = run_sgemm(drv, 192, 300, 100, None)     # two tiles per instance and launch
    assert len(launches) >= 2


def test_barrier_only_where_it_pays():
    assert not sgemm.barrier_pays(49, 512, 48)       # 4 row tiles: few instances share a panel
    assert not sgemm.barrier_pays(196, 96, 48)       # short k-loops: the stores would queue
    assert sgemm.barrier_pays(196, 512, 48)


def test_launch_splitting_respects_budget():
    plan = launch.split_items([100.0] * 50, budget_cycles=300.0, n_qpus=4)
    assert [i for lc in plan for inst in lc for i in inst] != [] and \
        sorted(i for lc in plan for inst in lc for i in inst) == list(range(50))
    assert all(len(inst) <= 3 for lc in plan for inst in lc)
    assert all(len(lc) <= 4 for lc in plan)


def test_shape_errors(drv):
    with pytest.raises(KernelShapeError, match="K >= 2"):
        sgemm.build(drv, 4, 1, 4, 0, 4, 0, 0, 16)
    with pytest.raises(KernelShapeError, match="act="):
        sgemm.build(drv, 4, 4, 4, 0, 16, 0, 0, 16, act="gelu")
    with pytest.raises(KernelShapeError, match="row stride"):
        sgemm.build(drv, 4, 4, 4, 0, 8, 0, 0, 16)
    with pytest.raises(KernelShapeError, match="R overlaps C"):
        sgemm.build(drv, 4, 4, 4, 0, 16, 0, 4096, 16, None, 4096 + 16, 16)
    with pytest.raises(KernelShapeError, match="bias"):
        sgemm.pack_weights(np.ones((3, 4), np.float32), np.ones(5, np.float32), 16)


@pytest.mark.slow
@pytest.mark.parametrize("m,k,n,act,residual", [
    (3136, 64, 128, "relu6", False),   # MobileNet v1/v2 pointwise at 56x56
    (196, 256, 256, "relu", False),
    (49, 960, 160, None, True),        # v2 projection with residual at 7x7
    (1, 1280, 1000, None, False),      # v2 classifier
])
def test_sgemm_mobilenet_shapes(drv, m, k, n, act, residual):
    run_sgemm(drv, m, k, n, act, residual)


def test_transposed_a(drv):
    """a_column_step: A[i, k] read at a + 4i + k*step, i.e. A is the transpose of a (K x M)
    row-major array (what the global average pool relies on)."""
    rng = np.random.default_rng(3)
    m, k, n = 21, 6, 5
    at = drv.copy(rng.standard_normal((k, m)).astype(np.float32))
    b = rng.standard_normal((k, n)).astype(np.float32)
    weights = drv.copy(sgemm.pack_weights(b, None, m))
    whole, c = guarded(drv, m, n)
    for lc in sgemm.build(drv, m, k, n, at.address, 4, weights.address, c.address, c.strides[0],
                          a_column_step=at.strides[0]):
        lc.run(drv)
    a64 = np.array(at, np.float64).T
    assert_within(np.array(c), a64 @ b, gemm_bound(np.abs(a64) @ np.abs(b), k + 2), "A transposed")
    assert_guard_intact(whole, m, n)


def test_programs_are_assembled_once_per_driver_and_shape_class(drv):
    first = launch.cached_program(drv, sgemm.sgemm_kernel, 16, None, False, 2)
    assert launch.cached_program(drv, sgemm.sgemm_kernel, 16, None, False, 2) is first
    assert launch.cached_program(drv, sgemm.sgemm_kernel, 16, "relu", False, 2) is not first


def test_panel_width_weighs_k_loops_against_queued_stores():
    # long k-loops: the widest panel streams each A column into the most accumulators
    assert sgemm.panel_width(196, 512, 512) == 48
    # 64 columns: four 16-wide panels fill 12 QPUs better than two 48-wide ones (the second half
    # empty) or 32-wide ones
    assert sgemm.panel_width(196, 384, 64) == 16
    # K = 32: the stores outweigh the k-loops, and 48-wide tiles would share one VPM bank
    assert sgemm.panel_width(784, 32, 192) == 32


def test_tiles_go_row_major_only_for_a_few_small_panels():
    # MobileNet v2's 14x14 projections (K = 384, N = 64: four 16-wide panels): A shared by the
    # panels costs less than each of 12 row tiles reading its own A for one panel
    assert sgemm.rows_first(13, 4, 4 * 16 * 384, 4 * 385 * 16)
    # v1's 14x14x512 -> 512: eleven 48-wide panels, each shared by 12 row tiles
    assert not sgemm.rows_first(13, 11, 4 * 16 * 512, 4 * 513 * 48)
    # 7x7 inputs: four row tiles share a panel in either order; panel-major keeps fewer panels live
    assert not sgemm.rows_first(4, 5, 4 * 16 * 960, 4 * 961 * 32)


def test_row_major_tiles_compute_the_same_product(drv):
    m, k, n = 200, 40, 64
    nt = sgemm.panel_width(m, k, n)
    assert sgemm.rows_first(-(-m // 16), -(-n // nt), 4 * 16 * k, 4 * sgemm.panel_words(k, nt))
    run_sgemm(drv, m, k, n, "relu6")
