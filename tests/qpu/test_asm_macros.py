"""py-videocore's macros and kernels in its style (VPM/DMA setup in every mode, semaphores,
mutex, loops with labels, an sgemm inner loop), against words worked out from the guide's
setup-word tables (AG p.57-59 Tables 32-37) and instruction formats."""
# ruff: noqa: F821, B018, E702 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels; `nop(); nop()` as in its kernels
import pytest

from vc4infer.qpu import assemble, assemble_program, assemble_text, get_label_positions, qpu

from asm_guide_words import alu, branch, load, semaphore, words_of

RD_SETUP_A, WR_SETUP_B = 49, 49


def ldi_rd_setup(value):
    return load(value, waddr_add=RD_SETUP_A)            # A-space 49, ws = 0


def ldi_wr_setup(value):
    return load(value, ws=1, waddr_add=WR_SETUP_B)      # B-space 49, ws = 1


def vpm_read(num, stride, horizontal, laned, size, addr):
    """Table 33: NUM 23:20, STRIDE 17:12, HORIZ 11, LANED 10, SIZE 9:8, ADDR 7:0."""
    return (num & 15) << 20 | stride << 12 | horizontal << 11 | laned << 10 | size << 8 | addr


def vpm_write(stride, horizontal, laned, size, addr):
    """Table 32: as the read setup without NUM."""
    return stride << 12 | horizontal << 11 | laned << 10 | size << 8 | addr


VPM_READS = [
    # (call, num, stride, horiz, laned, size, addr) with addr per the guide's Figures 8-9 layouts
    ("setup_vpm_read(nrows=16)", 16, 1, 1, 0, 2, 0),
    ("setup_vpm_read(4, '32bit horizontal', 10, 3)", 4, 3, 1, 0, 2, 10),
    ("setup_vpm_read(nrows=2, mode='32bit vertical', Y=32, X=7)", 2, 1, 0, 0, 2, 2 << 4 | 7),
    ("setup_vpm_read(nrows=3, mode='16bit packed horizontal', Y=5, H=1)", 3, 1, 1, 0, 1, 5 << 1 | 1),
    ("setup_vpm_read(nrows=3, mode='16bit laned horizontal', Y=5)", 3, 1, 1, 1, 1, 5 << 1),
    ("setup_vpm_read(nrows=4, mode='16bit packed vertical', Y=16, X=3, H=1, stride=2)",
     4, 2, 0, 0, 1, 1 << 5 | 3 << 1 | 1),
    ("setup_vpm_read(nrows=1, mode='8bit laned horizontal', Y=5, B=2)", 1, 1, 1, 1, 0, 5 << 2 | 2),
    ("setup_vpm_read(nrows=1, mode='8bit packed vertical', Y=48, X=15, B=3)",
     1, 1, 0, 0, 0, 3 << 6 | 15 << 2 | 3),
]


@pytest.mark.parametrize("call,num,stride,horizontal,laned,size,addr", VPM_READS,
                         ids=[c[0] for c in VPM_READS])
def test_setup_vpm_read(call, num, stride, horizontal, laned, size, addr):
    assert assemble_text(call).words == [ldi_rd_setup(vpm_read(num, stride, horizontal, laned, size, addr))]


VPM_WRITES = [
    ("setup_vpm_write()", 1, 1, 0, 2, 0),
    ("setup_vpm_write(mode='32bit vertical', Y=16, X=2, stride=0)", 0, 0, 0, 2, 1 << 4 | 2),
    ("setup_vpm_write('16bit laned horizontal', 4, 10, H=1)", 4, 1, 1, 1, 10 << 1 | 1),
    ("setup_vpm_write(mode='8bit packed horizontal', Y=63, B=3)", 1, 1, 0, 0, 63 << 2 | 3),
]


@pytest.mark.parametrize("call,stride,horizontal,laned,size,addr", VPM_WRITES,
                         ids=[c[0] for c in VPM_WRITES])
def test_setup_vpm_write(call, stride, horizontal, laned, size, addr):
    assert assemble_text(call).words == [ldi_wr_setup(vpm_write(stride, horizontal, laned, size, addr))]


