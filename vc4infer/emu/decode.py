"""Predecoding: 64-bit instruction words -> one row of integer fields per instruction.

The compiled loop never extracts bit fields: it indexes `prog[i, C_*]`. Field positions come from
`isa` (ALU, branch, load-immediate and semaphore layouts); a few derived columns (destination with
the write swap applied, "touches machine-wide state") are computed here once per program.
"""
from __future__ import annotations

import numpy as np

from vc4infer.qpu import isa

(C_SIG, C_MODE, C_PM, C_PACK, C_CA, C_CM, C_SF, C_WS, C_WADD, C_WMUL, C_OPM, C_OPA, C_RA, C_RB,
 C_MUX_AA, C_MUX_AB, C_MUX_MA, C_MUX_MB, C_IMM, C_DADD, C_DMUL, C_BCOND, C_BREL, C_BREG, C_BRA,
 C_SHARED, C_N) = range(27)

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
# and SDRAM of the timing model) is ordered; the loop decides that at run time.
_SHARED_READS = (isa.ADDR_VPM, isa.ADDR_MUTEX)
_SHARED_WRITES = (isa.ADDR_VPM, isa.ADDR_VPM_SETUP, isa.ADDR_VPM_DMA, isa.ADDR_MUTEX) + tuple(
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
    return prog


def words_from_bytes(data) -> np.ndarray:
    """View little-endian program bytes as uint64 instruction words (trailing partial word dropped)."""
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    n = len(raw) // 8
    return raw[: n * 8].view("<u8").astype(np.uint64)
