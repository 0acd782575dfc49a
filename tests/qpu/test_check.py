"""Tests of the static hazard checker on programs built from raw instruction words.

Words come from two independent places: the py-videocore encodings listed in the hardware digest
(spec Appendix A.1/A.2, produced by running py-videocore), and `isa.encode_fields` with the fields
spelled out here. For every rule there is a minimal program that breaks it (finding expected at
the right instruction with the right rule id) and a near miss that does not.
"""
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spec_words import APPENDIX_A2_WORDS

from vc4infer.qpu import isa
from vc4infer.qpu.check import Finding, HazardError, check_program, errors
from vc4infer.qpu.rules import RULES

# ---- words from the spec's Appendix A.1 (py-videocore output) ----------------------------
PYV_NOP = 0x10020827009E7000            # nop() (names r0 as the add destination, op nop)
MESA_NOP = 0x100009E7009E7000
THREAD_END = 0x30024820959E7000         # mov(r0, r0, sig='thread end').mov(r0, r0)
MOV_HOST_INT_1 = 0xD00209A7159C1FC0
MOV_SFU_RECIP_R0 = 0x10020D27159E7000
MOV_TMU0_S_R0 = 0x10020E27159E7000
LDTMU0 = 0xA0020827009E7000              # nop(sig='load tmu0')
MOV_UNIF_ADDR_R0 = 0x10020A27159E7000
MOV_R0_UNIFORM = 0x1002082715827D80
ROTATE_R1_R0_1 = 0xD00049E1809F1000
ROTATE_R1_R0_R5 = 0xD00049E1809F0000
MOV_BROADCAST_R0 = 0x10021967159E7000
SEMA_UP_3 = 0xE80249E700000003
JMP_NEXT = 0xF0F809E700000000            # jmp to the instruction after the delay slots
JZC_SELF_LINK_RA1 = 0xF0180067FFFFFFE0   # jzc(L, link=ra1), L = the branch itself
JMP_REG_RA3 = 0xF0F469E700000000         # jmp(reg=ra3, absolute=True)
FMUL_RB4_R0_2 = 0xD00049C4209E1007       # fmul(rb4, r0, 2.0)
MOV_VPM_R0 = 0x10020C27159E7000
MOV_R1_VPM = 0x1002086715C27D80
SETUP_VPM_READ_16 = 0xE0024C6700001A00   # NUM field 0 = 16 vectors
SETUP_VPM_WRITE = 0xE0025C6700001A00
SETUP_DMA_LOAD = 0xE0024C6783001000
MOV_TMU0_S_R0_FIELDS = dict(sig=1, cond_add=1, waddr_add=56, waddr_mul=39, op_add=21,
                            raddr_a=39, raddr_b=39)

APPENDIX_A2 = list(APPENDIX_A2_WORDS)
END = [THREAD_END, MESA_NOP, MESA_NOP]

# ---- a tiny encoder over isa.encode_fields ------------------------------------------------
A, B = isa.MUX_A, isa.MUX_B
R0, R1, R2, R3, R4, R5 = range(6)          # input muxes
W = {name: reg.addr for name, reg in isa.IO_REGISTER_BY_NAME.items()}
W.update(isa.ACCUMULATOR_WADDR)


def alu(add=None, mul=None, *, sig=isa.SIG_NONE, raddr_a=39, raddr_b=39, ws=0,
        cond_add=1, cond_mul=1, pm=0, pack=0, sf=0):
    """add/mul = (op name, write address, mux a, mux b); a missing pipe is a nop to address 39."""
    f = dict(sig=sig, raddr_a=raddr_a, raddr_b=raddr_b, ws=ws, pm=pm, pack=pack, sf=sf,
             waddr_add=39, waddr_mul=39)
    if add:
        op, waddr, a, b = add
        f.update(op_add=isa.ADD_OP_BY_NAME[op].code, waddr_add=waddr, add_a=a, add_b=b,
                 cond_add=cond_add)
    if mul:
        op, waddr, a, b = mul
        f.update(op_mul=isa.MUL_OP_BY_NAME[op].code, waddr_mul=waddr, mul_a=a, mul_b=b,
                 cond_mul=cond_mul)
    return isa.encode_fields(isa.ALU_FIELDS, **f)


