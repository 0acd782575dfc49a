"""Everything the hardware cannot encode raises AssembleError naming the kernel's file and the
line of the offending call (marked `# ERR` below)."""
# ruff: noqa: F821, B018, E702 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels; `nop(); nop()` as in its kernels
import inspect

import pytest

from vc4infer.qpu import AssembleError, assemble, qpu


def _marked_line(kernel) -> int:
    lines, start = inspect.getsourcelines(inspect.unwrap(kernel))
    marked = [start + i for i, line in enumerate(lines) if line.rstrip().endswith("# ERR")]
    assert len(marked) == 1, kernel
    return marked[0]


CASES = []


def case(match):
    def register(kernel):
        CASES.append(pytest.param(kernel, match, id=kernel.__name__))
        return kernel
    return register


# ---- read ports -------------------------------------------------------------------------------
@case("two different regfile-A reads")
@qpu
def two_regfile_a_reads(asm):
    nop()
    iadd(r0, ra0, ra1)  # ERR


@case("two different regfile-B reads")
@qpu
def two_regfile_b_reads(asm):
    iadd(r0, rb0, rb1)  # ERR


@case("two different regfile-A reads")
@qpu
def two_a_reads_across_pipes(asm):
    iadd(r0, ra0, r1).fmul(r1, ra2, r2)  # ERR


@case("small immediate and a regfile-B read")
@qpu
def small_imm_with_regfile_b(asm):
    iadd(r0, rb0, 1)  # ERR


@case("two different small immediates")
@qpu
def two_small_immediates(asm):
    iadd(r0, 1, 2)  # ERR


@case("two different small immediates")
@qpu
def two_small_immediates_across_pipes(asm):
    mov(r0, 1.0).fmul(r1, r2, 2.0)  # ERR


@case("no read port left for uniform")
@qpu
def too_many_regfile_operands(asm):
    iadd(r0, uniform, varying_read).fmul(r1, element_number, qpu_number)  # ERR


@case("is not a small immediate")
@qpu
def unsupported_small_immediate(asm):
    iadd(r0, r1, 100)  # ERR


@case("is not a small immediate")
@qpu
def negative_zero_float(asm):
    fadd(r0, r1, -0.0)  # ERR


@case("neither a register nor a number")
@qpu
def string_operand(asm):
    iadd(r0, r1, "r2")  # ERR


# ---- destinations --------------------------------------------------------------------------------
@case("both pipes write regfile A")
@qpu
def both_pipes_write_a(asm):
    iadd(ra0, r0, r1).fmul(ra1, r2, r3)  # ERR


@case("both pipes write regfile B")
@qpu
def both_pipes_write_b(asm):
    iadd(rb0, r0, r1).fmul(vpm_st_addr, r2, r3)  # ERR


@case("both pipes write regfile A")
@qpu
def ldi_two_a_destinations(asm):
    ldi(ra1, vpmvcd_rd_setup, 3)  # ERR


@case("element_number is read-only")
@qpu
def write_read_only(asm):
    mov(element_number, r0)  # ERR


@case("uniform is read-only")
@qpu
def write_uniform(asm):
    ldi(uniform, 1)  # ERR


@case("r4 cannot be written")
@qpu
def write_r4(asm):
    fmul(r4, r0, r1)  # ERR


@case("r5 is written through")
@qpu
def write_r5(asm):
    mov(r5, r0)  # ERR


@case("tmu0_s is write-only")
@qpu
def read_write_only(asm):
    mov(r0, tmu0_s)  # ERR


@case("vpm_ld_addr is write-only")
@qpu
def read_vpm_ld_addr(asm):
    iadd(r0, r0, vpm_ld_addr)  # ERR


@case("sfu_recip is write-only")
@qpu
def read_sfu(asm):
    nop()
    fmul(r0, sfu_recip, r1)  # ERR


# ---- pack and unpack ------------------------------------------------------------------------------
@case("packing is only available for regfile-A write locations")
@qpu
def pack_regfile_b(asm):
    iadd(rb0.pack("16a"), r0, r1)  # ERR


@case("packing is only available for regfile-A write locations")
@qpu
def pack_accumulator(asm):
    mov(r1.pack("8a"), r0)  # ERR


@case("unknown pack mode")
@qpu
def pack_unknown(asm):
    mov(ra1.pack("16c"), r0)  # ERR


@case("unpacking is only available")
@qpu
def unpack_regfile_b(asm):
    mov(r0, rb0.unpack("16a"))  # ERR


@case("both destinations packed")
@qpu
def two_packs(asm):
    iadd(ra0.pack("16a"), r0, r1).fmul(ra1.pack("16a"), r2, r3)  # ERR


@case("a regfile-A pack and a mul pack")
@qpu
def regfile_pack_and_mul_pack(asm):
    iadd(ra0.pack("16a"), r0, r1).fmul(rb0, r2, r3, pack="rep 8")  # ERR


