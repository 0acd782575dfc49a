"""Synchronisation across QPUs: the 16 counting semaphores used as a lock and as a barrier, the
mutex, and 12 program instances sharing the VPM (guide p.22-24, p.33-34; spec digest section 12).

The lock pattern is the one py-videocore ran on hardware (tests/test_semaphore.py, 10 instances):
thread 0 prepares, raises the lock once, everyone takes and gives it around a critical section, and
thread 0 joins the others by taking the completion semaphore once per thread. Every program leaves
its semaphores at 0, so a following launch starts from the same state on a Pi.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np
import pytest

from vc4infer.qpu import qpu

LOCK, DONE, ARRIVED, GO = 0, 1, 2, 3


@qpu
def count_under_semaphore(asm, n_threads, iterations):
    mov(ra0, uniform)                  # counter address
    mov(ra1, uniform)                  # result address
    mov(ra2, uniform, set_flags=True)  # thread index: Z set on thread 0
    jzc(L.skip_load)
    nop()
    nop()
    nop()
    setup_dma_load(nrows=1)            # thread 0: counter into VPM row 0, then open the lock
    start_dma_load(ra0)
    wait_dma_load()
    sema_up(LOCK)
    L.skip_load
    ldi(r1, iterations)
    L.loop
    sema_down(LOCK)
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    mov(r2, vpm)
    iadd(vpm, r2, 1, set_flags=False)
    sema_up(LOCK)
    isub(r1, r1, 1, set_flags=True)
    jzc(L.loop)
    nop()
    nop()
    nop()
    sema_up(DONE)
    mov(null, ra2, set_flags=True)
    jzc(L.others)
    nop()
    nop()
    nop()
    for _ in range(n_threads):         # thread 0 joins everyone
        sema_down(DONE)
    sema_down(LOCK)                    # back to 0 for the next launch
    setup_dma_store(nrows=1)
    start_dma_store(ra1)
    wait_dma_store()
    exit()
    L.others
    exit(interrupt=False)


@pytest.mark.parametrize("n_threads", [1, 2, 12])
def test_semaphore_lock_and_join(drv, backend, n_threads):
    iterations = 20
    counter = drv.copy(np.arange(16, dtype=np.uint32) * 1000)
    result = drv.alloc(16, "uint32")
    uniforms = np.zeros((n_threads, 3), np.uint32)
    uniforms[:, 0] = counter.address
    uniforms[:, 1] = result.address
    uniforms[:, 2] = np.arange(n_threads)
    drv.execute(n_threads=n_threads, program=drv.program(count_under_semaphore, n_threads, iterations),
                uniforms=uniforms)
    assert np.array_equal(np.array(result), np.arange(16, dtype=np.uint32) * 1000 + n_threads * iterations)
    if backend == "emu":            # py-videocore's convention: only instance 0 raises the interrupt
        raised = [bool(h) for h in drv.last_stats.extra["host_interrupts"]]
        assert raised == [True] + [False] * (n_threads - 1)


@qpu
def count_in_memory_under_mutex(asm, iterations):
    mov(ra0, uniform)                  # counter address
    ldi(r1, iterations)
    L.loop
    mutex_acquire()
    setup_dma_load(nrows=1)
    start_dma_load(ra0)
    wait_dma_load()
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    mov(r2, vpm)
    iadd(vpm, r2, 1, set_flags=False)
    setup_dma_store(nrows=1)
    start_dma_store(ra0)
    wait_dma_store()                   # the next holder must see this store
    mutex_release()
    isub(r1, r1, 1, set_flags=True)
    jzc(L.loop)
    nop()
    nop()
    nop()
    exit()


def test_mutex_serialises_a_read_modify_write_of_memory(drv):
    iterations = 10
    counter = drv.copy(np.arange(16, dtype=np.uint32))
    drv.execute(n_threads=12, program=drv.program(count_in_memory_under_mutex, iterations),
                uniforms=[counter.address] * 12)
    assert np.array_equal(np.array(counter), np.arange(16, dtype=np.uint32) + 12 * iterations)


@qpu
def store_row_under_mutex(asm, value_reg, address_reg):
    mutex_acquire()
    setup_vpm_write()
    mov(vpm, value_reg)
    setup_dma_store(nrows=1)
    start_dma_store(address_reg)
    wait_dma_store()
    mutex_release()


@qpu
def barrier_then_read_neighbour(asm, n_threads):
    mov(ra0, uniform, set_flags=True)  # thread index
    mov(ra1, uniform)                  # my row of `first`
    mov(ra2, uniform)                  # my neighbour's row of `first`
    mov(ra3, uniform)                  # my row of `second`
    ldi(r1, 1000)
    imul24(r1, ra0, r1)
    iadd(rb0, r1, element_number)      # my value: 1000 * thread + element
    nop()
    store_row_under_mutex(asm, rb0, ra1)
    # barrier: everyone says "arrived"; thread 0 waits for all, then lets all go
    sema_up(ARRIVED)
    mov(null, ra0, set_flags=True)
    jzc(L.wait_go)
    nop()
    nop()
    nop()
    for _ in range(n_threads):
        sema_down(ARRIVED)
    for _ in range(n_threads):
        sema_up(GO)
    L.wait_go
    sema_down(GO)
    # after the barrier every row of `first` is in memory: copy the neighbour's
    mutex_acquire()
    setup_dma_load(nrows=1)
    start_dma_load(ra2)
    wait_dma_load()
    setup_dma_store(nrows=1)
    start_dma_store(ra3)
    wait_dma_store()
    mutex_release()
    exit()


def test_semaphore_barrier_across_twelve_qpus(drv):
    n = 12
    first = drv.alloc((n, 16), "uint32")
    second = drv.alloc((n, 16), "uint32")
    uniforms = np.zeros((n, 4), np.uint32)
    uniforms[:, 0] = np.arange(n)
    uniforms[:, 1] = first.addresses()[:, 0]
    uniforms[:, 2] = first.addresses()[(np.arange(n) + 1) % n, 0]
    uniforms[:, 3] = second.addresses()[:, 0]
    drv.execute(n_threads=n, program=drv.program(barrier_then_read_neighbour, n), uniforms=uniforms)
    values = 1000 * np.arange(n, dtype=np.uint32)[:, None] + np.arange(16, dtype=np.uint32)
    assert np.array_equal(np.array(first), values)
    assert np.array_equal(np.array(second), values[(np.arange(n) + 1) % n])


@qpu
def semaphore_counts_to_fifteen(asm):
    for _ in range(15):
        sema_up(7)                     # 0 -> 15 without stalling
    for _ in range(15):
        sema_down(7)                   # and back to 0
    setup_vpm_write()
    mov(vpm, 1)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_semaphore_holds_up_to_fifteen(drv):
    out = drv.alloc(16, "uint32")
    drv.execute(n_threads=1, program=drv.program(semaphore_counts_to_fifteen), uniforms=[out.address])
    assert np.all(np.array(out) == 1)
