"""VCD DMA loads (memory -> VPM) and VDW DMA stores (VPM -> memory): horizontal and vertical,
partial blocks, MPITCH and the extended load pitch, the store stride, and 8/16-bit widths
(guide p.56-59, Tables 34-37).

The 32-bit programs follow py-videocore's hardware tests (tests/test_dma.py), including starting
several loads or stores back to back, which works on hardware. Note the asymmetry the guide
documents: the load pitch is start-to-start, the store stride end-to-start.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from vc4infer.qpu import qpu

RNG = np.random.default_rng(17)


def run(drv, kernel, src, dst, *args):
    drv.execute(n_threads=1, program=drv.program(kernel, *args), uniforms=[src.address, dst.address])
    return np.array(dst)


@qpu
def load_four_blocks_store_64_rows(asm, add_one_to_row0):
    mov(ra0, uniform)
    ldi(rb0, 4 * 16 * 16)
    for i in range(4):
        setup_dma_load(Y=16 * i, mode="32bit horizontal", nrows=16)
        start_dma_load(ra0)
        iadd(ra0, ra0, rb0)
    wait_dma_load()
    if add_one_to_row0:
        setup_vpm_read(nrows=1, Y=0)
        setup_vpm_write(Y=0)
        mov(r0, vpm)
        iadd(vpm, r0, 1)
    setup_dma_store(mode="32bit horizontal", nrows=64)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_horizontal_loads_back_to_back_and_a_64_row_store(drv):
    x = drv.copy(np.arange(64 * 16, dtype=np.uint32).reshape(64, 16))
    y = drv.alloc((64, 16), "uint32")
    assert np.array_equal(run(drv, load_four_blocks_store_64_rows, x, y, False), x)


def test_load_compute_store_into_another_and_the_same_buffer(drv):
    data = np.arange(64 * 16, dtype=np.uint32).reshape(64, 16)
    expected = data.copy()
    expected[0] += 1
    x = drv.copy(data)
    y = drv.alloc((64, 16), "uint32")
    assert np.array_equal(run(drv, load_four_blocks_store_64_rows, x, y, True), expected)
    run(drv, load_four_blocks_store_64_rows, x, x, True)        # in place
    assert np.array_equal(np.array(x), expected)


@qpu
def vertical_loads(asm):
    mov(ra0, uniform)
    ldi(rb0, 4 * 16 * 4)
    for x in range(16):
        # 4 memory rows of 16 words go down column x, VPITCH 0 (= 16) rows apart: rows 0, 16, 32, 48
        setup_dma_load(Y=0, X=x, mode="32bit vertical", nrows=4, vpitch=0)
        start_dma_load(ra0)
        iadd(ra0, ra0, rb0)
    wait_dma_load()
    setup_dma_store(mode="32bit horizontal", nrows=64)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_vertical_load_transposes(drv):
    x = drv.copy(np.arange(16 * 64, dtype=np.uint32).reshape(16, 64))
    y = drv.alloc((64, 16), "uint32")
    assert np.array_equal(run(drv, vertical_loads, x, y), np.array(x).T)


@qpu
def vertical_stores(asm):
    mov(ra0, uniform)
    ldi(rb0, 4 * 16 * 16)
    for i in range(4):
        setup_dma_load(Y=16 * i, mode="32bit horizontal", nrows=16)
        start_dma_load(ra0)
        iadd(ra0, ra0, rb0)
    wait_dma_load()
    mov(ra0, uniform)
    ldi(rb0, 4 * 16)
    for x in range(16):
        for y in range(0, 64, 16):
            setup_dma_store(Y=y, X=x, mode="32bit vertical", nrows=1, ncols=16)
            start_dma_store(ra0)
            iadd(ra0, ra0, rb0)
    wait_dma_store()
    exit()


def test_vertical_store_transposes(drv):
    x = drv.copy(np.arange(64 * 16, dtype=np.uint32).reshape(64, 16))
    y = drv.alloc((16, 64), "uint32")
    assert np.array_equal(run(drv, vertical_stores, x, y), np.array(x).T)


@qpu
def partial_block(asm):
    setup_vpm_write(Y=0)
    for _ in range(16):
        mov(vpm, 0)                      # clear VPM rows 0..15
    setup_dma_load(X=4, Y=4, mode="32bit horizontal", nrows=8, ncols=8, mpitch=2)   # 32-byte rows
    start_dma_load(uniform)
    wait_dma_load()
    setup_dma_store(mode="32bit horizontal", nrows=16)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_partial_block_with_mpitch(drv):
    x = drv.copy(np.arange(8 * 8, dtype=np.uint32).reshape(8, 8) + 1)
    y = drv.alloc((16, 16), "uint32")
    out = run(drv, partial_block, x, y)
    expected = np.zeros((16, 16), np.uint32)
    expected[4:12, 4:12] = np.array(x)
    assert np.array_equal(out, expected)


@qpu
def extended_pitch_load(asm, pitch_bytes):
    setup_dma_load_stride(pitch_bytes)
    setup_dma_load(mode="32bit horizontal", nrows=16, ncols=16, mpitch=0)
    start_dma_load(uniform)
    wait_dma_load()
    setup_dma_store(mode="32bit horizontal", nrows=16, ncols=16)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_extended_load_pitch(drv):
    x = drv.copy(np.arange(16 * 40, dtype=np.uint32).reshape(16, 40))     # 160-byte rows
    y = drv.alloc((16, 16), "uint32")
    assert np.array_equal(run(drv, extended_pitch_load, x, y, 160), np.array(x)[:, :16])


@pytest.mark.parametrize("strict", [False, True])
def test_load_pitch_past_the_guides_13_bits(strict):
    """MPITCHB is read as 16 bits (py-videocore's SGEMM loads C rows 12288 bytes apart on real
    Pis); strict mode reports a pitch the guide's 13-bit field could not hold."""
    from hostside.driver import Driver
    from vc4infer.emu.errors import UndefinedBehaviourError

    with Driver(backend="emu", strict=strict) as drv:
        x = drv.copy(np.arange(16 * 3072, dtype=np.uint32).reshape(16, 3072))   # 12288-byte rows
        y = drv.alloc((16, 16), "uint32")
        if strict:
            with pytest.raises(UndefinedBehaviourError, match="MPITCHB.* 12288 bytes"):
                run(drv, extended_pitch_load, x, y, 12288)
        else:
            assert np.array_equal(run(drv, extended_pitch_load, x, y, 12288), np.array(x)[:, :16])


