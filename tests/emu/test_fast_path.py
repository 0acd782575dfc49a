"""The emulator's fast path (vc4infer.emu.fastpath) against its general loop: random programs of
plain ALU instructions (every add and mul opcode, registers of both files, accumulators, small
immediates, uniforms, conditions, flag updates, read-after-write of a register) must leave the
same registers, accumulators and flags either way. The general loop is the one the guide-derived
suites check instruction by instruction; this test extends that to long mixed sequences."""
# ruff: noqa: F821 - py-videocore style: a @qpu function finds the DSL names in its globals
import numpy as np
import pytest

from emu_rig import Rig, words
from vc4infer.emu.decode import C_FAST, FAST_IO, FAST_NO, predecode, words_from_bytes
from vc4infer.qpu import AssembleError, assemble, qpu

ADD_OPS = ("fadd", "fsub", "fmin", "fmax", "fminabs", "fmaxabs", "ftoi", "itof", "iadd", "isub",
           "shr", "asr", "ror", "shl", "imin", "imax", "band", "bor", "bxor", "bnot", "clz",
           "v8adds", "v8subs")
MUL_OPS = ("fmul", "imul24", "v8muld", "v8min", "v8max", "v8adds", "v8subs")
DESTS = ("r0", "r1", "r2", "r3", "ra0", "ra1", "ra2", "rb0", "rb1", "rb2")
SOURCES = ("r0", "r1", "r2", "r3", "r4", "r5", "ra0", "ra1", "ra2", "rb0", "rb1", "rb2", "uniform")
CONDS = ("always", "always", "always", "never", "zs", "zc", "ns", "nc", "cs", "cc")
N_BODY = 48


def _reg(name):
    g = globals()
    return g["ra"][int(name[2:])] if name.startswith("ra") else (
        g["rb"][int(name[2:])] if name.startswith("rb") else g[name])


@qpu
def random_alu(asm, init, body):
    for name, value in init:
        ldi(_reg(name), value)
    mov(r3, element_number)                    # different values per element
    for name in DESTS[:3] + DESTS[4:]:
        iadd(_reg(name), _reg(name), r3, set_flags=False)
    for op, dst, a, b, cond, sf, mop, mdst, ma, mb, mcond in body:
        ins = globals()[op](_reg(dst), _reg(a) if isinstance(a, str) else a,
                            _reg(b) if isinstance(b, str) else b, cond=cond, set_flags=sf)
        if mop is not None:
            getattr(ins, mop)(_reg(mdst), _reg(ma), _reg(mb), cond=mcond)
    exit()


def _random_program(rng):
    init = [(name, int(rng.integers(0, 2**32))) for name in DESTS]
    # float-looking values too, so that the float ops see normal numbers
    init += [(name, int(np.float32(rng.standard_normal() * 100).view(np.uint32)))
             for name in ("r0", "ra1", "rb2")]
    body = []
    while len(body) < N_BODY:
        choice = rng.integers(0, 10)
        b = int(rng.integers(-16, 16)) if choice == 0 else str(rng.choice(SOURCES))
        ins = (str(rng.choice(ADD_OPS)), str(rng.choice(DESTS)), str(rng.choice(SOURCES)), b,
               str(rng.choice(CONDS)), bool(rng.integers(0, 2)))
        if choice >= 4 and not isinstance(b, int):
            ins += (str(rng.choice(MUL_OPS)), str(rng.choice(DESTS)), str(rng.choice(SOURCES)),
                    str(rng.choice(SOURCES)), str(rng.choice(CONDS)))
        else:
            ins += (None,) * 5
        try:                                   # keep only encodable pairs (one A, one B read...)
            assemble(random_alu, [], [ins])
        except AssembleError:
            continue
        body.append(ins)
    return init, body


def _final_state(program, uniforms, fast_path):
    rig = Rig(strict=False, fast_path=fast_path)
    stats = rig.run(rig.program(random_alu, *program), [uniforms])
    m = rig.backend.machine
    return (m.regs[0].copy(), m.acc[0].copy(), m.flags[0, :3].copy(), stats.cycles,
            stats.stalls)