def mov(dst, mux, **kw):
    return alu(add=("bor", dst, mux, mux), **kw)


def mov_imm(dst, code, **kw):
    return alu(add=("bor", dst, B, B), sig=isa.SIG_SMALL_IMM, raddr_b=code, **kw)


def ldi(dst, value, *, ws=0, mul_dst=39, cond_add=1, cond_mul=1, pm=0, pack=0):
    return isa.encode_fields(isa.LOAD_IMM_FIELDS, sig=isa.SIG_LOAD_IMM, mode=isa.LOAD_IMM_32,
                             ws=ws, waddr_add=dst, waddr_mul=mul_dst, cond_add=cond_add,
                             cond_mul=cond_mul, pm=pm, pack=pack, immediate=value)


def sema(n, down=False, waddr_add=39):
    return isa.encode_fields(isa.SEMAPHORE_FIELDS, sig=isa.SIG_LOAD_IMM,
                             mode=isa.LOAD_IMM_SEMAPHORE, waddr_add=waddr_add, waddr_mul=39,
                             cond_add=1, cond_mul=1, sa=int(down), semaphore=n)


def branch(at, target, *, cond="jmp"):
    """A relative branch at instruction `at` to instruction `target`."""
    offset = (target - (at + 4)) * 8
    return isa.encode_fields(isa.BRANCH_FIELDS, sig=isa.SIG_BRANCH,
                             cond_br=isa.BRANCH_CONDITION_CODES[cond], rel=1,
                             waddr_add=39, waddr_mul=39, immediate=offset & 0xFFFFFFFF)


def sig_nop(sig):
    return alu(sig=sig)


NOP = MESA_NOP


def hits(words, rule=None):
    """(index, rule, severity) of every finding, optionally of one rule only."""
    return [(f.index, f.rule, f.severity) for f in check_program(words)
            if rule is None or f.rule == rule]


def only(words, rule):
    """Findings of `rule`, asserting the program has no findings of any other rule."""
    found = check_program(words)
    assert all(f.rule == rule for f in found), [str(f) for f in found]
    return [(f.index, f.severity) for f in found]


# ---- the end sequence and the realistic kernels -----------------------------------------
def test_end_sequence_alone_is_clean():
    assert check_program(END) == []
    assert check_program([THREAD_END, PYV_NOP, PYV_NOP]) == []


def test_appendix_a2_program_only_reads_vpm_early():
    # A.2 reads the VPM 2 instructions after its read setup, which works on hardware (the read
    # stalls) but is earlier than the guide's 3: exactly one H23 warning and nothing else.
    found = check_program(APPENDIX_A2)
    assert [(f.index, f.rule, f.severity) for f in found] == [(5, "H23", "warning")]
    assert "read setup at instruction 3" in found[0].message


def test_appendix_a2_with_one_more_instruction_is_clean():
    words = APPENDIX_A2[:5] + [NOP] + APPENDIX_A2[5:]
    assert check_program(words) == []


LOOP_KERNEL = [
    ldi(W["r1"], 64),                                       # 0
    mov(0, A, raddr_a=W["uniform"]),                        # 1  ra0 = address
    mov(1, A, raddr_a=W["uniform"]),                        # 2  ra1 = count
    mov(W["tmu0_s"], A, raddr_a=0),                         # 3  prefetch
    alu(add=("iadd", 0, A, R1), raddr_a=0),                 # 4  ra0 += 64
    NOP,                                                    # 5
    mov(W["tmu0_s"], A, raddr_a=0),                         # 6  loop: next request
    sig_nop(isa.SIG_LOAD_TMU0),                             # 7  r4 = data
    mov(W["sfu_recip"], R4),                                # 8
    alu(add=("iadd", 0, A, R1), raddr_a=0),                 # 9
    alu(add=("isub", 1, A, B), sig=isa.SIG_SMALL_IMM, raddr_a=1, raddr_b=1, sf=1),  # 10
    mov(W["r2"], R4),                                       # 11 1/x
    branch(12, 6, cond="jzc"),                              # 12
    NOP, NOP, NOP,                                          # 13-15
    sig_nop(isa.SIG_LOAD_TMU0),                             # 16 drain the prefetch
    MOV_HOST_INT_1,                                         # 17
] + END