def vcd_load(modew, mpitch, rowlen, nrows, vpitch, vertical, y, x):
    """Table 34: ID 31 = 1, MODEW 30:28, MPITCH 27:24, ROWLEN 23:20, NROWS 19:16, VPITCH 15:12,
    VERT 11, ADDRXY 10:0 = {Y, X}."""
    return 1 << 31 | modew << 28 | mpitch << 24 | (rowlen & 15) << 20 | (nrows & 15) << 16 \
        | (vpitch & 15) << 12 | vertical << 11 | y << 4 | x


DMA_LOADS = [
    ("setup_dma_load(nrows=16)", (0, 3, 16, 16, 1, 0, 0, 0)),
    ("setup_dma_load(X=4, Y=4, mode='32bit horizontal', nrows=8, ncols=8, mpitch=2)",
     (0, 2, 8, 8, 1, 0, 4, 4)),
    ("setup_dma_load(Y=0, X=5, mode='32bit vertical', nrows=4, vpitch=0)", (0, 3, 16, 4, 0, 1, 0, 5)),
    ("setup_dma_load(mode='32bit horizontal', nrows=16, mpitch=0)", (0, 0, 16, 16, 1, 0, 0, 0)),
    ("setup_dma_load(nrows=2, ncols=4, mode='16bit horizontal', offset=1, vpitch=16)",
     (3, 3, 4, 2, 16, 0, 0, 0)),
    ("setup_dma_load(nrows=1, mode='16bit vertical', Y=32, X=1)", (2, 3, 16, 1, 1, 1, 32, 1)),
    ("setup_dma_load(nrows=1, mode='8bit horizontal', offset=2, Y=63)", (6, 3, 16, 1, 1, 0, 63, 0)),
    ("setup_dma_load(nrows=3, mode='8bit vertical', offset=3, X=15)", (7, 3, 16, 3, 1, 1, 0, 15)),
]


@pytest.mark.parametrize("call,fields", DMA_LOADS, ids=[c[0] for c in DMA_LOADS])
def test_setup_dma_load(call, fields):
    assert assemble_text(call).words == [ldi_rd_setup(vcd_load(*fields))]


def vdw_store(units, depth, horizontal, y, x, modew):
    """Table 36: ID 31:30 = 10, UNITS 29:23, DEPTH 22:16, LANED 15 = 0, HORIZ 14, VPMBASE 13:3 =
    {Y 13:7, X 6:3}, MODEW 2:0."""
    return 2 << 30 | (units & 127) << 23 | (depth & 127) << 16 | horizontal << 14 | y << 7 | x << 3 | modew


DMA_STORES = [
    ("setup_dma_store(nrows=1)", (1, 16, 1, 0, 0, 0)),
    ("setup_dma_store(Y=16, X=3, mode='32bit vertical', nrows=1, ncols=16)", (1, 16, 0, 16, 3, 0)),
    ("setup_dma_store(mode='32bit horizontal', nrows=64)", (64, 16, 1, 0, 0, 0)),
    ("setup_dma_store(nrows=128, ncols=128)", (128, 128, 1, 0, 0, 0)),
    ("setup_dma_store(nrows=5, ncols=7, mode='16bit horizontal', offset=1, Y=9)", (5, 7, 1, 9, 0, 3)),
    ("setup_dma_store(nrows=2, mode='8bit vertical', offset=2, X=8)", (2, 16, 0, 0, 8, 6)),
]


@pytest.mark.parametrize("call,fields", DMA_STORES, ids=[c[0] for c in DMA_STORES])
def test_setup_dma_store(call, fields):
    assert assemble_text(call).words == [ldi_wr_setup(vdw_store(*fields))]


def test_dma_strides_constant_and_register():
    # Table 35: ID 31:28 = 1001, MPITCHB 12:0; Table 37: ID 31:30 = 11, BLOCKMODE 16, STRIDE
    assert assemble_text("setup_dma_load_stride(4096)").words == [ldi_rd_setup(0x9 << 28 | 4096)]
    assert assemble_text("setup_dma_store_stride(100, blockmode=True)").words == \
        [ldi_wr_setup(3 << 30 | 1 << 16 | 100)]
    # a register stride: ldi the ID into tmp_reg, then `bor` (flags set, py-videocore's default)
    assert assemble_text("setup_dma_load_stride(r5, tmp_reg=r3)").words == [
        load(0x9 << 28, waddr_add=35),
        alu(cond_add=1, sf=1, waddr_add=49, op_add=21, add_a=3, add_b=5)]
    assert assemble_text("setup_dma_store_stride(ra2)").words == [
        load(3 << 30, waddr_add=32),
        alu(cond_add=1, sf=1, ws=1, waddr_add=49, op_add=21, raddr_a=2, add_a=0, add_b=6)]