@pytest.mark.parametrize("seed", range(24))
def test_fast_path_matches_the_general_loop(seed):
    rng = np.random.default_rng(seed)
    program = _random_program(rng)
    fast = predecode(words_from_bytes(assemble(random_alu, *program)))[:, C_FAST]
    assert np.count_nonzero(fast != FAST_NO) >= N_BODY      # the body does take the fast path
    uniforms = [int(v) for v in rng.integers(0, 2**32, 4 * N_BODY)]
    fast = _final_state(program, uniforms, True)
    general = _final_state(program, uniforms, False)
    for got, want in zip(fast, general):        # registers, flags, modelled cycles and stalls
        assert np.array_equal(got, want) if isinstance(got, np.ndarray) else got == want


JUMPS = [c.name for c in __import__("vc4infer.qpu.isa", fromlist=["isa"]).BRANCH_CONDITIONS]


@qpu
def branchy(asm, jumps):
    """Nested counted loops whose bodies branch forward on each condition (taken or not, per
    element data), link into registers, and call a subroutine through a register."""
    mov(r3, element_number)
    ldi(ra1, 3)
    ldi(ra4, 0)
    L.outer
    ldi(ra2, 5)
    L.inner
    for j, jump in enumerate(jumps):
        isub(r2, r3, j % 7, set_flags=True)          # per element: negative, zero, positive
        globals()[jump](L[f"skip{j}"], link=ra0 if j % 2 else rb0)
        iadd(ra4, ra4, 1, set_flags=False)           # delay slots: always run
        fadd(r1, r1, r3, set_flags=False)
        iadd(r0, r0, ra0, set_flags=False)
        iadd(ra4, ra4, 15, set_flags=False)          # skipped when the branch is taken
        L[f"skip{j}"]
    jmp(L.subroutine, link=ra3)
    nop()
    nop()
    nop()
    isub(ra2, ra2, 1, set_flags=True)
    jzc(L.inner)
    nop()
    nop()
    nop()
    isub(ra1, ra1, 1, set_flags=True)
    jzc(L.outer)
    nop()
    nop()
    nop()
    exit()
    L.subroutine
    iadd(r3, r3, 1, set_flags=False)
    jmp(reg=ra3, absolute=True)
    mov(rb2, ra0)
    nop()
    nop()


def test_fast_path_matches_the_general_loop_through_branches():
    program = (JUMPS,)
    fast = predecode(words_from_bytes(assemble(branchy, *program)))[:, C_FAST]
    assert np.count_nonzero(fast != FAST_NO) >= 6 * len(JUMPS)
    results = []
    for fast_path in (True, False):
        rig = Rig(strict=False, fast_path=fast_path)
        stats = rig.run(rig.program(branchy, *program), [[]])
        m = rig.backend.machine
        results.append((m.regs[0].copy(), m.acc[0].copy(), m.flags[0, :3].copy(),
                        list(stats.instructions), list(stats.cycles)))
        rig.backend.close()          # the next rig's program then sits at the same bus address
    for fast, general in zip(*results):
        assert np.array_equal(fast, general)


def test_fast_path_keeps_a_12_qpu_kernel_and_its_timing():
    """The SGEMM benchmark kernel on 12 QPUs (uniform streams re-pointed every pass, new uniform
    cache lines in global cycle order, TMU loads, mutex-guarded DMA stores): the same result and
    the same modelled cycles, stalls and traffic with and without the fast path."""
    from hostside.driver import Driver
    from qpu_kernels.bench_sgemm import sgemm

    rng = np.random.default_rng(3)
    a = rng.standard_normal((32, 40)).astype(np.float32)
    b = rng.standard_normal((40, 64)).astype(np.float32)
    runs = []
    for fast_path in (True, False):
        with Driver(backend="emu", fast_path=fast_path) as drv:
            c = sgemm(drv, a, b, 12)
            st = drv.last_stats
            counters = {k: v for k, v in st.extra.items()
                        if k not in ("emulated_instructions_per_second", "host_cpu_seconds")}
            runs.append((c, st.instructions, st.cycles, st.stalls, st.modelled_seconds,
                         st.dma_store_bytes, st.tmu_bytes, counters))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:]