def test_tmu_loop_kernel_is_clean():
    assert check_program(LOOP_KERNEL) == []


def test_accepts_bytes_and_program_objects():
    data = b"".join(w.to_bytes(8, "little") for w in APPENDIX_A2)
    assert hits(data) == hits(APPENDIX_A2)

    @dataclass
    class Prog:
        words: list
        sources: list
    prog = Prog(APPENDIX_A2, [f"loc{i}" for i in range(len(APPENDIX_A2))])
    assert [f.source for f in check_program(prog)] == ["loc5"]
    assert [f.source for f in check_program(APPENDIX_A2, source={5: "line 5"})] == ["line 5"]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="8-byte"):
        check_program(b"\0" * 12)
    with pytest.raises(ValueError, match="64-bit"):
        check_program([1 << 64])


# ---- Finding and HazardError -------------------------------------------------------------
@dataclass
class Loc:
    filename: str
    lineno: int


def test_finding_text_names_file_line_severity_and_rule():
    words = [ldi(5, 1), mov(W["r0"], A, raddr_a=5)] + END
    src = [Loc("kern.py", 10 + i) for i in range(len(words))]
    (f,) = check_program(words, source=src)
    assert (f.index, f.rule, f.severity, f.source) == (1, "H1", "error", src[1])
    assert str(f).startswith("kern.py:11: error: [H1] reads ra5, which instruction 0 just wrote")
    assert RULES["H1"].source in f.message
    (g,) = check_program(words)
    assert str(g).startswith("instruction 1: error: [H1]")


def test_hazard_error_lists_the_errors():
    found = [Finding(3, "H1", "error", "boom"), Finding(4, "H23", "warning", "slow")]
    err = HazardError(found)
    assert isinstance(err, ValueError)
    assert err.findings == found
    assert "instruction 3: error: [H1] boom" in str(err)
    assert "H23" not in str(err)
    assert errors(found) == found[:1]


def test_every_rule_has_wording_and_a_valid_severity():
    for rule in RULES.values():
        assert rule.severity in ("error", "warning") and rule.wording and rule.source


# ---- H1 regfile read right after write ---------------------------------------------------
def test_h1_read_after_load_immediate():
    assert only([ldi(5, 1), mov(W["r0"], A, raddr_a=5)] + END, "H1") == [(1, "error")]


def test_h1_near_misses():
    # two instructions later; an accumulator right after; same number in the other file
    assert check_program([ldi(5, 1), NOP, mov(W["r0"], A, raddr_a=5)] + END) == []
    assert check_program([ldi(W["r0"], 1), mov(W["r1"], R0)] + END) == []
    assert check_program([ldi(5, 1), mov(W["r0"], B, raddr_b=5)] + END) == []
    # raddr_b = 5 as a small immediate is not a register read
    assert check_program([ldi(5, 1, ws=1), mov_imm(W["r0"], 5)] + END) == []
    # raddr_a names ra5 but no operand uses it
    assert check_program([ldi(5, 1), mov(W["r0"], R1, raddr_a=5)] + END) == []


def test_h1_write_swap_decides_the_file():
    write_rb5 = alu(add=("bor", 5, R0, R0), ws=1)
    assert only([write_rb5, mov(W["r0"], B, raddr_b=5)] + END, "H1") == [(1, "error")]
    assert check_program([write_rb5, mov(W["r0"], A, raddr_a=5)] + END) == []
    # mul pipe with ws = 0 writes regfile B (fmul(rb4, r0, 2.0))
    assert only([FMUL_RB4_R0_2, mov(W["r0"], B, raddr_b=4)] + END, "H1") == [(1, "error")]
    assert check_program([FMUL_RB4_R0_2, mov(W["r0"], A, raddr_a=4)] + END) == []


