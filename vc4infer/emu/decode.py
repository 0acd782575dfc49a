"""Predecoding: 64-bit instruction words -> one row of integer fields per instruction.

The compiled loop never extracts bit fields: it indexes `prog[i, C_*]`. Field positions come from
`isa` (ALU, branch, load-immediate and semaphore layouts); a few derived columns (destination with
the write swap applied, "touches machine-wide state", which operand sources the ops consume, "may
stall or block before issue") are computed here once per program.
"""
from __future__ import annotations

import numpy as np

from vc4infer.qpu import isa

(C_SIG, C_MODE, C_PM, C_PACK, C_CA, C_CM, C_SF, C_WS, C_WADD, C_WMUL, C_OPM, C_OPA, C_RA, C_RB,
 C_MUX_AA, C_MUX_AB, C_MUX_MA, C_MUX_MB, C_IMM, C_DADD, C_DMUL, C_BCOND, C_BREL, C_BREG, C_BRA,
 C_SHARED, C_USES, C_WAITS, C_FAST, C_N) = range(30)

# C_USES bits: which operand sources the ALU ops consume (muxes of ops with inputs)
USES_A, USES_B, USES_R4, ADD_USES_A, MUL_USES_A = 1, 2, 4, 8, 16
# C_FAST bits: the loop's fast path may run the instruction (FAST_RUN), which reads a uniform
# (FAST_UNIFORM) or touches the QPU's own I/O registers: DMA waits, VPM/DMA setups (FAST_IO)
FAST_NO, FAST_RUN, FAST_UNIFORM, FAST_IO = 0, 1, 2, 4

_ALU_COLUMNS = {
    C_MODE: "unpack", C_PM: "pm", C_PACK: "pack", C_CA: "cond_add", C_CM: "cond_mul", C_SF: "sf",
    C_WS: "ws", C_WADD: "waddr_add", C_WMUL: "waddr_mul", C_OPM: "op_mul", C_OPA: "op_add",
    C_RA: "raddr_a", C_RB: "raddr_b", C_MUX_AA: "add_a", C_MUX_AB: "add_b", C_MUX_MA: "mul_a",
    C_MUX_MB: "mul_b",
}
_BRANCH_COLUMNS = {C_BCOND: "cond_br", C_BREL: "rel", C_BREG: "reg", C_BRA: "raddr_a"}
# I/O addresses whose access touches state shared by all QPUs (VPM, DMA, TMU caches, mutex), so
# the loop runs them in global cycle order. Uniform reads are not among them: they read memory
# through the per-slice uniforms cache, which is not coherent with DMA stores of the same launch
# on the hardware either, so their data order against other QPUs' stores cannot matter to a
# correct program. Only a uniform read that enters a new cache line (and so uses the shared L2C
# and SDRAM of the timing model) is ordered; the loop decides that at run time. Nor are writes of
# the VPM and DMA setup registers: each QPU has its own (they take effect at the QPU's own next
# VPM access or DMA start, which is ordered).
_SHARED_READS = (isa.ADDR_VPM, isa.ADDR_MUTEX)
_SHARED_WRITES = (isa.ADDR_VPM, isa.ADDR_VPM_DMA, isa.ADDR_MUTEX) + tuple(
    range(isa.ADDR_TMU_FIRST, isa.ADDR_TMU_LAST + 1))


def _bits(words: np.ndarray, layout, name: str) -> np.ndarray:
    lsb, width = layout[name]
    return ((words >> np.uint64(lsb)) & np.uint64((1 << width) - 1)).astype(np.int64)


