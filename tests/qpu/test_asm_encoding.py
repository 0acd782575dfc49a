"""Every opcode, signal, condition, pack/unpack mode, small immediate, special register and
branch kind, against words worked out from the reference guide's tables (AG p.26-38; digest
§2-§7). Expected values are literals from the guide, packed by asm_guide_words."""
import struct

import pytest

from vc4infer.qpu import assemble_text

from asm_guide_words import NOP_ADDR, alu, branch, load, semaphore

R0, R1, R2, R3, R4, R5, MUX_A, MUX_B = range(8)   # input muxes, AG p.28 Table 3
ALWAYS, NEVER = 1, 0


def one(source: str) -> int:
    words = assemble_text(source).words
    assert len(words) == 1, words
    return words[0]


# AG p.35-36 Table 12 (add ops); py-videocore sets flags for every add op except nop/mov
ADD_OPS = {"fadd": 1, "fsub": 2, "fmin": 3, "fmax": 4, "fminabs": 5, "fmaxabs": 6, "ftoi": 7, "itof": 8,
           "iadd": 12, "isub": 13, "shr": 14, "asr": 15, "ror": 16, "shl": 17, "imin": 18, "imax": 19,
           "band": 20, "bor": 21, "bxor": 22, "bnot": 23, "clz": 24, "v8adds": 30, "v8subs": 31}
UNARY = {"ftoi", "itof", "bnot", "clz"}
# AG p.36 Table 13 (mul ops)
MUL_OPS = {"fmul": 1, "imul24": 2, "v8muld": 3, "v8min": 4, "v8max": 5, "v8adds": 6, "v8subs": 7}


@pytest.mark.parametrize("name,code", sorted(ADD_OPS.items()))
def test_add_op(name, code):
    if name in UNARY:
        got = one(f"{name}(r2, r1)")
        want = alu(cond_add=ALWAYS, sf=1, waddr_add=34, op_add=code, add_a=R1, add_b=R0)
    else:
        got = one(f"{name}(r2, r1, r3)")
        want = alu(cond_add=ALWAYS, sf=1, waddr_add=34, op_add=code, add_a=R1, add_b=R3)
    assert got == want


def test_unary_add_op_with_explicit_second_operand():
    assert one("clz(r2, r1, r3)") == alu(cond_add=ALWAYS, sf=1, waddr_add=34, op_add=24, add_a=R1, add_b=R3)


def test_nop_and_mov_do_not_set_flags():
    assert one("nop()") == alu(cond_add=ALWAYS, waddr_add=32)
    assert one("nop(set_flags=True)") == alu(cond_add=ALWAYS, waddr_add=32)
    assert one("mov(r1, r2)") == alu(cond_add=ALWAYS, waddr_add=33, op_add=21, add_a=R2, add_b=R2)
    assert one("mov(r1, r2, set_flags=True)") == alu(cond_add=ALWAYS, sf=1, waddr_add=33, op_add=21,
                                                     add_a=R2, add_b=R2)


@pytest.mark.parametrize("name,code", sorted(MUL_OPS.items()))
def test_mul_op_alone(name, code):
    if name in ADD_OPS:        # v8adds/v8subs at top level are the add-pipe ops: chain after a nop
        got = one(f"nop(null, cond='never').{name}(r2, r1, r3)")
    else:
        got = one(f"{name}(r2, r1, r3)")
    assert got == alu(cond_mul=ALWAYS, waddr_mul=34, op_mul=code, mul_a=R1, mul_b=R3)


@pytest.mark.parametrize("name,code", sorted(MUL_OPS.items()))
def test_mul_op_dual_issued(name, code):
    got = one(f"iadd(r0, r1, r2).{name}(r3, ra4, rb5)")
    assert got == alu(cond_add=ALWAYS, cond_mul=ALWAYS, sf=1, waddr_add=32, waddr_mul=35, op_mul=code,
                      op_add=12, raddr_a=4, raddr_b=5, add_a=R1, add_b=R2, mul_a=MUX_A, mul_b=MUX_B)


def test_mul_mov_and_set_flags_on_mul_alone():
    assert one("iadd(r0, r1, r2).mov(r3, r1)") == alu(
        cond_add=ALWAYS, cond_mul=ALWAYS, sf=1, waddr_add=32, waddr_mul=35, op_mul=4, op_add=12,
        add_a=R1, add_b=R2, mul_a=R1, mul_b=R1)
    # op_add nop + sf: the flags come from the mul result (AG p.27-28)
    assert one("fmul(r3, r1, r2, set_flags=True)") == alu(cond_mul=ALWAYS, sf=1, waddr_mul=35, op_mul=1,
                                                          mul_a=R1, mul_b=R2)