def test_h1_branch_link_and_register_branch():
    # the link written by a branch counts; the delay slot reads ra1 right after it
    words = [JZC_SELF_LINK_RA1, mov(W["r0"], A, raddr_a=1), NOP, NOP] + END
    assert (1, "H1", "error") in hits(words)
    # a register branch reads its register
    assert (1, "H1", "error") in hits([ldi(3, 0), JMP_REG_RA3, NOP, NOP, NOP] + END)


def test_h1_across_a_branch_to_its_target():
    words = [branch(0, 5), NOP, NOP, ldi(5, 1),        # 3: last delay slot writes ra5
             mov(W["r0"], A, raddr_a=5),               # 4: never follows 3 (jmp is taken)
             mov(W["r1"], A, raddr_a=5)] + END         # 5: the target
    found = [f for f in check_program(words) if f.rule == "H1"]
    assert [(f.index, f.severity) for f in found] == [(5, "error")]
    assert "branch target" in found[0].message


# ---- H2 r4 after an SFU write ------------------------------------------------------------
def test_h2_r4_read_one_and_two_after():
    assert only([MOV_SFU_RECIP_R0, mov(W["r1"], R4)] + END, "H2") == [(1, "error")]
    assert only([MOV_SFU_RECIP_R0, NOP, mov(W["r1"], R4)] + END, "H2") == [(2, "error")]


def test_h2_near_miss_r4_at_n_plus_3():
    assert check_program([MOV_SFU_RECIP_R0, NOP, NOP, mov(W["r1"], R4)] + END) == []
    # an r4 mux in a pipe that does nothing is no read
    assert check_program([MOV_SFU_RECIP_R0, alu(mul=("fmul", W["r1"], R0, R0)),
                          mov(W["r1"], R0)] + END) == []


def test_h2_other_r4_writes():
    assert only([MOV_SFU_RECIP_R0, MOV_SFU_RECIP_R0, NOP, NOP] + END, "H2") == [(1, "error")]
    words = [MOV_TMU0_S_R0, MOV_SFU_RECIP_R0, NOP, LDTMU0] + END
    assert hits(words) == [(3, "H2", "error")]
    assert check_program([MOV_TMU0_S_R0, MOV_SFU_RECIP_R0, NOP, NOP, LDTMU0] + END) == []


# ---- H3/H4/H5 rotation -------------------------------------------------------------------
def test_h3_rotating_a_just_written_accumulator():
    assert only([ldi(W["r0"], 7), ROTATE_R1_R0_1] + END, "H3") == [(1, "error")]


def test_h3_near_misses():
    assert check_program([ldi(W["r2"], 7), ROTATE_R1_R0_1] + END) == []
    assert check_program([ldi(W["r0"], 7), NOP, ROTATE_R1_R0_1] + END) == []
    # py-videocore's nop names r0 but its add op is nop: no write
    assert check_program([PYV_NOP, ROTATE_R1_R0_1] + END) == []


def test_h4_rotate_by_r5_after_r5_write():
    assert only([MOV_BROADCAST_R0, ROTATE_R1_R0_R5] + END, "H4") == [(1, "error")]
    assert check_program([MOV_BROADCAST_R0, NOP, ROTATE_R1_R0_R5] + END) == []
    # a fixed rotation does not read r5
    assert check_program([MOV_BROADCAST_R0, ROTATE_R1_R0_1] + END) == []