def predecode(words: np.ndarray) -> np.ndarray:
    """Decode uint64 instruction words into an int64 array of shape (len(words), C_N)."""
    words = np.asarray(words, dtype=np.uint64)
    prog = np.zeros((len(words), C_N), dtype=np.int64)
    sig = _bits(words, isa.ALU_FIELDS, "sig")
    prog[:, C_SIG] = sig
    for column, name in _ALU_COLUMNS.items():
        prog[:, column] = _bits(words, isa.ALU_FIELDS, name)
    for column, name in _BRANCH_COLUMNS.items():
        prog[:, column] = _bits(words, isa.BRANCH_FIELDS, name)
    imm = _bits(words, isa.LOAD_IMM_FIELDS, "immediate")
    is_branch = sig == isa.SIG_BRANCH
    # branch immediates are signed; load immediates are raw 32-bit patterns
    prog[:, C_IMM] = np.where(is_branch & (imm >= 1 << 31), imm - (1 << 32), imm)
    ws = prog[:, C_WS]
    prog[:, C_DADD] = ws * 64 + prog[:, C_WADD]
    prog[:, C_DMUL] = (1 - ws) * 64 + prog[:, C_WMUL]
    alu = sig <= isa.SIG_SMALL_IMM
    reads_b = sig < isa.SIG_SMALL_IMM
    shared = np.zeros(len(words), dtype=bool)
    for addr in _SHARED_READS:
        shared |= alu & (prog[:, C_RA] == addr)
        shared |= reads_b & (prog[:, C_RB] == addr)
    for addr in _SHARED_WRITES:
        shared |= (prog[:, C_WADD] == addr) | (prog[:, C_WMUL] == addr)
    is_sema = (sig == isa.SIG_LOAD_IMM) & (prog[:, C_MODE] == isa.LOAD_IMM_SEMAPHORE)
    shared |= is_sema
    prog[:, C_SHARED] = shared
    prog[:, C_USES] = np.where(alu, _operand_uses(prog), 0)
    # what the loop must check before issue: semaphores, ldtmu, reads of VPM / DMA wait / mutex,
    # DMA starts (queue full); every other instruction issues without those tests
    waits = is_sema | alu & ((sig == isa.SIG_LOAD_TMU0) | (sig == isa.SIG_LOAD_TMU1))
    for addr in (isa.ADDR_VPM, isa.ADDR_MUTEX):
        waits |= alu & (prog[:, C_RA] == addr) | reads_b & (prog[:, C_RB] == addr)
    waits |= ~is_branch & ((prog[:, C_WADD] == isa.ADDR_VPM_DMA) | (prog[:, C_WMUL] == isa.ADDR_VPM_DMA))
    dma_wait = alu & (prog[:, C_RA] == isa.ADDR_VPM_DMA) | reads_b & (prog[:, C_RB] == isa.ADDR_VPM_DMA)
    prog[:, C_WAITS] = waits | dma_wait
    prog[:, C_FAST] = _fast_path(prog, shared | waits)
    return prog


