"""The hazard rules the static checker (`vc4infer.qpu.check`) enforces, one entry per rule.

Ids H1-H26 are those of the project's hardware digest (spec section 8.1, "Rules an assembler must
enforce"); H27-H31 are rules the digest states elsewhere (TMU FIFO, program end, fragment-only
signals, delay slots) and that this checker adds. Each rule carries its wording, restated from the
Broadcom "VideoCore IV 3D Architecture Reference Guide" [AG p.N] or from the hardware
observations the digest collects, and its default severity.

Not checked, because they concern only fragment shaders or threaded programs (H12 TLB Z write
in the last instruction, H13 scoreboard wait in the first two, H14 MS_FLAGS after a TLB Z write,
H16 thread-switch spacing) or cannot occur in an encoded word (H17 operand conflicts, which the
assembler rejects): user programs touching the tile buffer at all are reported by H30.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str   # default severity; a few rules report some cases as the other one
    title: str      # a few words, for listings
    wording: str    # the restriction itself, as the sources state it in substance
    source: str     # where it is stated


_RULES = (
    Rule("H1", ERROR, "regfile read right after write",
         "a physical regfile A/B location written by one instruction cannot be read by the next "
         "one (the result reaches the register file one instruction later)", "AG p.18, p.37"),
    Rule("H2", ERROR, "r4 too soon after an SFU write",
         "after an SFU write, r4 must not be read, and nothing else may write r4 (SFU write, "
         "ldtmu, tile-buffer load), in the following two instructions", "AG p.23, p.37"),
    Rule("H3", ERROR, "rotation of a just-written accumulator",
         "a vector rotate must not immediately follow an instruction that writes the "
         "accumulator being rotated", "AG p.37"),
    Rule("H4", ERROR, "rotate by r5 right after an r5 write",
         "a vector rotate by r5 must not immediately follow an instruction that writes r5",
         "AG p.37"),
    Rule("H5", WARNING, "rotation of non-accumulator operands",
         "the full 16-element rotate needs both mul operands in r0-r3; other operands rotate "
         "only within each quad", "AG p.20"),
    Rule("H6", ERROR, "uniform read too soon after uniforms_address write",
         "after the uniforms base pointer is written, two instructions that do not read uniforms "
         "must pass before uniforms are read again", "AG p.22"),
    Rule("H7", ERROR, "TMU write too soon after tmu_noswap",
         "tmu_noswap must be written at least three instructions before the first TMU write "
         "(written at instruction 1, the first TMU write may be instruction 4)", "AG p.37"),
    Rule("H8", ERROR, "two closely coupled peripheral accesses",
         "one instruction may do at most one of: TMU write, TMU read (ldtmu), TLB access, SFU "
         "write, mutex read, semaphore access", "AG p.37"),
    Rule("H9", ERROR, "thread end writes the register file",
         "the thread-end instruction must not write physical regfile A or B (that write cycle "
         "is used for the next thread)", "AG p.21, p.37"),
    Rule("H10", ERROR, "regfile address 14 at thread end",
         "the thread-end instruction and its two delay slots must not read or write address 14 "
         "of regfile A or B", "AG p.21, p.37"),
    Rule("H11", ERROR, "fixed-function access at thread end",
         "the last three instructions (thread end and its two delay slots) must not read "
         "uniforms or varyings, nor read or write the VPM, VDR or VDW", "AG p.22, p.37"),
    Rule("H15", ERROR, "branch in branch delay slots",
         "a branch must not be placed in the three delay slots of another branch (Linux and "
         "Mesa reject all three; the vc4asm author measured that the third one works)",
         "AG p.34; Linux vc4_validate_shaders.c; vc4asm addendum"),
    Rule("H18", WARNING, "both pipes write one register",
         "the add and mul pipes must not write the same accumulator or I/O register in one "
         "instruction (undefined; vc4asm tolerates mutually exclusive conditions, except for "
         "peripherals)", "AG p.19; vc4asm addendum"),
    Rule("H19", WARNING, "conditional write to a peripheral",
         "a conditional write to the TMU, VPM or another peripheral still triggers it, with "
         "undefined data for the masked elements; write it unconditionally", "vc4asm addendum"),
    Rule("H20", WARNING, "partial pack to a peripheral",
         "partial-width packs (16a/16b/8a-8d) cannot target peripheral registers",
         "vc4asm addendum"),
    Rule("H21", WARNING, "concurrent VPM setup and access",
         "VPM read setup and write setup must not be written in one instruction, and VPM data "
         "must not be read or written in the instruction that writes a setup", "vc4asm addendum"),
    Rule("H22", ERROR, "semaphore instruction writes a stalling peripheral",
         "the semaphore instruction must not write the TLB, TMU or SFU", "AG p.34"),
    Rule("H23", WARNING, "VPM read too soon after its setup",
         "VPM data is readable three instructions after the read setup; earlier reads return "
         "undefined data per the guide (hardware was observed to stall instead)",
         "AG p.56; vc4asm addendum"),
    Rule("H24", ERROR, "VPM reads do not match the read setup",
         "exactly the number of vectors a read setup programs (NUM, 0 meaning 16) must be read, "
         "and all of them before the program ends", "AG p.24, p.56"),
    Rule("H25", ERROR, "uniform read with a texture-mode TMU write",
         "a TMU parameter write in texture (non-direct) mode consumes a uniform, so the same "
         "instruction must not read a uniform", "AG p.23, p.40; Linux vc4_validate_shaders.c"),
    Rule("H26", WARNING, "host interrupt value zero",
         "the value written to host_interrupt must be non-zero, otherwise nothing happens",
         "vc4asm addendum"),
    Rule("H27", ERROR, "ldtmu without a pending request",
         "ldtmu pops the TMU receive FIFO: it needs a request written to that TMU's s "
         "register before it", "AG p.23, p.39"),
    Rule("H28", ERROR, "too many outstanding TMU requests",
         "each TMU queues at most 8 direct requests per QPU; more than 4 was measured to be "
         "unreliable", "AG p.39-40; vc4asm addendum"),
    Rule("H29", ERROR, "program does not end properly",
         "a program ends with a thread-end instruction followed by its two delay slots; "
         "execution must not run past the last instruction or branch outside the program",
         "AG p.21, p.34"),
    Rule("H30", ERROR, "fragment-only feature in a user program",
         "scoreboard signals, tile-buffer loads and TLB writes exist only in fragment shaders; "
         "user programs have no tile buffer or scoreboard", "AG p.29, p.37"),
    Rule("H31", ERROR, "thread end or branch in delay slots",
         "a thread end must not be placed in branch delay slots, and the two delay slots of a "
         "thread end must not hold a branch or another thread end", "AG p.21, p.34"),
)

RULES: Dict[str, Rule] = {rule.id: rule for rule in _RULES}