def test_h5_rotation_of_regfile_operands():
    rot_ra1 = alu(mul=("v8min", W["r1"], A, A), sig=isa.SIG_SMALL_IMM, raddr_a=1, raddr_b=49)
    assert only([rot_ra1] + END, "H5") == [(0, "warning")]
    assert check_program([ROTATE_R1_R0_1] + END) == []
    # code 49 read only by the add pipe is the value -15, not a rotation
    assert check_program([alu(add=("iadd", W["r1"], A, B), sig=isa.SIG_SMALL_IMM, raddr_a=1,
                              raddr_b=49)] + END) == []


# ---- H6 uniforms after a uniforms_address write -----------------------------------------
def test_h6_uniform_read_too_soon():
    assert only([MOV_UNIF_ADDR_R0, MOV_R0_UNIFORM] + END, "H6") == [(1, "error")]
    assert only([MOV_UNIF_ADDR_R0, NOP, MOV_R0_UNIFORM] + END, "H6") == [(2, "error")]
    assert check_program([MOV_UNIF_ADDR_R0, NOP, NOP, MOV_R0_UNIFORM] + END) == []


def test_h6_texture_write_takes_a_uniform():
    tmu0_t = mov(W["tmu0_t"], R0)
    assert (1, "H6", "error") in hits([MOV_UNIF_ADDR_R0, tmu0_t, NOP, MOV_TMU0_S_R0, LDTMU0]
                                      + END)


# ---- H7 tmu_noswap -----------------------------------------------------------------------
def test_h7_tmu_write_too_soon_after_noswap():
    noswap = mov_imm(W["tmu_noswap"], 1)
    assert (1, "H7", "error") in hits([noswap, MOV_TMU0_S_R0, LDTMU0] + END)
    assert (2, "H7", "error") in hits([noswap, NOP, MOV_TMU0_S_R0, LDTMU0] + END)
    assert check_program([noswap, NOP, NOP, MOV_TMU0_S_R0, LDTMU0] + END) == []


# ---- H8 one closely coupled access per instruction --------------------------------------
def test_h8_two_peripheral_accesses():
    tmu_and_ldtmu = isa.encode_fields(isa.ALU_FIELDS, **dict(MOV_TMU0_S_R0_FIELDS, sig=10))
    assert (1, "H8", "error") in hits([MOV_TMU0_S_R0, tmu_and_ldtmu, LDTMU0] + END)
    sfu_mutex = mov(W["sfu_recip"], A, raddr_a=W["mutex"])
    assert (0, "H8", "error") in hits([sfu_mutex] + END)
    two_tmus = alu(add=("bor", W["tmu0_s"], R0, R0), mul=("v8min", W["tmu1_s"], R1, R1))
    assert (0, "H8", "error") in hits([two_tmus, LDTMU0, sig_nop(isa.SIG_LOAD_TMU1)] + END)


def test_h8_near_miss_uniform_and_sfu():
    assert check_program([mov(W["sfu_recip"], A, raddr_a=W["uniform"])] + END) == []


# ---- H9/H10/H11 thread end ---------------------------------------------------------------
def test_h9_thread_end_writes_regfile():
    te_ra0 = mov(0, R0, sig=isa.SIG_THREAD_END)
    assert only([te_ra0, NOP, NOP], "H9") == [(0, "error")]


def test_h10_address_14_at_thread_end():
    assert only([THREAD_END, mov(W["r0"], A, raddr_a=14), NOP], "H10") == [(1, "error")]
    assert check_program([THREAD_END, mov(W["r0"], A, raddr_a=13), NOP]) == []
    te_rb14 = alu(add=("bor", 14, R0, R0), ws=1, sig=isa.SIG_THREAD_END)
    assert set(hits([te_rb14, NOP, NOP])) == {(0, "H9", "error"), (0, "H10", "error")}


def test_h11_fixed_functions_at_thread_end():
    assert only([THREAD_END, NOP, MOV_R0_UNIFORM], "H11") == [(2, "error")]
    assert only([THREAD_END, MOV_VPM_R0, NOP], "H11") == [(1, "error")]
    wait_in_end = mov(W["r0"], B, raddr_b=W["vpm_st_wait"], sig=isa.SIG_THREAD_END)
    assert only([wait_in_end, NOP, NOP], "H11") == [(0, "error")]
    assert check_program([MOV_R0_UNIFORM, MOV_VPM_R0] + END) == []