def _fast_path(prog: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """C_FAST per instruction: whether fastpath.run_burst may run it. It runs plain ALU
    instructions: no signal (or a small immediate that is not a rotation), no pack/unpack,
    operands from registers, accumulators, small immediates, uniforms or the DMA wait registers,
    results to registers, r0-r3, uniforms_address, the VPM/DMA setup registers or nowhere, any
    conditions and flag updates; and branches that link to registers, r0-r3 or nowhere and do not
    set flags. FAST_UNIFORM marks those that read a uniform: a read that enters a new cache line is
    a timed event on shared state, which the fast path runs only while its QPU is the one the
    general loop would run (the earliest). FAST_IO marks those that wait for a DMA or write a
    setup register: both touch only the QPU's own state."""
    sig, opa, opm = prog[:, C_SIG], prog[:, C_OPA], prog[:, C_OPM]
    ra, rb, uses = prog[:, C_RA], prog[:, C_RB], prog[:, C_USES]
    small_imm = sig == isa.SIG_SMALL_IMM
    fast = (sig == isa.SIG_NONE) | small_imm & ((rb < isa.SMALL_IMM_ROTATE_BY_R5) | (opm == 0))
    fast &= (prog[:, C_MODE] == 0) & (prog[:, C_PACK] == 0) & ~ordered
    r3 = isa.ACCUMULATOR_WADDR["r3"]
    writes_setup = np.zeros(len(prog), dtype=bool)
    for op, full in ((opa, prog[:, C_DADD]), (opm, prog[:, C_DMUL])):
        waddr = full & 63
        setup = (op != 0) & (waddr == isa.ADDR_VPM_SETUP)
        writes_setup |= setup
        fast &= (op == 0) | (waddr <= r3) | (waddr == isa.ADDR_NOP) | setup | \
            (full == isa.ADDR_UNIFORMS_ADDRESS)
    wait_a = ra == isa.ADDR_VPM_DMA
    wait_b = ~small_imm & (rb == isa.ADDR_VPM_DMA)
    a_ok = (ra < 32) | (ra == isa.ADDR_UNIFORM) | wait_a | (ra == isa.ADDR_NOP) & ((uses & USES_A) == 0)
    b_ok = small_imm | (rb < 32) | (rb == isa.ADDR_UNIFORM) | wait_b | \
        (rb == isa.ADDR_NOP) & ((uses & USES_B) == 0)
    fast &= a_ok & b_ok
    reads_uniform = (ra == isa.ADDR_UNIFORM) | ~small_imm & (rb == isa.ADDR_UNIFORM)
    # branches: conditions that exist, no flag update (raddr_a bit 0), link to a register, an
    # accumulator or nowhere
    branch = (sig == isa.SIG_BRANCH) & ((prog[:, C_BCOND] < 12) | (prog[:, C_BCOND] == isa.BRANCH_ALWAYS))
    branch &= ((prog[:, C_BRA] & 1) == 0) & ~ordered
    for full in (prog[:, C_DADD], prog[:, C_DMUL]):
        branch &= ((full & 63) <= r3) | ((full & 63) == isa.ADDR_NOP)
    alu_bits = FAST_RUN | np.where(reads_uniform, FAST_UNIFORM, 0) | \
        np.where(wait_a | wait_b | writes_setup, FAST_IO, 0)
    return np.where(branch, FAST_RUN, np.where(fast, alu_bits, FAST_NO))


def _operand_uses(prog: np.ndarray) -> np.ndarray:
    """C_USES bits per instruction, from the opcodes' input counts in isa."""
    n_add = np.full(32, 2, dtype=np.int64)       # reserved codes: as if both operands were read
    n_mul = np.zeros(8, dtype=np.int64)
    for op in isa.ADD_OPS:
        n_add[op.code] = op.n_inputs
    for op in isa.MUL_OPS:
        n_mul[op.code] = op.n_inputs
    na = n_add[prog[:, C_OPA]]
    nm = n_mul[prog[:, C_OPM]]

    def add_reads(mux):
        return (na >= 1) & (prog[:, C_MUX_AA] == mux) | (na == 2) & (prog[:, C_MUX_AB] == mux)

    def mul_reads(mux):
        return (nm >= 1) & (prog[:, C_MUX_MA] == mux) | (nm == 2) & (prog[:, C_MUX_MB] == mux)

    uses = np.zeros(len(prog), dtype=np.int64)
    for bit, mux in ((USES_A, isa.MUX_A), (USES_B, isa.MUX_B), (USES_R4, isa.MUX_R4)):
        uses |= np.where(add_reads(mux) | mul_reads(mux), bit, 0)
    uses |= np.where(add_reads(isa.MUX_A), ADD_USES_A, 0)
    uses |= np.where(mul_reads(isa.MUX_A), MUL_USES_A, 0)
    return uses


def words_from_bytes(data) -> np.ndarray:
    """View little-endian program bytes as uint64 instruction words (trailing partial word dropped)."""
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    n = len(raw) // 8
    return raw[: n * 8].view("<u8").astype(np.uint64)