@qpu
def strided_store(asm, gap_bytes):
    setup_dma_load(mode="32bit horizontal", nrows=16, ncols=16)
    start_dma_load(uniform)
    wait_dma_load()
    setup_dma_store_stride(gap_bytes)
    setup_dma_store(mode="32bit horizontal", nrows=16, ncols=16)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_store_stride_is_end_to_start(drv):
    x = drv.copy(RNG.integers(0, 2**32, (16, 16), dtype=np.uint64).astype(np.uint32))
    y = drv.alloc((16, 32), "uint32")
    y[:] = 0xDEADBEEF
    out = run(drv, strided_store, x, y, 64)      # 64-byte rows, 64-byte gaps: 128 bytes apart
    assert np.array_equal(out[:, :16], np.array(x))
    assert np.all(out[:, 16:] == 0xDEADBEEF)     # the gaps are not written


@qpu
def short_rows_load_and_store(asm):
    # 5 memory rows of 3 words each, 16 bytes apart (MPITCH 1), into VPM rows 2..6 from word 7
    setup_dma_load(Y=2, X=7, mode="32bit horizontal", nrows=5, ncols=3, mpitch=1)
    start_dma_load(uniform)
    wait_dma_load()
    setup_dma_store_stride(4 * 13)               # 3 words per row, then skip 13: a 16-word pitch
    setup_dma_store(Y=2, X=7, mode="32bit horizontal", nrows=5, ncols=3)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_store_writes_exactly_units_by_depth(drv):
    x = drv.copy(RNG.integers(0, 2**32, (5, 4), dtype=np.uint64).astype(np.uint32))
    y = drv.alloc((6, 16), "uint32")
    y[:] = 0x55555555
    out = run(drv, short_rows_load_and_store, x, y)
    expected = np.full((6, 16), 0x55555555, np.uint32)
    expected[:5, :3] = np.array(x)[:, :3]
    assert np.array_equal(out, expected)


# ------------------------------------------------------------------- 8- and 16-bit widths

@qpu
def narrow_load(asm, mode, ncols, X):
    setup_dma_load(Y=1, mode="32bit horizontal", nrows=1)     # background row from memory
    start_dma_load(uniform)
    wait_dma_load()
    setup_dma_load(Y=1, X=X, mode=mode, nrows=1, ncols=ncols)
    start_dma_load(uniform)
    wait_dma_load()
    setup_dma_store(Y=1, mode="32bit horizontal", nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def run_narrow_load(drv, mode, ncols, X):
    background = RNG.integers(0, 2**32, 16, dtype=np.uint64).astype(np.uint32)
    data = RNG.integers(0, 256, 64).astype(np.uint8)
    unif = [drv.copy(background).address, drv.copy(data).address, 0]
    out = drv.alloc(16, "uint32")
    unif[2] = out.address
    drv.execute(n_threads=1, program=drv.program(narrow_load, mode, ncols, X), uniforms=unif)
    return background, data, np.array(out)


def test_8bit_load_packs_bytes_into_consecutive_words(drv):
    background, data, out = run_narrow_load(drv, "8bit horizontal", 16, 2)
    expected = background.view(np.uint8).copy()
    expected[8:24] = data[:16]                 # 16 bytes from word 2 on
    assert np.array_equal(out.view(np.uint8), expected)


def test_16bit_load_packs_halfwords_into_consecutive_words(drv):
    background, data, out = run_narrow_load(drv, "16bit horizontal", 16, 4)
    expected = background.view(np.uint8).copy()
    expected[16:48] = data[:32]                # 16 halfwords from word 4 on
    assert np.array_equal(out.view(np.uint8), expected)


@qpu
def narrow_store(asm, mode, ncols, X):
    setup_dma_load(Y=3, mode="32bit horizontal", nrows=1)
    start_dma_load(uniform)
    wait_dma_load()
    setup_dma_store(Y=3, X=X, mode=mode, nrows=1, ncols=ncols)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_8bit_and_16bit_stores_take_packed_elements(drv):
    row = RNG.integers(0, 2**32, 16, dtype=np.uint64).astype(np.uint32)
    for mode, ncols, X, nbytes in (("8bit horizontal", 16, 1, 16), ("16bit horizontal", 16, 2, 32)):
        src = drv.copy(row)
        dst = drv.alloc(64, "uint8")
        dst[:] = 0xAA
        out = run(drv, narrow_store, src, dst, mode, ncols, X)
        expected = np.full(64, 0xAA, np.uint8)
        expected[:nbytes] = row.view(np.uint8)[4 * X:4 * X + nbytes]
        assert np.array_equal(out, expected), mode