# ---- H15/H31 delay slots -----------------------------------------------------------------
def test_h15_branch_in_delay_slots():
    assert (1, "H15", "error") in hits([branch(0, 4), branch(1, 5), NOP, NOP, NOP, NOP] + END)
    found = hits([branch(0, 4), NOP, NOP, branch(3, 7), NOP, NOP, NOP] + END)
    assert found == [(3, "H15", "warning")]
    assert check_program([branch(0, 4), NOP, NOP, NOP, branch(4, 8), NOP, NOP, NOP] + END) == []


def test_h31_thread_end_and_delay_slots():
    assert (1, "H31", "error") in hits([branch(0, 4), THREAD_END, NOP, NOP, NOP])
    assert (1, "H31", "error") in hits([THREAD_END, branch(1, 5), NOP])
    assert (2, "H31", "error") in hits([THREAD_END, NOP, THREAD_END, NOP, NOP])


# ---- H18 both pipes write one register ---------------------------------------------------
def test_h18_both_pipes_same_accumulator():
    both_r0 = alu(add=("bor", W["r0"], R1, R1), mul=("v8min", W["r0"], R2, R2))
    assert only([both_r0] + END, "H18") == [(0, "warning")]


def test_h18_near_misses():
    # the same value from both pipes (py-videocore's thread end, ldi to both) and exclusive
    # conditions
    assert check_program([ldi(W["r0"], 5, mul_dst=W["r0"])] + END) == []
    zs, zc = isa.CONDITION_CODES["zs"], isa.CONDITION_CODES["zc"]
    excl = alu(add=("bor", W["r0"], R1, R1), mul=("v8min", W["r0"], R2, R2),
               cond_add=zs, cond_mul=zc)
    assert check_program([excl] + END) == []
    assert check_program([alu(add=("bor", W["r0"], R1, R1), mul=("v8min", W["r1"], R2, R2))]
                         + END) == []


def test_h18_peripheral_is_an_error():
    both_vpm = alu(add=("bor", W["vpm"], R1, R1), mul=("v8min", W["vpm"], R1, R1))
    assert (1, "H18", "error") in hits([SETUP_VPM_WRITE, both_vpm] + END)


# ---- H19/H20 conditional and packed peripheral writes ------------------------------------
def test_h19_conditional_peripheral_write():
    zs = isa.CONDITION_CODES["zs"]
    assert (0, "H19", "warning") in hits([mov(W["tmu0_s"], R0, cond_add=zs), LDTMU0] + END)
    assert check_program([mov(W["r0"], R1, cond_add=zs)] + END) == []
    assert check_program([mov_imm(W["host_interrupt"], 1, cond_add=zs)] + END) == []


def test_h20_partial_pack_into_peripheral():
    pack_8a = isa.MUL_PACKS["8a"]
    to_vpm = alu(mul=("fmul", W["vpm"], R0, R1), pm=1, pack=pack_8a)
    assert only([SETUP_VPM_WRITE, to_vpm] + END, "H20") == [(1, "warning")]
    to_r0 = alu(mul=("fmul", W["r0"], R0, R1), pm=1, pack=pack_8a)
    assert check_program([to_r0] + END) == []
    regfile_16a = mov(W["vpm"], R0, pack=isa.REGFILE_A_PACK_CODES["16a"])
    assert only([SETUP_VPM_WRITE, regfile_16a] + END, "H20") == [(1, "warning")]
    assert check_program([mov(3, R0, pack=isa.REGFILE_A_PACK_CODES["16a"])] + END) == []


