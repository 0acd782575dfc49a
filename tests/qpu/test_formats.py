"""py-videocore's file formats and assembler functions (print_qbin, print_qhex, save_bin,
save_asm / restore_asm, sanity_check) under the same names, with its output."""
# ruff: noqa: F821 - a @qpu function finds the DSL names in its globals while it runs
import io
import struct

from vc4infer.commands.disasm import read_code
from vc4infer.qpu import (assemble, assemble_program, print_qbin, print_qhex, qpu, restore_asm,
                          sanity_check, save_asm, save_bin)

NOP = 0x100009E7009E7000         # nop(): spec Appendix A's encoding


@qpu
def add_one(asm):
    mov(r0, uniform)
    iadd(r0, r0, 1)
    L.end
    exit()


@qpu
def early_vpm_read(asm):
    setup_vpm_read(nrows=1)
    mov(r0, vpm)                 # read one instruction after the setup: a hazard
    exit()


def test_print_qbin_prints_each_instruction_high_byte_first():
    out = io.StringIO()
    print_qbin(struct.pack("<Q", NOP), out)
    assert out.getvalue() == "00010000 00000000 00001001 11100111 00000000 10011110 01110000 00000000\n"


def test_print_qhex_prints_low_then_high_word_and_reads_back():
    out = io.StringIO()
    print_qhex(add_one, out)
    words = assemble_program(add_one).words
    assert out.getvalue().splitlines() == [f"0x{w & 0xFFFFFFFF:08X}, 0x{w >> 32:08X}," for w in words]
    assert read_code(out.getvalue().encode()) == words            # vc4infer disasm reads .qhex


def test_save_bin_and_save_asm_round_trip(tmp_path):
    save_bin(add_one, str(tmp_path / "k.bin"))
    assert (tmp_path / "k.bin").read_bytes() == assemble(add_one)
    save_asm(add_one, str(tmp_path / "k.asm"))
    code, labels = restore_asm(str(tmp_path / "k.asm"))
    assert code == assemble(add_one) and labels == {"end": 16}


def test_sanity_check_reports_hazards():
    assert sanity_check(add_one) == []
    findings = sanity_check(early_vpm_read)
    assert findings and any("VPM" in str(f) for f in findings)
