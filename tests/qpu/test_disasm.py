"""Disassembler: listings in the DSL's syntax that reassemble to identical words, raw lines for
words no DSL call produces, synthesised labels, decode -> encode identity (hypothesis)."""
# ruff: noqa: F821, B018, E702 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels; `nop(); nop()` as in its kernels
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vc4infer.qpu import assemble_program, assemble_text, disassemble, verify_roundtrip
from vc4infer.qpu.decode import ALU, BRANCH, LOAD_IMM, SEMAPHORE, decode, encode
from vc4infer.qpu.disasm import RoundTripError, line_for

import test_asm_appendix
import test_asm_encoding
import test_asm_macros
from asm_guide_words import alu, branch, load

# ---- listings of known words (expected text written by hand) ----------------------------------
KNOWN = [
    (0x10020827009E7000, "nop()"),
    (0x100009E7009E7000, "nop(null, cond='never')"),                  # Mesa's NOP
    (0x30024820959E7000, "mov(r0, r0, sig='thread end').mov(r0, r0)"),
    (0xD00209A7159C1FC0, "mov(host_interrupt, 1)"),
    (0xE00248273F800000, "ldi(r0, 0x3F800000)"),
    (0xE20248A73333AAAA, "ldi(r2, [-2, -1, 0, 1, -2, -1, 0, 1, -2, -1, 0, 1, -2, -1, 0, 1])"),
    (0x1002206701083DC0, "fadd(ra1, ra2, rb3)"),
    (0xD00049C4209E1007, "fmul(rb4, r0, 2.0)"),
    (0x10026823211672A6, "fadd(r0, r1, r2).fmul(r3, r4, ra5)"),
    (0xD00049E1809F0000, "rotate(r1, r0, r5)"),
    (0xD00049E1809FF000, "rotate(r1, r0, 15)"),
    (0xE80249E700000013, "sema_down(3)"),
    (0xF0F469E700000000, "jmp(absolute=True, reg=ra3)"),
    (0x10021CA715067D80, "mov(vpm_st_addr, ra1)"),
    (0x108220270C000DC0, "iadd(ra0.pack('32 sat'), ra0, rb0)"),
    (0xD16059C0209E0007, "fmul(ra0, r0, 1.0, pack='8c')"),
    (0xD5022827019C09C0, "fadd(r0, r4.unpack('16b'), 0)"),
    (0x10040827019E7280, "fadd(r0, r1, r2, set_flags=False, cond='zs')"),
    (0x10022827079E7200, "ftoi(r0, r1)"),
    (alu(cond_mul=1, waddr_mul=34, op_mul=6, mul_a=1, mul_b=3), "nop(null, cond='never').v8adds(r2, r1, r3)"),
    (alu(cond_mul=1, sf=1, waddr_mul=35, op_mul=1, mul_a=1, mul_b=2), "fmul(r3, r1, r2, set_flags=True)"),
]


@pytest.mark.parametrize("word,text", KNOWN, ids=[t for _, t in KNOWN])
def test_known_listing(word, text):
    line = line_for(word)
    assert (line.text, line.note) == (text, "")
    assert assemble_text(text).words == [word]


# ---- raw lines ---------------------------------------------------------------------------------
RAW = [
    (alu(cond_add=1, waddr_add=32, op_add=9), "reserved add-pipe opcode 9"),
    (alu(pm=1, pack=1, cond_mul=1, waddr_mul=32, op_mul=1), "reserved mul-pipe pack code 1"),
    (load(5, mode=2, waddr_add=32), "undefined load-immediate mode 2"),
    (load(5, cond_add=1, cond_mul=2, waddr_add=32), "different add and mul conditions"),
    (load(0x0000FFFF, mode=1, waddr_add=32), "signed per-element load whose values are all >= 0"),
    (branch(12, 0), "reserved branch condition 12"),
    (branch(15, 0, raddr_a=3), "raddr_a=3 in a branch that reads no register"),
    (branch(15, 4), "not a multiple of 8"),
    (branch(15, 0) | (0xF << 56), "don't-care bits"),
    (0xE80249E700000013 | (1 << 20), "don't-care bits"),                      # semaphore bits 31:5
    (alu(cond_add=1, waddr_add=32, op_add=12, raddr_a=5), "raddr_a=5 (DSL: 39)"),  # unused read port
    (alu(cond_add=1, ws=1, waddr_add=32, op_add=12), "ws=1 (DSL: 0)"),         # r0 written with ws=1
    (alu(cond_add=1, waddr_add=32, op_add=12, raddr_a=33, add_a=6), "raddr_a 33 is not a readable"),
    (alu(cond_add=1, waddr_add=32, op_add=12, raddr_b=32, add_a=7), "raddr_b=32 (DSL: 39)"),  # uniform via B
    (alu(sig=13, cond_add=1, waddr_add=33, op_add=21, raddr_b=5, add_a=1, add_b=1), "raddr_b=5 (DSL: 39)"),
    (alu(pm=1, cond_add=1, waddr_add=32, op_add=12), "pm=1 (DSL: 0)"),
]