# AG p.29 Table 4
SIGNALS = ["breakpoint", "no signal", "thread switch", "thread end", "wait scoreboard", "unlock scoreboard",
           "last thread switch", "load coverage", "load color", "load color and thread end", "load tmu0",
           "load tmu1", "load alpha"]


@pytest.mark.parametrize("code,name", list(enumerate(SIGNALS)))
def test_signal(code, name):
    assert one(f"iadd(r0, r1, r2, sig={name!r})") == alu(sig=code, cond_add=ALWAYS, sf=1, waddr_add=32,
                                                         op_add=12, add_a=R1, add_b=R2)
    assert one(f"fmul(r0, r1, r2, sig={name!r})") == alu(sig=code, cond_mul=ALWAYS, waddr_mul=32, op_mul=1,
                                                         mul_a=R1, mul_b=R2)


def test_signal_given_on_the_mul_half_of_a_dual_issue():
    assert one("iadd(r0, r1, r2).fmul(r3, r1, r2, sig='load tmu1')") == alu(
        sig=11, cond_add=ALWAYS, cond_mul=ALWAYS, sf=1, waddr_add=32, waddr_mul=35, op_mul=1, op_add=12,
        add_a=R1, add_b=R2, mul_a=R1, mul_b=R2)


# AG p.28 Table 2
CONDITIONS = ["never", "always", "zs", "zc", "ns", "nc", "cs", "cc"]


@pytest.mark.parametrize("code,name", list(enumerate(CONDITIONS)))
def test_condition(code, name):
    assert one(f"iadd(r0, r1, r2, cond={name!r})") == alu(cond_add=code, sf=1, waddr_add=32, op_add=12,
                                                          add_a=R1, add_b=R2)
    assert one(f"iadd(r0, r1, r2).fmul(r3, r1, r2, cond={name!r})") == alu(
        cond_add=ALWAYS, cond_mul=code, sf=1, waddr_add=32, waddr_mul=35, op_mul=1, op_add=12,
        add_a=R1, add_b=R2, mul_a=R1, mul_b=R2)
    assert one(f"ldi(r1, 5, cond={name!r})") == load(5, cond_add=code, cond_mul=code, waddr_add=33)


# AG p.31 Table 7 (regfile-A pack, pm=0)
A_PACKS = ["nop", "16a", "16b", "rep 8", "8a", "8b", "8c", "8d", "32 sat", "16a sat", "16b sat",
           "rep 8 sat", "8a sat", "8b sat", "8c sat", "8d sat"]


@pytest.mark.parametrize("code,mode", list(enumerate(A_PACKS)))
def test_regfile_a_pack(code, mode):
    # add pipe writing ra3 (ws=0) and mul pipe writing ra3 (ws=1)
    assert one(f"iadd(ra3.pack({mode!r}), r1, r2)") == alu(pack=code, cond_add=ALWAYS, sf=1, waddr_add=3,
                                                           op_add=12, add_a=R1, add_b=R2)
    assert one(f"fmul(ra3.pack({mode!r}), r1, r2)") == alu(pack=code, cond_mul=ALWAYS, ws=1, waddr_mul=3,
                                                           op_mul=1, mul_a=R1, mul_b=R2)
    assert one(f"ldi(ra3.pack({mode!r}), 7)") == load(7, pack=code, waddr_add=3)


# AG p.32 Table 9 with its erratum fixed (codes 4-7 are 8a-8d)
MUL_PACKS = {"nop": 0, "rep 8": 3, "8a": 4, "8b": 5, "8c": 6, "8d": 7}


@pytest.mark.parametrize("mode,code", sorted(MUL_PACKS.items()))
def test_mul_pack(mode, code):
    assert one(f"fmul(r1, r2, r3, pack={mode!r})") == alu(pm=1 if code else 0, pack=code, cond_mul=ALWAYS,
                                                          waddr_mul=33, op_mul=1, mul_a=R2, mul_b=R3)


# AG p.31 Table 6 / p.32 Table 8
UNPACKS = ["nop", "16a", "16b", "rep 8d", "8a", "8b", "8c", "8d"]