def test_fast_path_keeps_a_12_qpu_dma_kernel_and_its_timing():
    """The DMA benchmark kernel on 12 QPUs (VPM and DMA setup writes and DMA waits in the fast
    path, VPM accesses and DMA starts in the general loop, in global cycle order): the same sum
    and the same modelled cycles, stalls and traffic with and without the fast path."""
    from hostside.driver import Driver
    from qpu_kernels.bench_dma import CHUNK_FLOATS, vector_add, vector_add_kernel

    rows = predecode(words_from_bytes(assemble(vector_add_kernel)))
    assert np.count_nonzero(rows[:, C_FAST] & FAST_IO) >= 7      # 5 setups and 2 waits per pass
    rng = np.random.default_rng(4)
    a = rng.standard_normal(12 * 5 * CHUNK_FLOATS).astype(np.float32)
    b = rng.standard_normal(a.size).astype(np.float32)
    runs = []
    for fast_path in (True, False):
        with Driver(backend="emu", fast_path=fast_path) as drv:
            c = vector_add(drv, a, b, 12)
            st = drv.last_stats
            runs.append((c, st.instructions, st.cycles, st.stalls, st.dma_load_bytes,
                         st.dma_store_bytes))
    want = a.astype(np.float64) + b                             # fadd rounds toward zero:
    assert np.all(np.abs(runs[0][0] - want) <= np.spacing(np.abs(a + b)))   # within one ulp
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:]
    assert runs[0][3]["dma_load_wait"] > 0 and runs[0][3]["dma_store_wait"] > 0


@qpu
def setups_from_the_mul_pipe(asm):
    """Uniforms: output address, VPM write setup, DMA store setup (rows 0-1)."""
    mov(ra0, uniform)
    mov(ra1, uniform)
    mov(rb1, uniform)
    mov(r0, element_number)
    iadd(r1, r0, r0, set_flags=False).mov(vpmvcd_wr_setup, ra1)   # setup on the mul pipe
    mov(vpm, r1)
    iadd(r2, r1, 1, set_flags=False)
    mov(vpm, r2)
    mov(r3, r0).mov(vpmvcd_wr_setup, rb1)                          # the DMA store setup
    start_dma_store(ra0)
    wait_dma_store()
    exit()


def test_fast_path_writes_setups_from_either_pipe():
    """Setup registers written by the mul pipe beside an add-pipe register write: row 0 holds
    2e and row 1 2e + 1 for element e, both ways, in the same modelled time."""
    from qpu_kernels.bench_dma import setup_words

    _, _, _, vpm_write, store = setup_words(0)
    rows = predecode(words_from_bytes(assemble(setups_from_the_mul_pipe)))
    assert np.count_nonzero(rows[:, C_FAST] & FAST_IO) >= 3
    results = []
    for fast_path in (True, False):
        rig = Rig(strict=False, fast_path=fast_path)
        out = rig.buffer(2 * 16 * 4)
        stats = rig.run(rig.program(setups_from_the_mul_pipe), [[out, vpm_write, store]])
        results.append((words(out), stats.cycles, stats.stalls))
    e = np.arange(16, dtype=np.uint32)
    assert np.array_equal(results[0][0], np.concatenate([2 * e, 2 * e + 1]))
    assert np.array_equal(results[0][0], results[1][0]) and results[0][1:] == results[1][1:]


@qpu
def store_then_wait_with_a_new_uniform_line(asm):
    """Uniforms: output address, 15 fillers (the rest of the first 64-byte line), one more."""
    mov(ra0, uniform)
    for _ in range(15):
        mov(r1, uniform)
    setup_dma_store(nrows=1)
    start_dma_store(ra0)
    iadd(r0, uniform, vpm_st_wait, set_flags=False)   # waits for the store, enters a new line
    exit()


def test_a_wait_that_moves_a_qpu_past_the_others_is_counted_once():
    """On two QPUs, QPU 0's wait for its DMA store moves it past QPU 1 before the new uniform
    line its instruction also reads may be fetched (in global cycle order): the fast path hands
    the instruction back to the general loop, which must not count that stall again."""
    results = []
    for fast_path in (True, False):
        rig = Rig(strict=False, fast_path=fast_path)
        outs = [rig.buffer(64) for _ in range(2)]
        stats = rig.run(rig.program(store_then_wait_with_a_new_uniform_line),
                        [[out] + list(range(16)) for out in outs])
        results.append((stats.cycles, stats.stalls))
    assert results[0][1]["dma_store_wait"] > 0
    assert results[0] == results[1]