@pytest.mark.parametrize("word,reason", RAW, ids=[r for _, r in RAW])
def test_raw_line_with_reason(word, reason):
    line = line_for(word)
    assert line.text == f"raw(0x{word & 0xFFFFFFFF:08X}, 0x{word >> 32:08X})"
    assert reason in line.note
    listing = disassemble([word])
    assert reason in listing
    assert assemble_text(listing).words == [word]


# ---- labels ------------------------------------------------------------------------------------
def test_branch_targets_get_labels():
    words = assemble_text("nop()\nL.top\nnop()\njzc(L.top)\nnop()\nnop()\nnop()\njmp(L.out)\nnop()\nnop()\n"
                          "nop()\nL.out").words
    listing = disassemble(words, addresses=False)
    assert listing.splitlines() == [
        "nop()", "L.L1", "nop()", "jzc(L.L1)", "nop()", "nop()", "nop()", "jmp(L.L10)", "nop()", "nop()",
        "nop()", "L.L10"]
    assert assemble_text(listing).words == words


def test_program_labels_keep_their_names():
    @__import__("vc4infer.qpu", fromlist=["qpu"]).qpu
    def kernel(asm):
        with namespace("outer"):
            L.loop
            nop()
            jmp(L.loop)
            nop(); nop(); nop()
        L.unused
    program = assemble_program(kernel)
    listing = disassemble(program, addresses=False)
    assert listing.splitlines()[0] == "L['outer.loop']"
    assert "jmp(L['outer.loop'])" in listing and listing.splitlines()[-1] == "L.unused"
    again = assemble_text(listing)
    assert again.words == program.words and again.labels == program.labels


def test_branches_outside_the_program_keep_offsets():
    words = [branch(15, 0x1000), branch(0, -0x100), branch(15, 0x40, rel=0), branch(15, 8, reg=1, raddr_a=2)]
    assert disassemble(words, addresses=False).splitlines() == [
        "jmp(4096)", "jzs(-256)", "jmp(0x00000040, absolute=True)", "jmp(8, reg=ra2)"]
    verify_roundtrip(words)


# ---- round trips of every program the assembler tests build ----------------------------------
def _test_programs():
    programs = [("appendix_a2", test_asm_appendix.appendix_a2),
                ("sgemm_k_loop", test_asm_macros.sgemm_k_loop),
                ("semaphore_join", test_asm_macros.semaphore_join)]
    return programs


@pytest.mark.parametrize("name,kernel", _test_programs(), ids=[n for n, _ in _test_programs()])
def test_roundtrip_kernels(name, kernel):
    args = (12,) if name == "semaphore_join" else ()
    program = assemble_program(kernel, *args)
    assert verify_roundtrip(program).words == program.words
    assert "raw(" not in disassemble(program)


def _snippets():
    out = [s for s, _ in test_asm_appendix.APPENDIX_A1]
    out += [c for c, *_ in test_asm_macros.VPM_READS + test_asm_macros.VPM_WRITES]
    out += [c for c, _ in test_asm_macros.DMA_LOADS + test_asm_macros.DMA_STORES]
    m = test_asm_encoding
    out += [f"{n}(r2, r1, r3)" for n in m.ADD_OPS]
    out += [f"iadd(r0, r1, r2).{n}(r3, ra4, rb5)" for n in m.MUL_OPS]
    out += [f"iadd(r0, r1, r2, sig={s!r})" for s in m.SIGNALS]
    out += [f"fmul(r0, r1, r2, cond={c!r})" for c in m.CONDITIONS]
    out += [f"{op}(ra3.pack({p!r}), r1, r2)" for p in m.A_PACKS for op in ("iadd", "fmul")]
    out += [f"fmul(r1, r2, r3, pack={p!r})" for p in m.MUL_PACKS]
    out += [f"fadd(r0, {reg}.unpack({u!r}), r1)" for u in m.UNPACKS for reg in ("ra7", "r4")]
    out += [f"iadd(r0, r1, {v!r})" for v, _ in m.SMALL_IMMEDIATES]
    out += [f"mov(r2, {n - 16}).rotate(r1, r0, {n})" for n in range(1, 16)]
    out += ["mov(r2, -16).rotate(r1, r0, r5)"]
    out += [f"iadd(r0, {n}, r1)" for n, _, _ in m.READS] + [f"fmul({n}, r1, r2)" for n, _, _ in m.WRITES]
    out += [f"iadd({n}, r1, r2)" for n, _, _ in m.WRITES]
    out += [f"{b}(64, link=rb3)" for _, b in m.BRANCH_CODES]
    return out


