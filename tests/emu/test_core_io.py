"""The QPU's I/O paths: VPM generic access in 8/16/32-bit packed/laned/horizontal/vertical modes,
VCD loads (vertical, extended pitch) and VDW stores (stride), TMU lookups and the QPU 2/3 swap,
the SFU, uniforms_address, and semaphores with the mutex across 12 QPUs. Expected layouts and
values come from the spec tables (§9.2, §10, §11, §6.1, §12) and numpy."""
import numpy as np
import pytest

from emu_rig import Rig, run_body, words
from vc4infer.emu.errors import UndefinedBehaviourError
from vc4infer.qpu import qpu

U32 = np.uint32


@qpu
def narrow_write(asm, mode, kwargs):
    mov(r0, vpm)
    setup_vpm_write(mode=mode, **kwargs)
    mov(vpm, r0)


def expected_row(x, place):
    row = np.zeros(64, dtype=np.uint8)
    for i in range(16):
        word, sub, width = place(i)
        value = int(x[i]) & ((1 << (8 * width)) - 1)
        row[word * 4 + sub * width: word * 4 + sub * width + width] = \
            np.frombuffer(value.to_bytes(width, "little"), np.uint8)
    return row


@pytest.mark.parametrize("mode, kwargs, place", [
    ("8bit packed horizontal", {"B": 1}, lambda i: (4 + i // 4, i % 4, 1)),
    ("8bit laned horizontal", {"B": 2}, lambda i: (i, 2, 1)),
    ("16bit packed horizontal", {"H": 1}, lambda i: (8 + i // 2, i % 2, 2)),
    ("16bit laned horizontal", {"H": 1}, lambda i: (i, 1, 2)),
])
def test_narrow_vpm_writes_land_where_the_guide_says(mode, kwargs, place):
    x = (np.arange(16, dtype=U32) * 0x01010101 + 0x00030201)
    out = run_body(narrow_write, x[None], 1, mode, kwargs)
    assert np.array_equal(out[0].view(np.uint8), expected_row(x, place))


def test_vertical_write_fills_a_column():
    x = np.arange(16, dtype=U32) + 500
    rig_out = run_body(vertical_then_read, x[None], 16)
    assert np.array_equal(rig_out[:, 3], x)
    assert np.all(np.delete(rig_out, 3, axis=1) == 0)


@qpu
def vertical_then_read(asm):
    mov(r0, vpm)
    setup_vpm_write(mode="32bit vertical", Y=16, X=3)
    mov(vpm, r0)
    setup_vpm_read(nrows=16, Y=16)
    setup_vpm_write()
    nop()
    for _ in range(16):
        mov(r1, vpm)
        mov(vpm, r1)


@qpu
def dma_patterns(asm):
    mov(ra0, uniform)                  # source
    mov(ra1, uniform)                  # destination
    # vertical load: 4 memory rows down column 2, VPITCH 16 -> VPM rows 0, 16, 32, 48
    setup_dma_load(nrows=4, mode="32bit vertical", Y=0, X=2, vpitch=16, mpitch=4)   # 128-byte rows
    start_dma_load(ra0)
    wait_dma_load()
    for y in (0, 16, 32, 48):
        setup_vpm_read(nrows=1, mode="32bit vertical", Y=y, X=2)
        setup_vpm_write(Y=y // 16)
        nop()
        mov(r0, vpm)
        mov(vpm, r0)
    # extended pitch: rows 0 and 1 of a 32-word-wide array (pitch 128 bytes)
    setup_dma_load_stride(128)
    setup_dma_load(nrows=2, Y=4, mpitch=0)
    start_dma_load(ra0)
    wait_dma_load()
    # store rows 0..5 with 64 bytes between rows (end to start)
    setup_dma_store_stride(64)
    setup_dma_store(nrows=6)
    start_dma_store(ra1)
    wait_dma_store()
    exit()


def test_vertical_load_extended_pitch_and_store_stride():
    rig = Rig()
    src = rig.buffer(np.arange(4 * 32, dtype=U32).reshape(4, 32), "src")
    dst = rig.buffer(6 * 128, "dst")
    rig.run(rig.program(dma_patterns), [[src, dst]])
    m = np.arange(4 * 32, dtype=U32).reshape(4, 32)
    out = words(dst).reshape(6, 32)
    for r in range(4):
        assert np.array_equal(out[r, :16], m[r, :16])       # row r came back through column 2
    assert np.array_equal(out[4, :16], m[0, :16]) and np.array_equal(out[5, :16], m[1, :16])
    assert np.all(out[:, 16:] == 0)                         # the stride skipped these bytes


@qpu
def tmu_probe(asm, write_tmu, read_tmu, noswap):
    if noswap:
        mov(tmu_noswap, 1)
        nop()
        nop()
    mov(ra0, uniform)
    mov(ra1, uniform)
    imul24(r0, element_number, 4)
    iadd(r0, r0, ra0)
    mov([tmu0_s, tmu1_s][write_tmu], r0)
    nop(sig=f"load tmu{read_tmu}")
    mov(r1, r4)
    mutex_acquire()
    setup_vpm_write()
    mov(vpm, r1)
    setup_dma_store(nrows=1)
    start_dma_store(ra1)
    wait_dma_store()
    mutex_release()
    exit()


def test_tmu_swap_on_qpus_2_and_3_unless_noswap():
    """Swapping is invisible to the data (requests and ldtmu swap alike) but decides which TMU,
    and so which L1 cache, serves a QPU: QPU 2 naming TMU0 uses its slice's TMU1."""
    misses = []
    for third in ("swapped", "pinned"):
        rig = Rig()
        data = rig.buffer(np.arange(16, dtype=U32) * 3 + 1, "data")     # one 64-byte line
        plain = rig.program(tmu_probe, 0, 0, False)
        pinned = rig.program(tmu_probe, 0, 0, True)
        outs = [rig.buffer(64, f"out{q}") for q in range(3)]
        control = []
        for q, prog in enumerate([plain, plain, plain if third == "swapped" else pinned]):
            u = rig.buffer(np.array([data.bus_address, outs[q].bus_address], dtype=U32), f"u{q}")
            control.append((u.bus_address, prog.bus_address))
        stats = rig.backend.execute(control, 30.0)
        for q in range(3):
            assert np.array_equal(words(outs[q]), np.arange(16) * 3 + 1), q
        misses.append((stats.extra["tmu_l1_misses"], stats.extra["tmu_l2_misses"]))
    assert misses == [(2, 1), (1, 1)]     # QPU 1 hits QPU 0's line; QPU 2 misses unless pinned


@qpu
def sfu_all(asm):
    mov(r0, vpm)
    for reg in (sfu_recip, sfu_recipsqrt, sfu_exp2, sfu_log2):
        mov(reg, r0)
        nop()
        nop()
        mov(vpm, r4)


def test_sfu_values_precision_and_special_values():
    x = np.array([0.1, 0.5, 1.0, 1.5, 2.0, 3.75, 7.0, 0.3, 0.0, -4.0, -8.0, 100.0, 0.01, 2.5, 9.0, 0.7],
                 dtype=np.float32)
    out = run_body(sfu_all, x.view(U32)[None], 4, dtype=np.float32)
    with np.errstate(divide="ignore"):
        expect = [1 / x.astype(np.float64), 1 / np.sqrt(np.abs(x.astype(np.float64))),
                  2.0 ** x.astype(np.float64), np.log2(np.abs(x.astype(np.float64)))]
    for got, want in zip(out, expect):
        finite = np.isfinite(want) & (want != 0)
        assert np.allclose(got[finite], want[finite], rtol=2.0 ** -14, atol=0)
    assert out[0][8] == np.inf and out[1][8] == np.inf and out[3][8] == -np.inf
    assert out[1][9] == 0.5 and out[3][10] == 3.0          # abs() of negative inputs


@qpu
def uniforms_then_store(asm, gap):
    mov(r0, uniform)                   # address of a second uniform stream
    mov(ra1, uniform)                  # output address
    mov(uniforms_address, r0)
    for _ in range(gap):
        nop()
    mov(r1, uniform)                   # the first word of the new stream (gap >= 2)
    setup_vpm_write()
    mov(vpm, r1)
    setup_dma_store(nrows=1)
    start_dma_store(ra1)
    wait_dma_store()
    exit()


def test_uniforms_address_switches_the_stream_three_instructions_later():
    rig = Rig()
    stream = rig.buffer(np.array([4242, 7], dtype=U32), "second stream")
    out = rig.buffer(64, "out")
    rig.run(rig.program(uniforms_then_store, 2), [[stream, out]])
    assert np.all(words(out) == 4242)
    with pytest.raises(UndefinedBehaviourError, match="uniform 1 instructions too early"):
        rig.run(rig.program(uniforms_then_store, 1), [[stream, out]])


@qpu
def counter_worker(asm, master, n):
    mov(ra0, uniform)                  # counter row address
    mutex_acquire()
    setup_dma_load(nrows=1)
    start_dma_load(ra0)
    wait_dma_load()
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    nop()
    mov(r0, vpm)
    iadd(vpm, r0, 1)
    setup_dma_store(nrows=1)
    start_dma_store(ra0)
    wait_dma_store()
    mutex_release()
    sema_up(0)
    if master:
        for _ in range(n):
            sema_down(0)
    exit(interrupt=master)


def test_mutex_and_semaphore_join_across_twelve_qpus():
    rig = Rig()
    counter = rig.buffer(64, "counter")
    master = rig.program(counter_worker, True, 12, label="master")
    worker = rig.program(counter_worker, False, 12, label="worker")
    control = []
    for q in range(12):
        u = rig.buffer(np.array([counter.bus_address], dtype=U32), f"u{q}")
        control.append((u.bus_address, (master if q == 0 else worker).bus_address))
    stats = rig.backend.execute(control, 60.0)
    assert np.all(words(counter) == 12)
    assert stats.extra["host_interrupts"] == (1,) + (0,) * 11
    assert stats.stalls["mutex"] > 0