@case("conflicting unpacks")
@qpu
def two_unpacks(asm):
    iadd(r0, ra0.unpack("16a"), r4.unpack("16a"))  # ERR


@case("an r4 unpack with a regfile-A pack")
@qpu
def pm_conflict_r4_unpack_a_pack(asm):
    iadd(ra0.pack("16a"), r4.unpack("16a"), r0)  # ERR


@case("a regfile-A unpack with a mul pack")
@qpu
def pm_conflict_a_unpack_mul_pack(asm):
    fmul(r0, ra0.unpack("16a"), r0, pack="8a")  # ERR


@case("unknown mul pack")
@qpu
def mul_pack_reserved(asm):
    fmul(r0, r1, r2, pack="16a")  # ERR


@case("unpack applies to read operands")
@qpu
def unpack_destination(asm):
    mov(ra0.unpack("16a"), r1)  # ERR


@case("a branch cannot pack its link")
@qpu
def packed_link(asm):
    jmp(link=ra0.pack("16a"))  # ERR


# ---- signals, rotations -------------------------------------------------------------------------
@case("cannot be used with a small immediate")
@qpu
def signal_with_small_imm(asm):
    iadd(r0, r0, 1, sig="thread switch")  # ERR


@case("cannot be used with a small immediate")
@qpu
def mul_signal_with_small_imm(asm):
    fmul(r0, r0, 2.0, sig="load tmu0")  # ERR


@case("cannot be used with a small immediate or a rotation")
@qpu
def signal_with_rotation(asm):
    rotate(r0, r1, 2, sig="thread end")  # ERR


@case("two signals in one instruction")
@qpu
def two_signals(asm):
    iadd(r0, r0, r0, sig="thread switch").fmul(r0, r0, r0, sig="breakpoint")  # ERR


@case("unknown signal")
@qpu
def unknown_signal(asm):
    nop(sig="load tmu2")  # ERR


@case("is not an ALU signal")
@qpu
def branch_signal_on_alu(asm):
    nop(sig="branch")  # ERR


@case("turns the regfile-B read into a small immediate")
@qpu
def explicit_small_imm_signal(asm):
    iadd(r0, rb3, r1, sig="alu small imm")  # ERR


@case("ldi cannot carry signal")
@qpu
def ldi_with_signal(asm):
    ldi(r0, 1, sig="thread end")  # ERR


@case("a rotated mul op must take its inputs from r0-r4 or regfile A")
@qpu
def rotate_small_imm_input(asm):
    fmul(r0, r0, 2.0, rotate=1)  # ERR


@case("a rotated mul op must take its inputs from r0-r4 or regfile A")
@qpu
def rotate_r5_input(asm):
    rotate(r0, r5, 1)  # ERR


@case("a rotation and a regfile-B read")
@qpu
def rotate_with_regfile_b(asm):
    iadd(r1, rb2, r0).rotate(r0, r1, 2)  # ERR


@case("the only immediate operand possible is -14")
@qpu
def rotate_with_other_immediate(asm):
    iadd(r1, r1, 3).rotate(r0, r1, 2)  # ERR


@case("a multiple of 16 is no rotation")
@qpu
def rotate_by_sixteen(asm):
    rotate(r0, r1, 16)  # ERR


@case("rotate by a constant 1..15")
@qpu
def rotate_by_register(asm):
    rotate(r0, r1, r2)  # ERR


# ---- ops on the wrong pipe, arguments -------------------------------------------------------------
@case("fadd is an add-pipe op")
@qpu
def add_op_on_mul_pipe(asm):
    iadd(r0, r1, r2).fadd(r3, r1, r2)  # ERR


@case("fmul was issued on the mul pipe")
@qpu
def chain_after_mul_op(asm):
    fmul(r0, r1, r2).iadd(r3, r1, r2)  # ERR


@case("already has a mul-pipe op")
@qpu
def two_mul_ops(asm):
    issue = iadd(r0, r1, r2)
    issue.fmul(r3, r1, r2)
    issue.fmul(r3, r1, r2)  # ERR


@case("unknown condition")
@qpu
def unknown_condition(asm):
    iadd(r0, r1, r2, cond="zz")  # ERR


@case("unknown keyword argument 'rotate'")
@qpu
def add_op_with_mul_keyword(asm):
    iadd(r0, r1, r2, rotate=2)  # ERR


@case("fadd takes \\(dst, a, b\\)")
@qpu
def wrong_operand_count(asm):
    fadd(r0, r1)  # ERR


@case("set_flags on the mul op of a dual-issue")
@qpu
def set_flags_on_mul_half(asm):
    iadd(r0, r1, r2).fmul(r3, r1, r2, set_flags=True)  # ERR