def test_roundtrip_every_assembler_test_snippet():
    snippets = _snippets()
    program = assemble_text("\n".join(snippets))
    listing = disassemble(program)
    assert "raw(" not in listing
    assert assemble_text(listing).words == program.words


def test_verify_roundtrip_reports_a_mismatch(monkeypatch):
    import vc4infer.qpu.disasm as disasm_module
    monkeypatch.setattr(disasm_module, "disassemble", lambda program: "nop()\n")
    with pytest.raises(RoundTripError, match="instruction 0"):
        verify_roundtrip([0x10020827009E7001])


# ---- decode ------------------------------------------------------------------------------------
def test_decode_formats_and_fields():
    inst = decode(0xF0180067FFFFFFE0)
    assert inst.kind == BRANCH and inst.cond_br == 1 and inst.rel == 1 and inst.waddr_add == 1
    assert inst.immediate == 0xFFFFFFE0 and inst.writes() == [("add", "a", 1)]
    inst = decode(0x10026823211672A6)
    assert inst.kind == ALU and inst.add_op.name == "fadd" and inst.mul_op.name == "fmul"
    assert inst.reads() == [("a", 5)] and inst.writes() == [("add", "a", 32), ("mul", "b", 35)]
    assert decode(0xE80249E700000013).kind == SEMAPHORE and decode(0xE80249E700000013).sa == 1
    assert decode(0xE0024C6700001A00).kind == LOAD_IMM
    rot = decode(0xD00049E1809F1000)
    assert rot.small_imm == 49 and rot.rotation == 1 and decode(0xD00049E1809F0000).rotation == 0
    assert decode(0xD00209A7159C1FC0).rotation is None and decode(0xD00209A7159C1FC0).reads() == []
    assert decode(alu(op_add=9)).add_op is None


WORDS = st.integers(min_value=0, max_value=(1 << 64) - 1)


@given(WORDS)
def test_decode_encode_identity(word):
    assert encode(decode(word)) == word


def _plausible_alu():
    """Random ALU words whose fields mostly take values the DSL emits (so that most disassemble
    to DSL calls, not raw lines)."""
    small = st.integers(0, 7)
    return st.builds(
        lambda sig, unpack, pm, pack, ca, cm, sf, ws, wa, wm, om, oa, ra, rb, m: alu(
            sig=sig, unpack=unpack, pm=pm, pack=pack, cond_add=ca, cond_mul=cm, sf=sf, ws=ws,
            waddr_add=wa, waddr_mul=wm, op_mul=om, op_add=oa, raddr_a=ra, raddr_b=rb,
            add_a=m[0], add_b=m[1], mul_a=m[2], mul_b=m[3]),
        st.sampled_from([1, 1, 1, 3, 10, 13]), st.sampled_from([0, 0, 1, 7]), st.integers(0, 1),
        st.sampled_from([0, 0, 1, 4, 8]), small, small, st.integers(0, 1), st.integers(0, 1),
        st.sampled_from([32, 39, 0, 5, 48, 37, 49]), st.sampled_from([39, 33, 1, 56, 37]),
        small, st.sampled_from([0, 1, 12, 21, 7, 30]), st.sampled_from([39, 39, 3, 32, 48]),
        st.sampled_from([39, 39, 4, 32, 50, 1, 52]), st.lists(small, min_size=4, max_size=4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(WORDS, _plausible_alu()), min_size=1, max_size=40))
def test_random_words_disassemble_and_reassemble_identically(words):
    assert verify_roundtrip(words).words == words


# ---- random DSL programs: everything the assembler emits must disassemble without raw lines ------
def _pools():
    import vc4infer.qpu as q
    sources = [q.r0, q.r1, q.r3, q.r4, q.r5, q.ra0, q.ra7, q.rb3, q.rb31, q.uniform, q.vpm, q.element_number,
               q.qpu_number, q.vpm_ld_wait, q.null, q.ra2.unpack("16b"), q.r4.unpack("8d"), 1, -3, 15, 2.0,
               0.5, 0.0]
    dests = [q.r0, q.r3, q.ra1, q.rb2, q.vpm, q.broadcast, q.r5_pix0, q.tmu0_s, q.sfu_recip, q.null,
             q.ra4.pack("16a"), q.ra5.pack("32 sat"), q.host_interrupt, q.vpmvcd_wr_setup, q.vpm_ld_addr]
    return sources, dests


SOURCES, DESTS = _pools()
CONDS = ["always", "always", "never", "zs", "nc", "cc"]
SIGS = ["no signal", "no signal", "thread end", "load tmu0", "thread switch", "breakpoint"]


