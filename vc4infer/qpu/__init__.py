"""vc4infer's QPU toolchain: a py-videocore-compatible assembler DSL and a disassembler.

    from vc4infer.qpu import qpu, assemble

    @qpu
    def kernel(asm):
        mov(r0, uniform)
        iadd(r0, r0, 1)
        exit()

    code = assemble(kernel)            # bytes: little-endian 64-bit words

`assemble_program` gives a Program (words, source locations, labels, `disassemble(program)` lists it); `from
vc4infer.qpu import *` also provides the registers and instruction names for explicit use.
"""
from . import isa
from .asm import Assembler, Label
from .checking import KernelCheckError, QpuCheckWarning
from .disasm import disassemble, verify_roundtrip
from .formats import print_qbin, print_qhex, restore_asm, sanity_check, save_asm, save_bin
from .dsl import (DSL_FUNCTION_NAMES, FORWARDERS, L, assemble, assemble_program, assemble_text,
                  get_label_positions, namespace, qpu, qpucode)
from .program import Program
from .registers import REGISTERS, Register, ra, rb
from .source import AssembleError, SourceLocation

globals().update(REGISTERS)
globals().update(FORWARDERS)

__all__ = (["qpu", "qpucode", "assemble", "assemble_program", "assemble_text", "disassemble",
            "verify_roundtrip", "get_label_positions", "print_qbin", "print_qhex", "save_bin",
            "save_asm", "restore_asm", "sanity_check", "AssembleError", "KernelCheckError",
            "QpuCheckWarning", "Program",
            "SourceLocation", "Register", "REGISTERS", "Assembler", "Label", "isa", "ra", "rb", "L",
            "namespace"]
           + list(REGISTERS) + list(DSL_FUNCTION_NAMES))
