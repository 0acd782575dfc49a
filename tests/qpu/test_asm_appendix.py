"""The spec's Appendix A vectors (words produced by running py-videocore's assembler): every line
must assemble to the same word, and the A.2 program to the same 14 words."""
# ruff: noqa: F821 - a @qpu function finds the DSL names in its globals while it runs
import pytest

from vc4infer.qpu import assemble, assemble_text, qpu

from spec_words import APPENDIX_A2_WORDS
from asm_guide_words import words_of

# (py-videocore source, word) from vc4-qpu-reference.md Appendix A.1
APPENDIX_A1 = [
    ("nop()", 0x10020827009E7000),
    ("mov(r0, r0, sig='thread end').mov(r0, r0)", 0x30024820959E7000),
    ("mov(host_interrupt, 1)", 0xD00209A7159C1FC0),
    ("ldi(ra0, 0x12345678)", 0xE002402712345678),
    ("ldi(r0, 1.0)", 0xE00248273F800000),
    ("ldi(r1, [0,1,2,3]*4)", 0xE6024867CCCCAAAA),
    ("ldi(r2, [-2,-1,0,1]*4)", 0xE20248A73333AAAA),
    ("iadd(r0, r1, r2)", 0x100228270C9E7280),
    ("fadd(ra1, ra2, rb3)", 0x1002206701083DC0),
    ("fmul(rb4, r0, 2.0)", 0xD00049C4209E1007),
    ("fadd(r0, r1, r2).fmul(r3, r4, ra5)", 0x10026823211672A6),
    ("mov(r0, uniform)", 0x1002082715827D80),
    ("mov(vpm, r0)", 0x10020C27159E7000),
    ("mov(r1, vpm)", 0x1002086715C27D80),
    ("rotate(r1, r0, 1)", 0xD00049E1809F1000),
    ("rotate(r1, r0, r5)", 0xD00049E1809F0000),
    ("rotate(r1, r0, -1)", 0xD00049E1809FF000),
    ("sema_up(3)", 0xE80249E700000003),
    ("sema_down(3)", 0xE80249E700000013),
    ("jmp(L.next)\nnop()\nnop()\nnop()\nL.next", 0xF0F809E700000000),
    ("L.self\njzc(L.self, link=ra1)", 0xF0180067FFFFFFE0),
    ("jmp(reg=ra3, absolute=True)", 0xF0F469E700000000),
    ("mutex_acquire()", 0x100209E715CE7D80),
    ("mutex_release()", 0x10020CE7159E7D80),
    ("mov(tmu0_s, r0)", 0x10020E27159E7000),
    ("nop(sig='load tmu0')", 0xA0020827009E7000),
    ("mov(sfu_recip, r0)", 0x10020D27159E7000),
    ("mov(uniforms_address, r0)", 0x10020A27159E7000),
    ("mov(broadcast, r0)", 0x10021967159E7000),
    ("mov(r5_pix0, r0)", 0x10020967159E7000),
    ("mov(null, vpm_ld_wait)", 0x100209E715CA7D80),
    ("mov(null, vpm_st_wait)", 0x100209E7159F2FC0),
    ("mov(vpm_st_addr, ra1)", 0x10021CA715067D80),
    ("iadd(ra0.pack('32 sat'), ra0, rb0)", 0x108220270C000DC0),
    ("mov(ra0.pack('16a'), r0)", 0x10120027159E7000),
    ("fmul(ra0, r0, 1.0, pack='8c')", 0xD16059C0209E0007),
    ("fadd(r0, r4.unpack('16b'), 0.0)", 0xD5022827019C09C0),
    ("mov(r0, ra1.unpack('8d'))", 0x1E02082715067D80),
    ("fadd(r0, r1, r2, cond='zs', set_flags=False)", 0x10040827019E7280),
    ("ftoi(r0, r1)", 0x10022827079E7200),
    ("setup_dma_load(nrows=16, ncols=16, mpitch=3, vpitch=1)", 0xE0024C6783001000),
    ("setup_vpm_read(nrows=16)", 0xE0024C6700001A00),
    ("setup_vpm_write()", 0xE0025C6700001A00),
    ("setup_dma_store(nrows=16, ncols=16)", 0xE0025C6788104000),
    ("setup_dma_store_stride(64)", 0xE0025C67C0000040),
    ("setup_dma_load_stride(128)", 0xE0024C6790000080),
]


@pytest.mark.parametrize("source,word", APPENDIX_A1, ids=[s.splitlines()[0] for s, _ in APPENDIX_A1])
def test_appendix_a1_vector(source, word):
    words = assemble_text(source).words
    branch_or_first = [w for w in words if w >> 60 == 0xF] or words[:1]
    assert branch_or_first[0] == word, f"{source}: 0x{branch_or_first[0]:016X} != 0x{word:016X}"


@qpu
def appendix_a2(asm):
    """py-videocore's test boilerplate: load one VPM row, add 1, store it."""
    setup_dma_load(nrows=1)
    start_dma_load(uniform)
    wait_dma_load()
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    mov(r0, vpm)
    iadd(vpm, r0, 1)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


APPENDIX_A2 = APPENDIX_A2_WORDS


def test_appendix_a2_program():
    assert words_of(assemble(appendix_a2)) == APPENDIX_A2


def test_assemble_returns_little_endian_bytes():
    code = assemble(appendix_a2)
    assert isinstance(code, bytes) and len(code) == 8 * len(APPENDIX_A2)
    assert code[:8] == bytes.fromhex("00100183674c02e0")  # 0xE0024C6783011000, low byte first
