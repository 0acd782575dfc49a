"""TMU general-memory (direct) lookups: per-element addresses written to tmu0_s / tmu1_s, results
popped into r4 by the `load tmu0/1` signals, in order (guide p.39-41; spec digest section 11).

Checked: gathers with arbitrary per-element addresses, the bottom two address bits being ignored,
four requests in flight per TMU (the depth the vc4asm author found reliable), independent TMU0 and
TMU1 queues, an ALU read of r4 in the instruction carrying the load signal seeing the previous r4
(as py-videocore's sgemm relies on), and 12 QPUs looking up at once with and without tmu_noswap
(QPUs 2 and 3 of each slice have TMU0 and TMU1 swapped unless they write tmu_noswap; a program
that pairs tmu0_s with `load tmu0` gets its own data either way).
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from guide_support import run_io
from vc4infer.qpu import qpu

RNG = np.random.default_rng(23)


def random_words(shape):
    return RNG.integers(0, 2**32, shape, dtype=np.uint64).astype(np.uint32)


@qpu
def gather(asm, base, offsets_row_count):
    """Each input row holds 16 byte offsets; the body looks each vector of offsets up."""
    ldi(r3, base)
    for _ in range(offsets_row_count):
        mov(r0, vpm)
        iadd(r0, r0, r3)
        mov(tmu0_s, r0)
        nop(sig="load tmu0")
        mov(vpm, r4)


def test_gather_with_per_element_addresses(drv):
    data = drv.copy(random_words(256))
    index = np.stack([RNG.permutation(256)[:16], RNG.integers(0, 256, 16),
                      np.arange(16)[::-1]]).astype(np.uint32)
    y = run_io(drv, gather, 4 * index, 3, data.address, 3)
    assert np.array_equal(y, np.array(data)[index])


def test_bottom_two_address_bits_are_ignored(drv):
    data = drv.copy(random_words(16))
    offsets = (4 * np.arange(16) + np.arange(16) % 4).astype(np.uint32)
    y = run_io(drv, gather, offsets, 1, data.address, 1)
    assert np.array_equal(y[0], np.array(data))


@qpu
def four_in_flight(asm, base):
    ldi(r0, base)
    shl(r1, element_number, 2)
    iadd(r0, r0, r1)
    ldi(r2, 64)
    for _ in range(4):
        mov(tmu0_s, r0)
        iadd(r0, r0, r2)
    for _ in range(4):
        nop(sig="load tmu0")
        mov(vpm, r4)


def test_four_requests_in_flight_return_in_order(drv):
    data = drv.copy(random_words((4, 16)))
    y = run_io(drv, four_in_flight, None, 4, data.address)
    assert np.array_equal(y, np.array(data))


@qpu
def two_tmus(asm, base_a, base_b):
    shl(r1, element_number, 2)
    ldi(r0, base_a)
    iadd(r0, r0, r1)
    ldi(r2, base_b)
    iadd(r2, r2, r1)
    mov(tmu0_s, r0)
    mov(tmu1_s, r2)
    nop(sig="load tmu1")            # TMU1's queue first: the queues are independent
    mov(vpm, r4)
    nop(sig="load tmu0")
    mov(vpm, r4)


def test_tmu0_and_tmu1_have_their_own_queues(drv):
    a = drv.copy(random_words(16))
    b = drv.copy(random_words(16))
    y = run_io(drv, two_tmus, None, 2, a.address, b.address)
    assert np.array_equal(y[0], np.array(b))
    assert np.array_equal(y[1], np.array(a))


@qpu
def r4_read_with_load_signal(asm, base):
    ldi(r0, base)
    shl(r1, element_number, 2)
    iadd(r0, r0, r1)
    ldi(r2, 64)
    mov(tmu0_s, r0)
    iadd(r0, r0, r2)
    mov(tmu0_s, r0)
    nop(sig="load tmu0")            # r4 = row 0
    mov(r1, r4, sig="load tmu0")    # r1 = row 0 (r4 before this load), then r4 = row 1
    mov(vpm, r1)
    mov(vpm, r4)


def test_alu_read_of_r4_with_load_signal_sees_the_previous_value(drv):
    data = drv.copy(random_words((2, 16)))
    y = run_io(drv, r4_read_with_load_signal, None, 2, data.address)
    assert np.array_equal(y, np.array(data))


@qpu
def gather_on_every_qpu(asm, noswap, unit):
    if noswap:
        mov(tmu_noswap, 1)          # at least 3 instructions before the first TMU write
    mov(ra0, uniform)               # this thread's data row
    mov(ra1, uniform)               # this thread's output row
    shl(r1, element_number, 2)
    ldi(r2, 60)
    isub(r1, r2, r1)                # reversed order: element e reads word 15 - e
    iadd(r0, ra0, r1)
    if unit == 0:
        mov(tmu0_s, r0)
        nop(sig="load tmu0")
    else:
        mov(tmu1_s, r0)
        nop(sig="load tmu1")
    mov(r2, r4)
    mutex_acquire()                 # the VPM rows are shared by all QPUs
    setup_vpm_write()
    mov(vpm, r2)
    setup_dma_store(nrows=1)
    start_dma_store(ra1)
    wait_dma_store()
    mutex_release()
    exit()


@pytest.mark.parametrize("noswap, unit", [(False, 0), (True, 0), (True, 1), (False, 1)])
def test_twelve_qpus_look_up_with_and_without_noswap(drv, noswap, unit):
    data = drv.copy(random_words((12, 16)))
    out = drv.alloc((12, 16), "uint32")
    uniforms = np.stack([data.addresses()[:, 0], out.addresses()[:, 0]], axis=1).astype(np.uint32)
    drv.execute(n_threads=12, program=drv.program(gather_on_every_qpu, noswap, unit), uniforms=uniforms)
    assert np.array_equal(np.array(out), np.array(data)[:, ::-1])
