"""How kernels are written: @qpu name injection (and its cleanup), explicit imports, asm.<name>
style, nested kernels, Program contents (source locations, labels), and check=True."""
# ruff: noqa: F821, B018, E702 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels; `nop(); nop()` as in its kernels
import inspect
import sys

import pytest

import vc4infer.qpu as vq
from vc4infer.qpu import (AssembleError, KernelCheckError, Program, QpuCheckWarning, assemble,
                          assemble_program, disassemble, qpu)

from asm_guide_words import alu, words_of

THIS_FILE = __file__
mov = "module-level value the kernel must not clobber"


def line_of(function, text: str) -> int:
    lines, start = inspect.getsourcelines(inspect.unwrap(function))
    return start + next(i for i, line in enumerate(lines) if text in line)


@qpu
def uses_module_names(asm):
    mov(r0, uniform)
    iadd(r0, r0, 1)


def test_injected_names_are_restored_afterwards():
    assert words_of(assemble(uses_module_names)) == [
        alu(cond_add=1, waddr_add=32, op_add=21, raddr_a=32, add_a=6, add_b=6),
        alu(sig=13, cond_add=1, sf=1, waddr_add=32, op_add=12, raddr_b=1, add_a=0, add_b=7)]
    module = sys.modules[__name__]
    assert module.mov == "module-level value the kernel must not clobber"
    assert not hasattr(module, "iadd") and not hasattr(module, "r0")


@qpu
def inner_kernel(asm, value):
    ldi(r1, value)


@qpu
def outer_kernel(asm, f):
    nop()
    f(asm, 7)          # py-videocore's boilerplate(asm, f, ...) pattern
    nop()


def test_nested_kernels():
    nop_word = alu(cond_add=1, waddr_add=32)
    assert words_of(assemble(outer_kernel, inner_kernel))[1] == 0xE002486700000007
    assert words_of(assemble(outer_kernel, inner_kernel))[::2] == [nop_word, nop_word]


def test_asm_attribute_style_without_decorator():
    def kernel(asm):
        asm.mov(asm.r0, asm.uniform)
        asm.fadd(asm.ra[1], asm.ra[2], asm.rb[3])
        asm.L.end
    program = assemble_program(kernel)
    assert program.words == [0x1002082715827D80, 0x1002206701083DC0]
    assert program.labels == {"end": 16}


def test_explicit_import_style():
    scope = {}
    exec("from vc4infer.qpu import *\n"
         "def helper():\n"
         "    L.top\n"
         "    mov(r0, uniform)\n"
         "    with namespace('n'):\n"
         "        L.inner\n"
         "    jmp(L.top)\n", scope)

    def kernel(asm):
        scope["helper"]()
    program = assemble_program(kernel)
    assert program.words[0] == 0x1002082715827D80
    assert program.labels == {"top": 0, "n.inner": 8}
    assert scope["r0"] is vq.r0 and scope["ra"][3] is vq.ra3
    with pytest.raises(AssembleError, match="outside a QPU kernel"):
        scope["helper"]()


def test_every_register_and_instruction_name_is_exported():
    for name in ["r0", "r5", "ra0", "ra31", "rb0", "rb31", "uniform", "vpm", "null", "element_number",
                 "qpu_number", "sfu_recip", "sfu_recipsqrt", "sfu_exp2", "sfu_log2", "tmu0_s", "tmu1_b",
                 "tmu_noswap", "broadcast", "r5_pix0", "uniforms_address", "mutex", "host_interrupt",
                 "vpmvcd_rd_setup", "vpmvcd_wr_setup", "vpm_ld_addr", "vpm_st_addr", "vpm_ld_wait",
                 "vpm_st_wait", "vpm_ld_busy", "vpm_st_busy",
                 "fadd", "fmul", "imul24", "v8muld", "mov", "ldi", "rotate", "nop", "jmp", "jzs", "jzc",
                 "jns", "jnc", "jcs", "jcc", "jzs_any", "jcc_any", "sema_up", "sema_down", "raw",
                 "setup_vpm_read", "setup_vpm_write", "setup_dma_load", "start_dma_load", "wait_dma_load",
                 "setup_dma_store", "start_dma_store", "wait_dma_store", "setup_dma_load_stride",
                 "setup_dma_store_stride", "mutex_acquire", "mutex_release", "interrupt", "exit", "L",
                 "namespace", "qpu", "assemble"]:
        assert name in vq.__all__ and hasattr(vq, name), name


@qpu
def located(asm):
    mov(r0, uniform)
    setup_vpm_write()
    exit()


def test_program_records_source_locations_and_code():
    program = assemble_program(located)
    assert isinstance(program, Program) and program.name == "located"
    assert program.code == b"".join(w.to_bytes(8, "little") for w in program.words)
    assert len(program) == 6
    assert [loc.line for loc in program.locations] == [
        line_of(located, "mov(r0"), line_of(located, "setup_vpm_write")] + [line_of(located, "exit()")] * 4
    assert {loc.file for loc in program.locations} == {THIS_FILE}
    assert {loc.function for loc in program.locations} == {"located"}
    assert "mov(r0, uniform)" in disassemble(program)


@qpu
def regfile_read_too_soon(asm):
    mov(ra0, uniform)
    mov(r1, ra0)
    exit()


def test_check_true_reports_checker_errors_with_source_line():
    with pytest.raises(KernelCheckError) as info:
        assemble(regfile_read_too_soon, check=True)
    line = line_of(regfile_read_too_soon, "mov(r1, ra0)")
    assert f"{THIS_FILE}:{line}" in str(info.value)
    assert info.value.findings and all(f.index >= 0 for f in info.value.findings)
    with pytest.raises(KernelCheckError):
        assemble(regfile_read_too_soon, sanity_check=True)     # py-videocore's spelling
    assemble(regfile_read_too_soon)                            # no checking unless asked


@qpu
def early_vpm_read(asm):
    setup_vpm_read(nrows=1)
    mov(r0, vpm)
    exit()


def test_check_true_turns_warnings_into_python_warnings():
    with pytest.warns(QpuCheckWarning, match=rf"{THIS_FILE}:{line_of(early_vpm_read, 'mov(r0, vpm)')}"):
        assemble(early_vpm_read, check=True)


def test_label_objects_are_reusable_references():
    @qpu
    def kernel(asm):
        L.a
        target = L.a               # a second reference to the same name is no redefinition
        jmp(target)
        nop(); nop(); nop()
    assert assemble_program(kernel).labels == {"a": 0}


def test_assemble_text_counts_lines_of_the_text():
    assert [loc.line for loc in vq.assemble_text("nop()\n\nmov(r0, r1)").locations] == [1, 3]
    with pytest.raises(AssembleError) as info:
        vq.assemble_text("nop()\nmov(r0, r1, rotate=3)")
    assert info.value.location.line == 2
    assert "mov() got an unknown keyword argument 'rotate'" in str(info.value)
