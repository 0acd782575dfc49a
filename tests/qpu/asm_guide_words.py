"""Expected instruction words built by hand from the reference guide's format tables
(AG p.26-27 Figure 3 / Table 1, p.33-34 Figures 5-7; digest §2.1), independently of
vc4infer.qpu.isa, so the assembler tests compare against the guide and not against our own tables.

Defaults are what py-videocore puts into unused fields: unused read ports 39 (NOP), the unused
pipe writes 39 under cond never, sig 1 (no signal).
"""

NOP_ADDR = 39


def _put(word, value, hi, lo):
    width = hi - lo + 1
    assert 0 <= value < (1 << width), (value, hi, lo)
    return word | (value << lo)


def alu(sig=1, unpack=0, pm=0, pack=0, cond_add=0, cond_mul=0, sf=0, ws=0, waddr_add=NOP_ADDR,
        waddr_mul=NOP_ADDR, op_mul=0, op_add=0, raddr_a=NOP_ADDR, raddr_b=NOP_ADDR,
        add_a=0, add_b=0, mul_a=0, mul_b=0):
    """ALU word: sig 63:60, unpack 59:57, pm 56, pack 55:52, cond_add 51:49, cond_mul 48:46,
    sf 45, ws 44, waddr_add 43:38, waddr_mul 37:32, op_mul 31:29, op_add 28:24, raddr_a 23:18,
    raddr_b 17:12, add_a 11:9, add_b 8:6, mul_a 5:3, mul_b 2:0."""
    w = 0
    for value, hi, lo in ((sig, 63, 60), (unpack, 59, 57), (pm, 56, 56), (pack, 55, 52),
                          (cond_add, 51, 49), (cond_mul, 48, 46), (sf, 45, 45), (ws, 44, 44),
                          (waddr_add, 43, 38), (waddr_mul, 37, 32), (op_mul, 31, 29), (op_add, 28, 24),
                          (raddr_a, 23, 18), (raddr_b, 17, 12), (add_a, 11, 9), (add_b, 8, 6),
                          (mul_a, 5, 3), (mul_b, 2, 0)):
        w = _put(w, value, hi, lo)
    return w


def load(immediate, mode=0, pm=0, pack=0, cond_add=1, cond_mul=1, sf=0, ws=0, waddr_add=NOP_ADDR,
         waddr_mul=NOP_ADDR):
    """Load-immediate word: sig 14, mode 59:57, then as ALU down to bit 32, immediate 31:0."""
    w = 0
    for value, hi, lo in ((14, 63, 60), (mode, 59, 57), (pm, 56, 56), (pack, 55, 52), (cond_add, 51, 49),
                          (cond_mul, 48, 46), (sf, 45, 45), (ws, 44, 44), (waddr_add, 43, 38),
                          (waddr_mul, 37, 32), (immediate & 0xFFFFFFFF, 31, 0)):
        w = _put(w, value, hi, lo)
    return w


def semaphore(number, decrement):
    """Semaphore word: sig 14, mode 100, cond 1/1, waddr 39/39, sa bit 4, semaphore 3:0."""
    w = load(0, mode=4, waddr_add=NOP_ADDR, waddr_mul=NOP_ADDR)
    return _put(_put(w, int(decrement), 4, 4), number, 3, 0)


def branch(cond_br, immediate=0, rel=1, reg=0, raddr_a=0, ws=0, waddr_add=NOP_ADDR, waddr_mul=NOP_ADDR):
    """Branch word: sig 15, cond_br 55:52, rel 51, reg 50, raddr_a 49:45, ws 44, waddr_add 43:38,
    waddr_mul 37:32, immediate 31:0."""
    w = 0
    for value, hi, lo in ((15, 63, 60), (cond_br, 55, 52), (rel, 51, 51), (reg, 50, 50), (raddr_a, 49, 45),
                          (ws, 44, 44), (waddr_add, 43, 38), (waddr_mul, 37, 32),
                          (immediate & 0xFFFFFFFF, 31, 0)):
        w = _put(w, value, hi, lo)
    return w


def words_of(code: bytes):
    """Little-endian 64-bit words of assembled code."""
    return [int.from_bytes(code[i:i + 8], "little") for i in range(0, len(code), 8)]