# ---- immediates, branches, labels, semaphores ---------------------------------------------------
@case("ldi value 4294967296 does not fit in 32 bits")
@qpu
def ldi_too_large(asm):
    ldi(r0, 1 << 32)  # ERR


@case("unsupported ldi value")
@qpu
def ldi_string(asm):
    ldi(r0, "Hello")  # ERR


@case("17 per-element values")
@qpu
def ldi_too_many_elements(asm):
    ldi(r0, [1] * 17)  # ERR


@case("not a 2-bit unsigned")
@qpu
def ldi_element_unsigned_range(asm):
    ldi(r0, [1, 1, 1, 1, 1, 4])  # ERR


@case("not a 2-bit signed")
@qpu
def ldi_element_signed_range(asm):
    ldi(r0, [1, -1, 1, 2])  # ERR


@case("not a 2-bit signed")
@qpu
def ldi_element_signed_low(asm):
    ldi(r0, [1, -3])  # ERR


@case("out of float32 range")
@qpu
def ldi_float_overflow(asm):
    ldi(r0, 1e39)  # ERR


@case("semaphore number 16 is out of range 0..15")
@qpu
def semaphore_too_large(asm):
    sema_up(16)  # ERR


@case("semaphore number -1 is out of range")
@qpu
def semaphore_negative(asm):
    sema_down(-1)  # ERR


@case("does not fit in 32 bits")
@qpu
def branch_offset_too_large(asm):
    jmp(1 << 40)  # ERR


@case("is not a multiple of 8 bytes")
@qpu
def branch_offset_unaligned(asm):
    jzs(12)  # ERR


@case("invalid branch target")
@qpu
def branch_to_string(asm):
    jmp("hello")  # ERR


@case("branch register rb0 must be one of ra0-ra31")
@qpu
def branch_register_b(asm):
    jmp(reg=rb0)  # ERR


@case("branch register uniform must be one of ra0-ra31")
@qpu
def branch_register_io(asm):
    jmp(reg=uniform)  # ERR


@case("a label target needs a relative branch")
@qpu
def absolute_label(asm):
    L.here
    jmp(L.here, absolute=True)  # ERR


@case("undefined label 'nowhere'")
@qpu
def undefined_label(asm):
    nop()
    jmp(L.nowhere)  # ERR
    nop()


@case("undefined label 'inner.loop'")
@qpu
def label_outside_namespace(asm):
    L.loop
    with namespace("inner"):
        jmp(L.loop)  # ERR


@case("duplicate label 'again'")
@qpu
def duplicate_label(asm):
    L.again
    nop()
    L.again  # ERR


@case("not a 32-bit unsigned value")
@qpu
def raw_too_large(asm):
    raw(1 << 32, 0)  # ERR


@case("not a whole number of instructions")
@qpu
def raw_program_partial(asm):
    raw_program(b"\x00" * 12)  # ERR


# ---- macros --------------------------------------------------------------------------------------
@case("nrows=17 is out of range 1..16")
@qpu
def vpm_read_too_many_rows(asm):
    setup_vpm_read(nrows=17)  # ERR


@case("a vertical VPM access starts at a row that is a multiple of 16")
@qpu
def vpm_vertical_unaligned(asm):
    setup_vpm_write(mode="32bit vertical", Y=5)  # ERR


@case("mode is '32bit horizontal|vertical'")
@qpu
def vpm_unknown_mode(asm):
    setup_vpm_read(nrows=1, mode="16bit horizontal")  # ERR


@case("Y=64 is out of range 0..63")
@qpu
def dma_load_row_outside_user_vpm(asm):
    setup_dma_load(nrows=1, Y=64)  # ERR


@case("offset=2 is out of range 0..1")
@qpu
def dma_store_bad_offset(asm):
    setup_dma_store(nrows=1, mode="16bit horizontal", offset=2)  # ERR


@case("DMA mode is")
@qpu
def dma_unknown_mode(asm):
    setup_dma_store(nrows=1, mode="64bit horizontal")  # ERR


@case("stride=65536 is out of range 0..65535")
@qpu
def dma_load_stride_too_large(asm):
    setup_dma_load_stride(65536)  # ERR


@case("setup_dma_store_stride uses r0 internally")
@qpu
def dma_store_stride_tmp_clash(asm):
    setup_dma_store_stride(r0)  # ERR


@pytest.mark.parametrize("kernel,match", CASES)
def test_error_names_source_line(kernel, match):
    with pytest.raises(AssembleError, match=match) as info:
        assemble(kernel)
    line = _marked_line(kernel)
    assert info.value.location.file == __file__
    assert info.value.location.line == line
    assert str(info.value).startswith(f"{__file__}:{line} ")


def test_every_case_is_collected():
    assert len(CASES) >= 70


def test_kernel_needs_asm_parameter():
    def not_a_kernel(x):
        pass
    with pytest.raises(AssembleError, match="needs a parameter named 'asm'"):
        qpu(not_a_kernel)