# ---- H21 VPM setups and accesses in one instruction --------------------------------------
def test_h21_vpm_setups_together():
    both = ldi(W["vpmvcd_rd_setup"], 0x00101A00, mul_dst=W["vpmvcd_wr_setup"])
    assert (0, "H21", "warning") in hits([both, NOP, NOP, MOV_R1_VPM] + END)
    write_and_setup = alu(add=("bor", W["vpm"], R0, R0),
                          mul=("v8min", W["vpmvcd_wr_setup"], R1, R1))
    assert only([write_and_setup] + END, "H21") == [(0, "warning")]
    assert check_program([SETUP_VPM_WRITE, MOV_VPM_R0] + END) == []


# ---- H22 semaphore destinations ----------------------------------------------------------
def test_h22_semaphore_writes_sfu():
    assert (0, "H22", "error") in hits([sema(3, waddr_add=W["sfu_recip"])] + END)
    assert check_program([SEMA_UP_3, sema(3, down=True, waddr_add=W["r0"])] + END) == []


# ---- H23/H24 VPM reads -------------------------------------------------------------------
def read_setup(num):
    return ldi(W["vpmvcd_rd_setup"], 0x00001A00 | (num % 16) << 20)


def test_h23_vpm_read_one_after_setup():
    assert only([read_setup(1), MOV_R1_VPM] + END, "H23") == [(1, "warning")]
    assert check_program([read_setup(1), NOP, NOP, MOV_R1_VPM] + END) == []


def test_h24_more_reads_than_num():
    words = [read_setup(1), NOP, NOP, MOV_R1_VPM, MOV_R1_VPM] + END
    assert only(words, "H24") == [(4, "error")]


def test_h24_reads_left_at_program_end():
    assert only([read_setup(2), NOP, NOP, MOV_R1_VPM] + END, "H24") == [(4, "warning")]
    assert check_program([read_setup(2), NOP, NOP, MOV_R1_VPM, MOV_R1_VPM] + END) == []


def test_h24_num_zero_means_sixteen():
    assert check_program([SETUP_VPM_READ_16, NOP, NOP] + [MOV_R1_VPM] * 16 + END) == []
    assert only([SETUP_VPM_READ_16, NOP, NOP] + [MOV_R1_VPM] * 17 + END, "H24") == \
        [(19, "error")]


def test_h24_read_without_setup_and_setup_replacing_pending_reads():
    assert only([MOV_R1_VPM] + END, "H24") == [(0, "error")]
    words = [read_setup(2), NOP, NOP, MOV_R1_VPM, read_setup(1), NOP, NOP, MOV_R1_VPM] + END
    assert only(words, "H24") == [(4, "warning")]


def test_h24_unknown_setups_are_not_reported():
    # a setup value from a uniform is not known here; a DMA load setup leaves the count alone
    from_uniform = mov(W["vpmvcd_rd_setup"], A, raddr_a=W["uniform"])
    assert check_program([from_uniform, NOP, NOP, MOV_R1_VPM, MOV_R1_VPM] + END) == []
    assert check_program([read_setup(1), SETUP_DMA_LOAD, NOP, MOV_R1_VPM] + END) == []


def test_h24_paths_that_disagree_are_not_reported():
    # a conditional branch skips one of the two reads: the count at the join is not known
    words = [read_setup(2), NOP, NOP, MOV_R1_VPM,
             branch(4, 9, cond="jzs"), NOP, NOP, NOP,
             MOV_R1_VPM, NOP] + END
    assert check_program(words) == []


# ---- H25 uniform read with a texture-mode TMU write --------------------------------------
def test_h25_uniform_with_texture_write():
    tmu0_t = mov(W["tmu0_t"], R0)
    s_with_uniform = mov(W["tmu0_s"], A, raddr_a=W["uniform"])
    assert only([tmu0_t, s_with_uniform, LDTMU0] + END, "H25") == [(1, "error")]
    t_with_uniform = mov(W["tmu0_t"], A, raddr_a=W["uniform"])
    assert (0, "H25", "error") in hits([t_with_uniform, MOV_TMU0_S_R0, LDTMU0] + END)
    # a direct (s-only) lookup takes no uniform
    assert check_program([s_with_uniform, LDTMU0] + END) == []