def test_dma_start_and_wait():
    assert assemble_text("start_dma_load(ra1)").words == [
        alu(cond_add=1, waddr_add=50, op_add=21, raddr_a=1, add_a=6, add_b=6)]
    assert assemble_text("start_dma_store(r2)").words == [
        alu(cond_add=1, ws=1, waddr_add=50, op_add=21, add_a=2, add_b=2)]
    # with rot: a rotated mul-pipe move (the mul pipe writes A-space vpm_ld_addr: ws = 1)
    assert assemble_text("start_dma_load(r0, rot=3)").words == [
        alu(sig=13, cond_mul=1, ws=1, waddr_mul=50, op_mul=4, raddr_b=51)]
    assert assemble_text("start_dma_store(r0, rot=-1)").words == [
        alu(sig=13, cond_mul=1, waddr_mul=50, op_mul=4, raddr_b=63)]
    assert assemble_text("wait_dma_load()").words == [
        alu(cond_add=1, waddr_add=39, op_add=21, raddr_a=50, add_a=6, add_b=6)]
    assert assemble_text("wait_dma_store()").words == [
        alu(cond_add=1, waddr_add=39, op_add=21, raddr_b=50, add_a=7, add_b=7)]


def test_mutex_interrupt_exit():
    assert assemble_text("mutex_acquire()\nmutex_release()").words == [
        alu(cond_add=1, waddr_add=39, op_add=21, raddr_a=51, add_a=6, add_b=6),
        alu(cond_add=1, waddr_add=51, op_add=21, add_a=6, add_b=6, raddr_a=39)]
    host_int = alu(sig=13, cond_add=1, waddr_add=38, op_add=21, raddr_b=1, add_a=7, add_b=7)
    thread_end = alu(sig=3, cond_add=1, cond_mul=1, waddr_add=32, waddr_mul=32, op_mul=4, op_add=21)
    nop = alu(cond_add=1, waddr_add=32)
    assert assemble_text("interrupt()").words == [host_int]
    assert assemble_text("exit()").words == [host_int, thread_end, nop, nop]
    assert assemble_text("exit(interrupt=False)").words == [thread_end, nop, nop]


@qpu
def semaphore_join(asm, n_threads):
    """Thread 0 waits for the others (py-videocore's sgemm ending, reduced)."""
    sema_up(0)
    mov(null, uniform, set_flags=True)
    jzc(L.skip)
    nop(); nop(); nop()
    ldi(r0, n_threads)
    L.join
    sema_down(0)
    isub(r0, r0, 1, set_flags=True)
    jzc(L.join)
    nop(); nop(); nop()
    L.skip
    exit(interrupt=False)


def test_semaphore_loop_kernel():
    words = words_of(assemble(semaphore_join, 12))
    nop = alu(cond_add=1, waddr_add=32)
    assert words[:6] == [
        semaphore(0, False),
        alu(cond_add=1, sf=1, waddr_add=39, op_add=21, raddr_a=32, add_a=6, add_b=6),
        branch(1, 13 * 8 - (2 + 4) * 8),              # jzc L.skip: skip at instruction 13
        nop, nop, nop]
    assert words[6:9] == [load(12, waddr_add=32), semaphore(0, True),
                          alu(sig=13, cond_add=1, sf=1, waddr_add=32, op_add=13, raddr_b=1, add_a=0, add_b=7)]
    assert words[9] == branch(1, 7 * 8 - (9 + 4) * 8)  # jzc L.join: join at instruction 7
    assert len(words) == 16


def test_labels_namespaces_and_offsets():
    @qpu
    def kernel(asm):
        nop()
        with namespace("outer"):
            L.loop
            nop()
            with namespace("inner"):
                L.loop
                jmp(L.loop)
            jmp(L.loop)
        L["loop"]
        for _ in range(6):
            nop()
    program = assemble_program(kernel)
    assert program.labels == {"outer.loop": 8, "outer.inner.loop": 16, "loop": 32}
    assert [(label.name, offset) for label, offset in get_label_positions(kernel)] == [
        ("outer.loop", 8), ("outer.inner.loop", 16), ("loop", 32)]
    assert program.words[2] == branch(15, 16 - 48)
    assert program.words[3] == branch(15, 8 - 56)