def _add_names():
    from vc4infer.qpu import isa
    return [op.name for op in isa.ADD_OPS], [op.name for op in isa.MUL_OPS], \
        [c.name for c in isa.BRANCH_CONDITIONS]


ADD_NAMES, MUL_NAMES, BRANCH_NAMES = _add_names()


@st.composite
def dsl_instruction(draw):
    kind = draw(st.sampled_from(["add", "add", "dual", "mul", "mov", "rotate", "ldi", "sema", "branch"]))
    src, dst = st.sampled_from(SOURCES), st.sampled_from(DESTS)
    cond, sig = draw(st.sampled_from(CONDS)), draw(st.sampled_from(SIGS))
    if kind in ("add", "dual", "mov"):
        name = "mov" if kind == "mov" else draw(st.sampled_from(ADD_NAMES))
        args = (draw(dst), draw(src)) if kind == "mov" else (draw(dst), draw(src), draw(src))
        kwargs = {"cond": cond, "sig": sig, "set_flags": draw(st.booleans())}
        mul = None
        if kind == "dual":
            mul = (draw(st.sampled_from(MUL_NAMES + ["mov", "rotate"])), draw(dst), draw(src), draw(src),
                   draw(st.sampled_from(CONDS)), draw(st.sampled_from([0, 0, 3, -1, "r5"])),
                   draw(st.sampled_from(["nop", "nop", "8a", "rep 8"])))

        def emit(asm):
            issue = getattr(asm, name)(*args, **kwargs)
            if mul is not None:
                op, d, a, b, c, rot, pack = mul
                rot = asm.r5 if rot == "r5" else rot
                if op == "mov":
                    issue.mov(d, a, cond=c)
                elif op == "rotate":
                    issue.rotate(d, a, rot if rot else 1, cond=c)
                else:
                    getattr(issue, op)(d, a, b, cond=c, rotate=rot, pack=pack)
        return emit
    if kind in ("mul", "rotate"):
        name = draw(st.sampled_from([n for n in MUL_NAMES if n not in ADD_NAMES]))
        d, a, b = draw(dst), draw(src), draw(src)
        rot = draw(st.sampled_from([0, 2, -5, "r5"]))
        pack = draw(st.sampled_from(["nop", "8b"]))
        flags = draw(st.booleans())

        def emit(asm):
            r = asm.r5 if rot == "r5" else rot
            if kind == "rotate":
                asm.rotate(d, a, r if r else 4, cond=cond, sig=sig)
            else:
                getattr(asm, name)(d, a, b, cond=cond, sig=sig, rotate=r, pack=pack, set_flags=flags)
        return emit
    if kind == "ldi":
        value = draw(st.one_of(st.integers(-(1 << 31), (1 << 32) - 1), st.floats(width=32, allow_nan=False),
                               st.lists(st.integers(0, 3), max_size=16),
                               st.lists(st.integers(-2, 1), max_size=16)))
        two = draw(st.booleans())
        d1, d2, flags = draw(dst), draw(dst), draw(st.booleans())
        return lambda asm: asm.ldi(*((d1, d2, value) if two else (d1, value)), cond=cond, set_flags=flags)
    if kind == "sema":
        n, up = draw(st.integers(0, 15)), draw(st.booleans())
        return lambda asm: (asm.sema_up if up else asm.sema_down)(n)
    name = draw(st.sampled_from(BRANCH_NAMES))
    offset = 8 * draw(st.integers(-1000, 1000))
    kwargs = {}
    if draw(st.booleans()):
        kwargs["reg"] = draw(st.sampled_from([SOURCES[5], SOURCES[6]]))
    if draw(st.booleans()):
        kwargs["absolute"] = True
        offset &= 0xFFFFFFFF
    if draw(st.booleans()):
        kwargs["link"] = draw(st.sampled_from([DESTS[0], DESTS[2], DESTS[3]]))
    return lambda asm: getattr(asm, name)(offset, **kwargs)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(dsl_instruction(), min_size=1, max_size=30))
def test_random_dsl_programs_roundtrip_without_raw_lines(instructions):
    from hypothesis import assume

    from vc4infer.qpu import AssembleError, Assembler
    asm = Assembler()
    for emit in instructions:
        before = len(asm.program().words)
        try:
            emit(asm)
        except AssembleError:
            continue               # not encodable: the assembler said so; nothing to round-trip
        assert len(asm.program().words) == before + 1      # each drawn instruction is one word
    words = asm.program().words
    assume(words)                  # hypothesis fails the test when too few programs get this far
    listing = disassemble(words)
    assert "raw(" not in listing, listing
    assert assemble_text(listing).words == words