# ---- H26 host interrupt value ------------------------------------------------------------
def test_h26_host_interrupt_zero():
    assert only([ldi(W["host_interrupt"], 0)] + END, "H26") == [(0, "warning")]
    assert only([mov_imm(W["host_interrupt"], 0)] + END, "H26") == [(0, "warning")]
    assert check_program([MOV_HOST_INT_1] + END) == []


# ---- H27/H28 TMU requests ----------------------------------------------------------------
def test_h27_ldtmu_without_request():
    assert only([LDTMU0] + END, "H27") == [(0, "error")]
    tmu1 = mov(W["tmu1_s"], R0)
    assert (1, "H27", "error") in hits([tmu1, LDTMU0, sig_nop(isa.SIG_LOAD_TMU1)] + END)
    assert check_program([MOV_TMU0_S_R0, LDTMU0] + END) == []


def test_h27_not_reported_when_paths_disagree():
    # one path issues a request, the other does not: the count at the join is unknown
    words = [branch(0, 5, cond="jzs"), NOP, NOP, NOP, MOV_TMU0_S_R0, LDTMU0] + END
    assert check_program(words) == []
    # a register branch may enter anywhere: nothing can be proven
    assert check_program([JMP_REG_RA3, NOP, NOP, NOP, LDTMU0] + END) == []


def test_h28_outstanding_requests():
    five = [MOV_TMU0_S_R0] * 5 + [LDTMU0] * 5 + END
    assert only(five, "H28") == [(4, "warning")]
    nine = [MOV_TMU0_S_R0] * 9 + [LDTMU0] * 9 + END
    assert hits(nine, "H28") == [(4, "H28", "warning"), (5, "H28", "warning"),
                                 (6, "H28", "warning"), (7, "H28", "warning"),
                                 (8, "H28", "error")]
    assert check_program([MOV_TMU0_S_R0] * 4 + [LDTMU0] * 4 + END) == []


# ---- H29 program end ---------------------------------------------------------------------
def test_h29_no_thread_end():
    assert only([NOP, NOP], "H29") == [(1, "error")]
    assert only([], "H29") == [(0, "error")]


def test_h29_missing_delay_slots():
    assert only([NOP, THREAD_END, NOP], "H29") == [(1, "error")]


def test_h29_falls_off_the_end():
    # a jump over the end sequence into code that runs past the last instruction
    words = [branch(0, 7), NOP, NOP, NOP] + END + [NOP]
    assert only(words, "H29") == [(7, "error")]
    # the same code jumping back to the end sequence is fine
    words = [branch(0, 7), NOP, NOP, NOP] + END + [branch(7, 4), NOP, NOP, NOP]
    assert check_program(words) == []


def test_h29_branch_outside_program():
    assert (0, "H29", "error") in hits([branch(0, 40), NOP, NOP, NOP] + END)


# ---- H30 fragment-only features ----------------------------------------------------------
def test_h30_fragment_only():
    assert only([sig_nop(isa.SIGNAL_CODES["wait scoreboard"])] + END, "H30") == [(0, "error")]
    assert (0, "H30", "error") in hits([mov(W["tlb_z"], R0)] + END)
    assert check_program([sig_nop(isa.SIGNAL_CODES["breakpoint"])] + END) == []


def test_h2_tile_buffer_load_also_writes_r4():
    load_colour = sig_nop(isa.SIGNAL_CODES["load color"])
    assert set(hits([MOV_SFU_RECIP_R0, load_colour] + END)) == {(1, "H2", "error"),
                                                                (1, "H30", "error")}


# ---- any words at all: the checker never fails, and its findings are well formed ---------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, (1 << 64) - 1), max_size=24))
def test_random_words_give_well_formed_findings(words):
    for f in check_program(words):
        assert 0 <= f.index < max(len(words), 1)
        assert f.rule in RULES and f.severity in ("error", "warning")
        assert str(f).startswith(f"instruction {f.index}: {f.severity}: [{f.rule}] ")