# ---- a py-videocore sgemm k-loop (examples/sgemm.py), words worked out by hand ------------------
@qpu
def sgemm_k_loop(asm):
    mov(uniforms_address, r2)
    mov(tmu0_s, r1)
    iadd(r1, r1, 4)
    nop(sig='load tmu0')
    iadd(r2, r2, r3).mov(tmu0_s, r1)
    iadd(r1, r1, 4).fmul(r0, r4, uniform)
    fadd(ra0, ra0, r0).fmul(r0, r4, uniform)
    fadd(rb0, rb0, r0).fmul(r0, r4, uniform)
    L.k_loop
    for j in range(1, 31):
        fadd(ra[j], ra[j], r0).fmul(r0, r4, uniform)
        fadd(rb[j], rb[j], r0).fmul(r0, r4, uniform)
    fadd(ra31, ra31, r0).fmul(r0, r4, uniform)
    fadd(rb31, rb31, r0, sig='load tmu0').mov(uniforms_address, r2)
    iadd(r2, r2, r3).mov(tmu0_s, r1)
    jzc(L.k_loop)
    iadd(r1, r1, 4).fmul(r0, r4, uniform)      # delay slot
    fadd(ra0, ra0, r0).fmul(r0, r4, uniform)   # delay slot
    fadd(rb0, rb0, r0).fmul(r0, r4, uniform)   # delay slot


def _fadd_fmul_a(j):
    # add reads ra_j (raddr_a), mul reads uniform, which moves to raddr_b; ws = 0
    return alu(cond_add=1, cond_mul=1, sf=1, waddr_add=j, waddr_mul=32, op_mul=1, op_add=1, raddr_a=j,
               raddr_b=32, add_a=6, add_b=0, mul_a=4, mul_b=7)


def _fadd_fmul_b(j):
    # add reads rb_j (raddr_b), uniform takes raddr_a; the add writes B, so ws = 1
    return alu(cond_add=1, cond_mul=1, sf=1, ws=1, waddr_add=j, waddr_mul=32, op_mul=1, op_add=1, raddr_a=32,
               raddr_b=j, add_a=7, add_b=0, mul_a=4, mul_b=6)


def test_sgemm_k_loop_words():
    words = words_of(assemble(sgemm_k_loop))
    iadd_fmul = alu(sig=13, cond_add=1, cond_mul=1, sf=1, waddr_add=33, waddr_mul=32, op_mul=1, op_add=12,
                    raddr_a=32, raddr_b=4, add_a=1, add_b=7, mul_a=4, mul_b=6)
    iadd_mov_tmu = alu(cond_add=1, cond_mul=1, sf=1, waddr_add=34, waddr_mul=56, op_mul=4, op_add=12,
                       add_a=2, add_b=3, mul_a=1, mul_b=1)
    head = [
        alu(cond_add=1, waddr_add=40, op_add=21, add_a=2, add_b=2),
        alu(cond_add=1, waddr_add=56, op_add=21, add_a=1, add_b=1),
        alu(sig=13, cond_add=1, sf=1, waddr_add=33, op_add=12, raddr_b=4, add_a=1, add_b=7),
        alu(sig=10, cond_add=1, waddr_add=32),
        iadd_mov_tmu, iadd_fmul, _fadd_fmul_a(0), _fadd_fmul_b(0)]
    assert words[:8] == head
    body = [w for j in range(1, 32) for w in (_fadd_fmul_a(j), _fadd_fmul_b(j))]
    body[-1] = alu(sig=10, cond_add=1, cond_mul=1, sf=1, ws=1, waddr_add=31, waddr_mul=40, op_mul=4, op_add=1,
                   raddr_b=31, add_a=7, add_b=0, mul_a=2, mul_b=2)
    assert words[8:70] == body
    assert words[70] == iadd_mov_tmu
    assert words[71] == branch(1, 8 * 8 - (71 + 4) * 8)      # jzc back to k_loop (instruction 8)
    assert words[72:] == [iadd_fmul, _fadd_fmul_a(0), _fadd_fmul_b(0)]
