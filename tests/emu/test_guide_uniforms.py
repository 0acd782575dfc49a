"""The uniform stream: reads pop consecutive 32-bit words replicated to all 16 elements, each
program instance gets its own row, and writing uniforms_address restarts the stream elsewhere
(guide p.22: the new stream is read from the third instruction after the write), which is how
py-videocore's sgemm streams matrix data through the uniforms cache.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np

from vc4infer.qpu import qpu

RNG = np.random.default_rng(29)


@qpu
def read_uniforms(asm, count):
    mov(r2, uniform)                   # the output address comes first
    setup_vpm_write()
    for _ in range(count):
        mov(r0, uniform)
        mov(vpm, r0)
    setup_dma_store(nrows=count)
    start_dma_store(r2)
    wait_dma_store()
    exit()


def test_uniforms_arrive_in_order_replicated_to_all_elements(drv):
    values = RNG.integers(0, 2**32, 8, dtype=np.uint64).astype(np.uint32)
    out = drv.alloc((8, 16), "uint32")
    drv.execute(n_threads=1, program=drv.program(read_uniforms, 8), uniforms=[out.address] + list(values))
    assert np.array_equal(np.array(out), np.repeat(values[:, None], 16, axis=1))


@qpu
def thread_rows(asm):
    mov(ra0, uniform)                  # output row of this instance
    mov(r1, uniform)                   # a value
    iadd(r1, r1, uniform)              # plus the next
    mutex_acquire()
    setup_vpm_write()
    mov(vpm, r1)
    setup_dma_store(nrows=1)
    start_dma_store(ra0)
    wait_dma_store()
    mutex_release()
    exit()


def test_each_instance_reads_its_own_row(drv):
    n = 12
    out = drv.alloc((n, 16), "uint32")
    uniforms = drv.alloc((n, 3), "uint32")          # uniforms may live in a Driver array
    uniforms[:, 0] = out.addresses()[:, 0]
    uniforms[:, 1] = np.arange(n) * 100
    uniforms[:, 2] = np.arange(n) + 7
    drv.execute(n_threads=n, program=drv.program(thread_rows), uniforms=uniforms)
    expected = np.repeat((np.arange(n) * 101 + 7)[:, None], 16, axis=1).astype(np.uint32)
    assert np.array_equal(np.array(out), expected)


@qpu
def redirect_uniforms(asm, table_address, count):
    mov(ra0, uniform)                  # output address, from the launch's uniforms
    ldi(r0, table_address)
    mov(uniforms_address, r0)          # at N
    nop()                              # N + 1
    nop()                              # N + 2
    setup_vpm_write()
    for _ in range(count):             # from N + 3 on: the table
        fmul(vpm, uniform, 2.0)
    setup_dma_store(nrows=count)
    start_dma_store(ra0)
    wait_dma_store()
    exit()


def test_uniforms_address_write_restarts_the_stream(drv):
    table = drv.copy(RNG.standard_normal(6).astype(np.float32))
    out = drv.alloc((6, 16), "float32")
    drv.execute(n_threads=1, program=drv.program(redirect_uniforms, table.address, 6), uniforms=[out.address])
    assert np.array_equal(np.array(out), np.repeat(np.array(table)[:, None] * 2, 16, axis=1))


@qpu
def uniforms_as_matrix_operand(asm, a_address, b_address, columns):
    """c[j] = a * b[j] for a vector a and scalars b[j] streamed as uniforms (sgemm's inner step)."""
    mov(ra0, uniform)                  # output address
    ldi(r0, a_address)
    setup_dma_load(nrows=1)
    start_dma_load(r0)
    wait_dma_load()
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    mov(r1, vpm)
    ldi(r0, b_address)
    mov(uniforms_address, r0)
    nop()
    nop()
    for _ in range(columns):
        fmul(vpm, r1, uniform)
    setup_dma_store(nrows=columns)
    start_dma_store(ra0)
    wait_dma_store()
    exit()


def test_uniform_stream_as_a_data_operand(drv):
    a = drv.copy(RNG.standard_normal(16).astype(np.float32))
    b = drv.copy(RNG.standard_normal(5).astype(np.float32))
    out = drv.alloc((5, 16), "float32")
    drv.execute(n_threads=1, program=drv.program(uniforms_as_matrix_operand, a.address, b.address, 5),
                uniforms=[out.address])
    exact = np.array(b).astype(np.float64)[:, None] * np.array(a)
    assert np.all(np.abs(np.array(out) - exact) <= np.abs(exact) * 2.0 ** -23)


@qpu
def interrupt_with(asm, value):
    ldi(host_interrupt, value)
    exit(interrupt=False)


def test_host_interrupt_needs_a_non_zero_value(drv, emu_only):
    """vc4asm measured that writing 0 to host_interrupt does nothing; any other value raises it."""
    drv.execute(n_threads=1, program=drv.program(interrupt_with, 0))
    assert not drv.last_stats.extra["host_interrupts"][0]
    drv.execute(n_threads=1, program=drv.program(interrupt_with, 0x55))
    assert drv.last_stats.extra["host_interrupts"][0]


def test_uniform_reads_are_counted_per_instance(drv, emu_only):
    out = drv.alloc((5, 16), "uint32")
    drv.execute(n_threads=1, program=drv.program(read_uniforms, 5), uniforms=[out.address] + [1] * 5)
    assert drv.last_stats.extra["uniforms_read"][0] == 6