@pytest.mark.parametrize("code,mode", list(enumerate(UNPACKS)))
def test_unpack(code, mode):
    assert one(f"fadd(r0, ra7.unpack({mode!r}), r1)") == alu(unpack=code, cond_add=ALWAYS, sf=1, waddr_add=32,
                                                            op_add=1, raddr_a=7, add_a=MUX_A, add_b=R1)
    assert one(f"fadd(r0, r4.unpack({mode!r}), r1)") == alu(unpack=code, pm=1 if code else 0, cond_add=ALWAYS,
                                                           sf=1, waddr_add=32, op_add=1, add_a=R4, add_b=R1)


def test_compatible_pack_and_unpack_share_pm():
    assert one("iadd(ra0.pack('16a'), ra1.unpack('16b'), r0)") == alu(
        unpack=2, pack=1, cond_add=ALWAYS, sf=1, waddr_add=0, op_add=12, raddr_a=1, add_a=MUX_A, add_b=R0)
    assert one("fmul(r0, r4.unpack('16a'), r0, pack='rep 8')") == alu(
        unpack=1, pm=1, pack=3, cond_mul=ALWAYS, waddr_mul=32, op_mul=1, mul_a=R4, mul_b=R0)


def _f32(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


# AG p.29-30 Table 5
SMALL_IMMEDIATES = ([(i, i) for i in range(16)] + [(i, 32 + i) for i in range(-16, 0)]
                    + [(2.0 ** i, 32 + i) for i in range(8)] + [(2.0 ** -i, 48 - i) for i in range(1, 9)]
                    + [(0.0, 0)])


@pytest.mark.parametrize("value,code", SMALL_IMMEDIATES, ids=[repr(v) for v, _ in SMALL_IMMEDIATES])
def test_small_immediate(value, code):
    assert one(f"iadd(r0, r1, {value!r})") == alu(sig=13, cond_add=ALWAYS, sf=1, waddr_add=32, op_add=12,
                                                  raddr_b=code, add_a=R1, add_b=MUX_B)


def test_same_small_immediate_on_both_pipes():
    # sgemm's `mov(ra0, 0.0).mov(rb0, 0.0)`
    assert one("mov(ra0, 0.0).mov(rb0, 0.0)") == alu(sig=13, cond_add=ALWAYS, cond_mul=ALWAYS, waddr_add=0,
                                                     waddr_mul=0, op_mul=4, op_add=21, raddr_b=0,
                                                     add_a=MUX_B, add_b=MUX_B, mul_a=MUX_B, mul_b=MUX_B)


@pytest.mark.parametrize("n", range(1, 16))
def test_rotation_by_constant(n):
    want = alu(sig=13, cond_mul=ALWAYS, waddr_mul=33, op_mul=4, raddr_b=48 + n, mul_a=R0, mul_b=R0)
    assert one(f"rotate(r1, r0, {n})") == want
    assert one(f"rotate(r1, r0, {n - 16})") == want
    # the add pipe may read the rotation code as the value n-16 (digest §4.2)
    assert one(f"mov(r2, {n - 16}).rotate(r1, r0, {n})") == alu(
        sig=13, cond_add=ALWAYS, cond_mul=ALWAYS, waddr_add=34, waddr_mul=33, op_mul=4, op_add=21,
        raddr_b=48 + n, add_a=MUX_B, add_b=MUX_B, mul_a=R0, mul_b=R0)


def test_rotation_by_r5_and_rotate_keyword():
    assert one("rotate(r1, ra2, r5)") == alu(sig=13, cond_mul=ALWAYS, waddr_mul=33, op_mul=4, raddr_a=2,
                                             raddr_b=48, mul_a=MUX_A, mul_b=MUX_A)
    assert one("mov(r2, -16).rotate(r1, r0, r5)") == alu(
        sig=13, cond_add=ALWAYS, cond_mul=ALWAYS, waddr_add=34, waddr_mul=33, op_mul=4, op_add=21,
        raddr_b=48, add_a=MUX_B, add_b=MUX_B, mul_a=R0, mul_b=R0)
    assert one("fmul(r1, r0, r4, rotate=3)") == alu(sig=13, cond_mul=ALWAYS, waddr_mul=33, op_mul=1,
                                                    raddr_b=51, mul_a=R0, mul_b=R4)


# AG p.37-38 Table 14: (name, address, spaces it is read from)
READS = [("uniform", 32, "ab"), ("varying_read", 35, "ab"), ("element_number", 38, "a"),
         ("qpu_number", 38, "b"), ("null", 39, "ab"), ("x_pixel_coord", 41, "a"), ("y_pixel_coord", 41, "b"),
         ("ms_flags", 42, "a"), ("rev_flag", 42, "b"), ("vpm", 48, "ab"), ("vpm_ld_busy", 49, "a"),
         ("vpm_st_busy", 49, "b"), ("vpm_ld_wait", 50, "a"), ("vpm_st_wait", 50, "b"), ("mutex", 51, "ab")]
READS += [(f"ra{i}", i, "a") for i in range(32)] + [(f"rb{i}", i, "b") for i in range(32)]


@pytest.mark.parametrize("name,addr,spaces", READS, ids=[r[0] for r in READS])
def test_read_location(name, addr, spaces):
    got = one(f"iadd(r0, {name}, r1)")
    if "a" in spaces:      # A-readable (and both-readable) locations go to raddr_a
        assert got == alu(cond_add=ALWAYS, sf=1, waddr_add=32, op_add=12, raddr_a=addr, add_a=MUX_A, add_b=R1)
    else:
        assert got == alu(cond_add=ALWAYS, sf=1, waddr_add=32, op_add=12, raddr_b=addr, add_a=MUX_B, add_b=R1)
    if spaces == "ab":     # with regfile A taken, a both-readable location moves to raddr_b
        assert one(f"iadd(r0, ra5, {name})") == alu(cond_add=ALWAYS, sf=1, waddr_add=32, op_add=12, raddr_a=5,
                                                    raddr_b=addr, add_a=MUX_A, add_b=MUX_B)


def test_accumulator_reads():
    for mux in range(6):
        assert one(f"iadd(r0, r{mux}, r{mux})") == alu(cond_add=ALWAYS, sf=1, waddr_add=32, op_add=12,
                                                       add_a=mux, add_b=mux)


# AG p.37-38 Table 14: (name, address, spaces it is written in)
WRITES = [("r0", 32, "ab"), ("r1", 33, "ab"), ("r2", 34, "ab"), ("r3", 35, "ab"), ("tmu_noswap", 36, "ab"),
          ("r5_pix0", 37, "a"), ("broadcast", 37, "b"), ("host_interrupt", 38, "ab"), ("null", 39, "ab"),
          ("uniforms_address", 40, "a"), ("uniforms_address_rel", 40, "b"), ("quad_x", 41, "a"),
          ("quad_y", 41, "b"), ("ms_flags", 42, "a"), ("rev_flag", 42, "b"), ("tlb_stencil_setup", 43, "ab"),
          ("tlb_z", 44, "ab"), ("tlb_color_ms", 45, "ab"), ("tlb_color_all", 46, "ab"),
          ("tlb_alpha_mask", 47, "ab"), ("vpm", 48, "ab"), ("vpmvcd_rd_setup", 49, "a"),
          ("vpmvcd_wr_setup", 49, "b"), ("vpm_ld_addr", 50, "a"), ("vpm_st_addr", 50, "b"),
          ("mutex", 51, "ab"), ("sfu_recip", 52, "ab"), ("sfu_recipsqrt", 53, "ab"), ("sfu_exp2", 54, "ab"),
          ("sfu_log2", 55, "ab"),
          ("tmu0_s", 56, "ab"), ("tmu0_t", 57, "ab"), ("tmu0_r", 58, "ab"), ("tmu0_b", 59, "ab"),
          ("tmu1_s", 60, "ab"), ("tmu1_t", 61, "ab"), ("tmu1_r", 62, "ab"), ("tmu1_b", 63, "ab")]
WRITES += [(f"ra{i}", i, "a") for i in range(32)] + [(f"rb{i}", i, "b") for i in range(32)]


@pytest.mark.parametrize("name,addr,spaces", WRITES, ids=[w[0] for w in WRITES])
def test_write_location(name, addr, spaces):
    ws_add = 0 if "a" in spaces else 1        # add pipe: ws=0 writes A space
    assert one(f"iadd({name}, r1, r2)") == alu(cond_add=ALWAYS, sf=1, ws=ws_add, waddr_add=addr, op_add=12,
                                               add_a=R1, add_b=R2)
    ws_mul = 0 if "b" in spaces else 1        # mul pipe: ws=0 writes B space
    assert one(f"fmul({name}, r1, r2)") == alu(cond_mul=ALWAYS, ws=ws_mul, waddr_mul=addr, op_mul=1,
                                               mul_a=R1, mul_b=R2)


def test_two_destinations_choose_write_swap():
    assert one("iadd(ra1, r1, r2).fmul(rb2, r1, r2)") == alu(
        cond_add=ALWAYS, cond_mul=ALWAYS, sf=1, ws=0, waddr_add=1, waddr_mul=2, op_mul=1, op_add=12,
        add_a=R1, add_b=R2, mul_a=R1, mul_b=R2)
    assert one("iadd(rb1, r1, r2).fmul(ra2, r1, r2)") == alu(
        cond_add=ALWAYS, cond_mul=ALWAYS, sf=1, ws=1, waddr_add=1, waddr_mul=2, op_mul=1, op_add=12,
        add_a=R1, add_b=R2, mul_a=R1, mul_b=R2)


def test_load_immediates():
    assert one("ldi(r0, -1)") == load(0xFFFFFFFF, waddr_add=32)
    assert one("ldi(r0, 0xFFFFFFFF)") == load(0xFFFFFFFF, waddr_add=32)
    assert one("ldi(r0, -2.5)") == load(_f32(-2.5), waddr_add=32)
    assert one("ldi(ra1, rb2, 9)") == load(9, waddr_add=1, waddr_mul=2)
    assert one("ldi(rb1, ra2, 9)") == load(9, ws=1, waddr_add=1, waddr_mul=2)
    assert one("ldi(null, [1]*15 + [0], set_flags=True)") == load(0x00007FFF, mode=3, sf=1)
    # per-element: MS bits 31:16, LS bits 15:0, element i at bit i (AG p.33)
    assert one("ldi(r0, [3, 2, 1])") == load((0b011 << 16) | 0b101, mode=3, waddr_add=32)
    assert one("ldi(r0, [-2, -1, 1])") == load((0b011 << 16) | 0b110, mode=1, waddr_add=32)


@pytest.mark.parametrize("n", range(16))
def test_semaphores(n):
    assert one(f"sema_up({n})") == semaphore(n, False)
    assert one(f"sema_down({n})") == semaphore(n, True)


# AG p.34 Table 11
BRANCHES = ["jzs", "jzc", "jzs_any", "jzc_any", "jns", "jnc", "jns_any", "jnc_any", "jcs", "jcc",
            "jcs_any", "jcc_any"]
BRANCH_CODES = list(enumerate(BRANCHES)) + [(15, "jmp")]


@pytest.mark.parametrize("code,name", BRANCH_CODES)
def test_branch_condition(code, name):
    assert one(f"{name}(64)") == branch(code, 64)


def test_branch_kinds():
    assert one("jmp(-8)") == branch(15, -8)                                  # relative
    assert one("jmp(0x100, absolute=True)") == branch(15, 0x100, rel=0)    # absolute
    assert one("jmp(reg=ra7)") == branch(15, 0, reg=1, raddr_a=7)          # relative + register
    assert one("jmp(16, reg=ra7)") == branch(15, 16, reg=1, raddr_a=7)
    assert one("jmp(reg=ra7, absolute=True)") == branch(15, 0, rel=0, reg=1, raddr_a=7)
    assert one("jmp(8, link=ra9)") == branch(15, 8, waddr_add=9)           # link in regfile A
    assert one("jmp(8, link=rb9)") == branch(15, 8, ws=1, waddr_add=9)     # link in regfile B
    assert one("jmp(8, link=r1)") == branch(15, 8, waddr_add=33)


def test_branch_to_labels_forward_and_backward():
    words = assemble_text("L.top\nnop()\njzs(L.top)\nnop()\nnop()\nnop()\njmp(L.end)\nnop()\nnop()\nnop()\n"
                          "nop()\nL.end").words
    # target = branch address + 32 + imm (AG p.34)
    assert words[1] == branch(0, 0 - (8 + 32))
    assert words[5] == branch(15, 80 - (40 + 32))


def test_raw_words():
    words = assemble_text("raw(0xDEADBEEF, 0xFEEDFACE)\n"
                          "raw_program(bytes.fromhex('efbeaddecefaedfebebefeca0df0ddba'))").words
    assert words == [0xFEEDFACEDEADBEEF, 0xFEEDFACEDEADBEEF, 0xBADDF00DCAFEBEBE]


def test_nop_mesa_style_and_explicit_nop_operands():
    assert one("nop(null, cond='never')") == alu()
    assert one("nop(ra1, r2, r3, cond='zs')") == alu(cond_add=2, waddr_add=1, add_a=R2, add_b=R3)


def test_unused_ports_read_nop_address():
    assert one("iadd(r0, r1, r2)") & 0xFFF000 == (NOP_ADDR << 18) | (NOP_ADDR << 12)
