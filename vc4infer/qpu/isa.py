"""The VideoCore IV QPU instruction set: every encoding table, once.

The assembler, disassembler, hazard checker and emulator all read this module and none of them
restates a fact from it. Everything here comes from the Broadcom "VideoCore IV 3D Architecture
Reference Guide" (2013), with its errata as corrected by hardware tests (page numbers as [AG p.N]).
Names follow py-videocore where it names a thing, so that its kernels assemble unchanged.

An instruction is one 64-bit word (stored little-endian, low 32 bits first). Bit 0 is the LSB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Tuple

# --------------------------------------------------------------------------------------------
# Instruction formats [AG p.26-27, 33-34]: field name -> (lsb, width)
# --------------------------------------------------------------------------------------------
Layout = Mapping[str, Tuple[int, int]]

ALU_FIELDS: Layout = {
    "sig": (60, 4), "unpack": (57, 3), "pm": (56, 1), "pack": (52, 4),
    "cond_add": (49, 3), "cond_mul": (46, 3), "sf": (45, 1), "ws": (44, 1),
    "waddr_add": (38, 6), "waddr_mul": (32, 6), "op_mul": (29, 3), "op_add": (24, 5),
    "raddr_a": (18, 6), "raddr_b": (12, 6),   # raddr_b holds the small immediate when sig = 13
    "add_a": (9, 3), "add_b": (6, 3), "mul_a": (3, 3), "mul_b": (0, 3),
}
BRANCH_FIELDS: Layout = {
    "sig": (60, 4), "cond_br": (52, 4), "rel": (51, 1), "reg": (50, 1),
    # raddr_a is 5 bits here (regfile A 0-31); its bit 0 shares bit 45 with `sf` of the ALU
    # formats and, measured on hardware, makes the branch set flags when odd.
    "raddr_a": (45, 5), "ws": (44, 1), "waddr_add": (38, 6), "waddr_mul": (32, 6),
    "immediate": (0, 32),
}
LOAD_IMM_FIELDS: Layout = {
    "sig": (60, 4), "mode": (57, 3), "pm": (56, 1), "pack": (52, 4),
    "cond_add": (49, 3), "cond_mul": (46, 3), "sf": (45, 1), "ws": (44, 1),
    "waddr_add": (38, 6), "waddr_mul": (32, 6), "immediate": (0, 32),
}
SEMAPHORE_FIELDS: Layout = {
    "sig": (60, 4), "mode": (57, 3), "pm": (56, 1), "pack": (52, 4),
    "cond_add": (49, 3), "cond_mul": (46, 3), "sf": (45, 1), "ws": (44, 1),
    "waddr_add": (38, 6), "waddr_mul": (32, 6), "sa": (4, 1), "semaphore": (0, 4),
}


class EncodingError(ValueError):
    """A field value does not fit its field."""


def encode_fields(layout: Layout, **values: int) -> int:
    """Pack named field values into a 64-bit word; missing fields are 0."""
    word = 0
    for name, value in values.items():
        lsb, width = layout[name]
        if not 0 <= value < (1 << width):
            raise EncodingError(f"{name}={value} does not fit in {width} bits")
        word |= value << lsb
    return word


def decode_fields(layout: Layout, word: int) -> Dict[str, int]:
    """Unpack every field of `layout` from a 64-bit word."""
    return {name: (word >> lsb) & ((1 << width) - 1) for name, (lsb, width) in layout.items()}


def field(word: int, layout: Layout, name: str) -> int:
    lsb, width = layout[name]
    return (word >> lsb) & ((1 << width) - 1)


# --------------------------------------------------------------------------------------------
# Signals [AG p.29 Table 4]; names as py-videocore spells them
# --------------------------------------------------------------------------------------------
SIGNALS: Tuple[str, ...] = (
    "breakpoint", "no signal", "thread switch", "thread end", "wait scoreboard",
    "unlock scoreboard", "last thread switch", "load coverage", "load color",
    "load color and thread end", "load tmu0", "load tmu1", "load alpha", "alu small imm",
    "load", "branch",
)
SIGNAL_CODES: Dict[str, int] = {name: code for code, name in enumerate(SIGNALS)}
SIG_BREAKPOINT, SIG_NONE, SIG_THREAD_SWITCH, SIG_THREAD_END = 0, 1, 2, 3
SIG_LAST_THREAD_SWITCH = 6
SIG_LOAD_TMU0, SIG_LOAD_TMU1 = 10, 11
SIG_SMALL_IMM, SIG_LOAD_IMM, SIG_BRANCH = 13, 14, 15
#: signals that write r4 (TMU and tile-buffer loads)
SIGNALS_WRITING_R4 = frozenset({7, 8, 9, 10, 11, 12})
#: signals that end the program (thread end, and its fragment-shader colour-load variant)
SIGNALS_ENDING_PROGRAM = frozenset({3, 9})
#: signals only fragment shaders may use; user programs have no tile buffer or scoreboard
SIGNALS_FRAGMENT_ONLY = frozenset({4, 5, 7, 8, 9, 12})

# Load-immediate word modes (the unpack field of a sig-14 word) [AG p.33]
LOAD_IMM_32 = 0
LOAD_IMM_PER_ELEMENT_SIGNED = 1
LOAD_IMM_PER_ELEMENT_UNSIGNED = 3
LOAD_IMM_SEMAPHORE = 4

# --------------------------------------------------------------------------------------------
# Conditions [AG p.28 Table 2, p.35 Table 11]
# --------------------------------------------------------------------------------------------
CONDITIONS: Tuple[str, ...] = ("never", "always", "zs", "zc", "ns", "nc", "cs", "cc")
CONDITION_CODES: Dict[str, int] = {name: code for code, name in enumerate(CONDITIONS)}
COND_NEVER, COND_ALWAYS = 0, 1


@dataclass(frozen=True)
class BranchCondition:
    code: int
    name: str          # py-videocore's jump name
    flag: str          # "z", "n", "c", or "" for always
    flag_set: bool     # branch when the flag is set (True) or clear (False)
    any_element: bool  # any of the 16 elements (True) or all of them (False)


BRANCH_CONDITIONS: Tuple[BranchCondition, ...] = tuple(
    BranchCondition(code, f"j{flag}{'s' if is_set else 'c'}{'_any' if any_ else ''}", flag, is_set, any_)
    for code, (flag, any_, is_set) in enumerate(
        (f, a, s) for f in "znc" for a in (False, True) for s in (True, False))
) + (BranchCondition(15, "jmp", "", True, False),)
BRANCH_CONDITION_CODES: Dict[str, int] = {c.name: c.code for c in BRANCH_CONDITIONS}
BRANCH_ALWAYS = 15
BRANCH_DELAY_SLOTS = 3           # instructions after a branch that always execute [AG p.34]
BRANCH_LINK_OFFSET_BYTES = 32    # link value and relative base = branch address + 4 instructions

# --------------------------------------------------------------------------------------------
# ALU opcodes [AG p.35-36 Tables 12-13]
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AluOp:
    code: int
    name: str          # py-videocore's name
    pipe: str          # "add" or "mul"
    n_inputs: int      # 0 (nop), 1 (a only) or 2
    float_in: bool     # operands are floats (regfile-A unpack converts to float for these)
    float_out: bool    # result is a float (regfile-A pack converts to float16 for these)


def _ops(pipe: str, rows) -> Tuple[AluOp, ...]:
    return tuple(AluOp(code, name, pipe, n, fi, fo) for code, name, n, fi, fo in rows)


ADD_OPS: Tuple[AluOp, ...] = _ops("add", (
    (0, "nop", 0, False, False),
    (1, "fadd", 2, True, True), (2, "fsub", 2, True, True),
    (3, "fmin", 2, True, True), (4, "fmax", 2, True, True),
    (5, "fminabs", 2, True, True), (6, "fmaxabs", 2, True, True),
    (7, "ftoi", 1, True, False), (8, "itof", 1, False, True),
    (12, "iadd", 2, False, False), (13, "isub", 2, False, False),
    (14, "shr", 2, False, False), (15, "asr", 2, False, False),
    (16, "ror", 2, False, False), (17, "shl", 2, False, False),
    (18, "imin", 2, False, False), (19, "imax", 2, False, False),
    (20, "band", 2, False, False), (21, "bor", 2, False, False),
    (22, "bxor", 2, False, False), (23, "bnot", 1, False, False),
    (24, "clz", 1, False, False),
    (30, "v8adds", 2, False, False), (31, "v8subs", 2, False, False),
))
MUL_OPS: Tuple[AluOp, ...] = _ops("mul", (
    (0, "nop", 0, False, False), (1, "fmul", 2, True, True), (2, "imul24", 2, False, False),
    (3, "v8muld", 2, False, False), (4, "v8min", 2, False, False), (5, "v8max", 2, False, False),
    (6, "v8adds", 2, False, False), (7, "v8subs", 2, False, False),
))
ADD_OP_BY_NAME: Dict[str, AluOp] = {op.name: op for op in ADD_OPS}
MUL_OP_BY_NAME: Dict[str, AluOp] = {op.name: op for op in MUL_OPS}
ADD_OP_BY_CODE: Dict[int, AluOp] = {op.code: op for op in ADD_OPS}
MUL_OP_BY_CODE: Dict[int, AluOp] = {op.code: op for op in MUL_OPS}
#: the idioms for "move": `bor d, x, x` on the add pipe, `v8min d, x, x` on the mul pipe
ADD_MOV, MUL_MOV = "bor", "v8min"

# --------------------------------------------------------------------------------------------
# Input muxes [AG p.28 Table 3]
# --------------------------------------------------------------------------------------------
MUX_R0, MUX_R1, MUX_R2, MUX_R3, MUX_R4, MUX_R5, MUX_A, MUX_B = range(8)
MUX_NAMES: Tuple[str, ...] = ("r0", "r1", "r2", "r3", "r4", "r5", "A", "B")

# --------------------------------------------------------------------------------------------
# Small immediates [AG p.29-30 Table 5]: code -> 32-bit value as read by an operand
# --------------------------------------------------------------------------------------------


def _f32_bits(x: float) -> int:
    import struct
    return struct.unpack("<I", struct.pack("<f", x))[0]


SMALL_IMM_BITS: Tuple[int, ...] = tuple(
    [i for i in range(16)]                                   # 0..15
    + [(i + (1 << 32)) & 0xFFFFFFFF for i in range(-16, 0)]   # 16..31: -16..-1
    + [_f32_bits(2.0 ** i) for i in range(8)]                # 32..39: 1.0 .. 128.0
    + [_f32_bits(2.0 ** i) for i in range(-8, 0)]            # 40..47: 1/256 .. 1/2
    # 48..63 request a mul-pipe rotation; read as an operand they give -16..-1
    # (found by the vc4asm author, confirmed by py-videocore's hardware test rotate_as_simm).
    + [(i - 64 + (1 << 32)) & 0xFFFFFFFF for i in range(48, 64)]
)
SMALL_IMM_INT_CODES: Dict[int, int] = {i: i & 31 for i in range(-16, 16)}
SMALL_IMM_FLOAT_CODES: Dict[float, int] = {2.0 ** i: 32 + i for i in range(8)}
SMALL_IMM_FLOAT_CODES.update({2.0 ** i: 48 + i for i in range(-8, 0)})
SMALL_IMM_ROTATE_BY_R5 = 48     # rotate by r5 element 0, bits 3:0
SMALL_IMM_ROTATE_FIRST = 49     # codes 49..63 rotate upward by 1..15


def small_imm_rotation(code: int) -> int:
    """Rotation amount requested by a small-immediate code: -1 for none, 0 for "by r5", else 1..15."""
    if code < SMALL_IMM_ROTATE_BY_R5:
        return -1
    return code - SMALL_IMM_ROTATE_BY_R5


# --------------------------------------------------------------------------------------------
# Pack and unpack [AG p.30-32 Tables 6-9, with the Table 9 erratum fixed]
# --------------------------------------------------------------------------------------------
#: regfile-A pack (pm = 0); bytes written per mode for partial-width packs
REGFILE_A_PACKS: Tuple[str, ...] = (
    "nop", "16a", "16b", "rep 8", "8a", "8b", "8c", "8d",
    "32 sat", "16a sat", "16b sat", "rep 8 sat", "8a sat", "8b sat", "8c sat", "8d sat",
)
#: MUL-pipe colour pack (pm = 1): float -> 8-bit colour; codes 1, 2 and 8-15 are reserved
MUL_PACKS: Dict[str, int] = {"nop": 0, "rep 8": 3, "8a": 4, "8b": 5, "8c": 6, "8d": 7}
#: regfile-A unpack (pm = 0) and r4 unpack (pm = 1) share these codes
UNPACKS: Tuple[str, ...] = ("nop", "16a", "16b", "rep 8d", "8a", "8b", "8c", "8d")
REGFILE_A_PACK_CODES = {name: code for code, name in enumerate(REGFILE_A_PACKS)}
UNPACK_CODES = {name: code for code, name in enumerate(UNPACKS)}
#: which bytes of the 32-bit destination a pack mode writes (bit i = byte i); others keep their value
PACK_BYTE_MASK: Tuple[int, ...] = (0xF, 0x3, 0xC, 0xF, 0x1, 0x2, 0x4, 0x8) * 2
MUL_PACK_BYTE_MASK: Dict[int, int] = {0: 0xF, 3: 0xF, 4: 0x1, 5: 0x2, 6: 0x4, 7: 0x8}

# --------------------------------------------------------------------------------------------
# Register address map [AG p.37-38 Table 14]
# --------------------------------------------------------------------------------------------
READ_A, READ_B, WRITE_A, WRITE_B = 8, 4, 2, 1
READ_AB, WRITE_AB = READ_A | READ_B, WRITE_A | WRITE_B


@dataclass(frozen=True)
class IoRegister:
    name: str     # py-videocore's name
    addr: int     # 32..63
    spaces: int   # READ_A | READ_B | WRITE_A | WRITE_B bits where the name is valid


IO_REGISTERS: Tuple[IoRegister, ...] = tuple(IoRegister(*row) for row in (
    ("uniform", 32, READ_AB),
    ("varying_read", 35, READ_AB),
    ("tmu_noswap", 36, WRITE_AB),
    ("r5_pix0", 37, WRITE_A),          # r5: replicate element 0 of each quad
    ("broadcast", 37, WRITE_B),        # r5: replicate element 0 to all 16
    ("host_interrupt", 38, WRITE_AB),
    ("element_number", 38, READ_A),
    ("qpu_number", 38, READ_B),
    ("null", 39, READ_AB | WRITE_AB),
    ("uniforms_address", 40, WRITE_A),
    ("uniforms_address_rel", 40, WRITE_B),  # B-space write: relative (Linux validator, vc4asm)
    ("x_pixel_coord", 41, READ_A), ("y_pixel_coord", 41, READ_B),
    ("quad_x", 41, WRITE_A), ("quad_y", 41, WRITE_B),
    ("ms_flags", 42, READ_A | WRITE_A), ("rev_flag", 42, READ_B | WRITE_B),
    ("tlb_stencil_setup", 43, WRITE_AB), ("tlb_z", 44, WRITE_AB),
    ("tlb_color_ms", 45, WRITE_AB), ("tlb_color_all", 46, WRITE_AB),
    ("tlb_alpha_mask", 47, WRITE_AB),
    ("vpm", 48, READ_AB | WRITE_AB),
    ("vpm_ld_busy", 49, READ_A), ("vpm_st_busy", 49, READ_B),
    ("vpmvcd_rd_setup", 49, WRITE_A), ("vpmvcd_wr_setup", 49, WRITE_B),
    ("vpm_ld_wait", 50, READ_A), ("vpm_st_wait", 50, READ_B),
    ("vpm_ld_addr", 50, WRITE_A), ("vpm_st_addr", 50, WRITE_B),
    ("mutex", 51, READ_AB | WRITE_AB),
    ("sfu_recip", 52, WRITE_AB), ("sfu_recipsqrt", 53, WRITE_AB),
    ("sfu_exp2", 54, WRITE_AB), ("sfu_log2", 55, WRITE_AB),
    ("tmu0_s", 56, WRITE_AB), ("tmu0_t", 57, WRITE_AB), ("tmu0_r", 58, WRITE_AB), ("tmu0_b", 59, WRITE_AB),
    ("tmu1_s", 60, WRITE_AB), ("tmu1_t", 61, WRITE_AB), ("tmu1_r", 62, WRITE_AB), ("tmu1_b", 63, WRITE_AB),
))
IO_REGISTER_BY_NAME: Dict[str, IoRegister] = {r.name: r for r in IO_REGISTERS}

# Accumulators: r0-r3 are written at 32-35 in either space and read through muxes 0-3;
# r4 and r5 are read through muxes 4 and 5; r4 has no write address, r5 is written at 37.
ACCUMULATOR_WADDR: Dict[str, int] = {"r0": 32, "r1": 33, "r2": 34, "r3": 35}
ACCUMULATOR_MUX: Dict[str, int] = {"r0": 0, "r1": 1, "r2": 2, "r3": 3, "r4": 4, "r5": 5}

# Addresses other modules test for (values of the table above)
REGFILE_SIZE = 32
ADDR_UNIFORM = 32
ADDR_VARYING = 35
ADDR_TMU_NOSWAP = 36
ADDR_R5 = 37
ADDR_HOST_INT = 38              # write; read: element_number (A) / qpu_number (B)
ADDR_ELEMENT_NUMBER = ADDR_QPU_NUMBER = 38
ADDR_NOP = 39
ADDR_UNIFORMS_ADDRESS = 40
ADDR_TLB_FIRST, ADDR_TLB_LAST = 43, 47
ADDR_VPM = 48
ADDR_VPM_SETUP = 49             # write: rd setup (A) / wr setup (B); read: ld busy (A) / st busy (B)
ADDR_VPM_DMA = 50               # write: ld addr (A) / st addr (B); read: ld wait (A) / st wait (B)
ADDR_MUTEX = 51
ADDR_SFU_RECIP, ADDR_SFU_RECIPSQRT, ADDR_SFU_EXP2, ADDR_SFU_LOG2 = 52, 53, 54, 55
ADDR_SFU_FIRST, ADDR_SFU_LAST = 52, 55
ADDR_TMU0_S, ADDR_TMU0_B, ADDR_TMU1_S, ADDR_TMU1_B = 56, 59, 60, 63
ADDR_TMU_FIRST, ADDR_TMU_LAST = 56, 63


def read_names(addr: int, space: str) -> Tuple[str, ...]:
    """Names of what reading `addr` in regfile space "a" or "b" gives (for the disassembler)."""
    if addr < REGFILE_SIZE:
        return (f"r{space}{addr}",)
    flag = READ_A if space == "a" else READ_B
    return tuple(r.name for r in IO_REGISTERS if r.addr == addr and r.spaces & flag)


def write_names(addr: int, space: str) -> Tuple[str, ...]:
    """Names of what writing `addr` in regfile space "a" or "b" reaches."""
    if addr < REGFILE_SIZE:
        return (f"r{space}{addr}",)
    for acc, waddr in ACCUMULATOR_WADDR.items():
        if waddr == addr:
            return (acc,)
    flag = WRITE_A if space == "a" else WRITE_B
    return tuple(r.name for r in IO_REGISTERS if r.addr == addr and r.spaces & flag)


# --------------------------------------------------------------------------------------------
# Fixed latencies the checker and the emulator share [AG p.18-24, p.37]
# --------------------------------------------------------------------------------------------
REGFILE_WRITE_TO_READ_INSTRUCTIONS = 2   # written at N, readable from N+2 (no forwarding)
SFU_RESULT_INSTRUCTIONS = 3              # SFU written at N, result in r4 from N+3
UNIFORMS_ADDRESS_INSTRUCTIONS = 3        # unif_addr written at N, new stream from N+3
TMU_NOSWAP_INSTRUCTIONS = 3              # tmu_noswap written at N, honoured from N+3
VPM_READ_SETUP_INSTRUCTIONS = 3          # guide: read setup at N, data from N+3
THREAD_END_DELAY_SLOTS = 2
TMU_FIFO_DEPTH = 8                       # direct requests per QPU per TMU the guide allows
TMU_FIFO_DEPTH_RELIABLE = 4              # measured: more than 4 is unreliable (vc4asm addendum)

# --------------------------------------------------------------------------------------------
# Machine sizes [AG p.14-21, p.53, p.108 HW-2253]
# --------------------------------------------------------------------------------------------
NUM_QPUS = 12
SIMD_WIDTH = 16
QUAD_SIZE = 4
NUM_SEMAPHORES = 16
SEMAPHORE_MAX = 15
VPM_ROW_WORDS = 16
VPM_USER_ROWS = 64               # erratum HW-2253: user programs reach only the first 64 rows
VPM_USER_BYTES = VPM_USER_ROWS * VPM_ROW_WORDS * 4
VPM_BYTES = 12 * 1024            # the Pi's whole VPM (V3D_IDENT1.VPMSZ = 12 KiB) [AG p.97]

# --------------------------------------------------------------------------------------------
# VPM and DMA setup words [AG p.57-59 Tables 32-37]
# --------------------------------------------------------------------------------------------
VPM_GENERIC_READ_FIELDS: Layout = {
    "id": (30, 2), "num": (20, 4), "stride": (12, 6), "horizontal": (11, 1), "laned": (10, 1),
    "size": (8, 2), "addr": (0, 8)}
VPM_READ_NUM_ZERO = 16           # a generic read setup with NUM = 0 reads 16 vectors [AG p.58]
VPM_GENERIC_WRITE_FIELDS: Layout = {
    "id": (30, 2), "stride": (12, 6), "horizontal": (11, 1), "laned": (10, 1),
    "size": (8, 2), "addr": (0, 8)}
VPM_SIZE_8, VPM_SIZE_16, VPM_SIZE_32 = 0, 1, 2
VCD_LOAD_FIELDS: Layout = {        # to vpmvcd_rd_setup, bit 31 = 1, modew != 1
    "id": (31, 1), "modew": (28, 3), "mpitch": (24, 4), "rowlen": (20, 4), "nrows": (16, 4),
    "vpitch": (12, 4), "vertical": (11, 1), "addrxy": (0, 11)}
# MPITCHB: the guide documents bits 12:0, but the hardware reads 16 bits: py-videocore's 12-thread
# SGEMM example, run on Pis at 8 GFLOPS with correct results, DMA-loads C rows 12288 bytes apart
# (as vc4asm found 16 bits for the VDW store STRIDE). Values past the guide's 13 bits are reported
# in strict mode (VCD_LOAD_STRIDE_GUIDE_BITS).
VCD_LOAD_STRIDE_FIELDS: Layout = {  # to vpmvcd_rd_setup, bits 31:28 = 1001
    "id": (28, 4), "mpitchb": (0, 16)}
VCD_LOAD_STRIDE_ID = 0b1001
VCD_LOAD_STRIDE_GUIDE_BITS = 13
VDW_STORE_FIELDS: Layout = {       # to vpmvcd_wr_setup, bits 31:30 = 10
    "id": (30, 2), "units": (23, 7), "depth": (16, 7), "laned": (15, 1), "horizontal": (14, 1),
    "vpmbase": (3, 11), "modew": (0, 3)}
VDW_STORE_ID = 0b10
VDW_STRIDE_FIELDS: Layout = {      # to vpmvcd_wr_setup, bits 31:30 = 11
    # The guide prints STRIDE as bits 12:0; the vc4asm author found 16 bits (15:0) on hardware.
    "id": (30, 2), "blockmode": (16, 1), "stride": (0, 16)}
VDW_STRIDE_ID = 0b11
# MODEW of VCD loads and VDW stores [AG p.58-59 Tables 34, 36]: the width's base code, ORed with
# the half-word (16-bit, 0..1) or byte (8-bit, 0..3) select of packed sub-word transfers
DMA_MODEW_32, DMA_MODEW_16, DMA_MODEW_8 = 0, 2, 4
DMA_MODEW_MAX_OFFSET = {DMA_MODEW_32: 0, DMA_MODEW_16: 1, DMA_MODEW_8: 3}

# --------------------------------------------------------------------------------------------
# V3D registers and performance counters [AG p.82-104 Tables 48-93; Linux vc4_regs.h]
# Byte offsets from the V3D block's base; field names are py-videocore's (videocore.v3d).
# --------------------------------------------------------------------------------------------
V3D_IDENT0, V3D_IDENT1, V3D_IDENT2, V3D_SCRATCH = 0x000, 0x004, 0x008, 0x010
V3D_L2CACTL, V3D_SLCACTL = 0x020, 0x024
V3D_SRQPC, V3D_SRQUA, V3D_SRQUL, V3D_SRQCS = 0x430, 0x434, 0x438, 0x43C
V3D_VPMBASE, V3D_PCTRC, V3D_PCTRE, V3D_ERRSTAT = 0x504, 0x670, 0x674, 0xF20
V3D_PCTR_COUNT = 16
#: PCTRE bit 31: counting is on at all (documented as reserved; vc4asm, Linux V3D_PCTRE_EN)
V3D_PCTRE_ENABLE = 1 << 31


def v3d_pctr(n: int) -> int:
    """Offset of performance counter n's value."""
    return 0x680 + 8 * n


def v3d_pctrs(n: int) -> int:
    """Offset of performance counter n's source selector."""
    return 0x684 + 8 * n


def _v3d_fields() -> Dict[str, Tuple[int, int, int, str]]:
    """name -> (offset, lowest bit, highest bit, 'r' / 'w' / 'rw')."""
    table = {
        "TVER": (V3D_IDENT0, 24, 31, "r"), "IDSTR_V": (V3D_IDENT0, 0, 7, "r"),
        "IDSTR_3": (V3D_IDENT0, 8, 15, "r"), "IDSTR_D": (V3D_IDENT0, 16, 23, "r"),
        "VPMSZ": (V3D_IDENT1, 28, 31, "r"), "HDRT": (V3D_IDENT1, 24, 27, "r"),
        "NSEM": (V3D_IDENT1, 16, 23, "r"), "TUPS": (V3D_IDENT1, 12, 15, "r"),
        "QUPS": (V3D_IDENT1, 8, 11, "r"), "NSLC": (V3D_IDENT1, 4, 7, "r"), "REV": (V3D_IDENT1, 0, 3, "r"),
        "TLBDB": (V3D_IDENT2, 8, 11, "r"), "TLBSZ": (V3D_IDENT2, 4, 7, "r"), "VRISZ": (V3D_IDENT2, 0, 3, "r"),
        "SCRATCH": (V3D_SCRATCH, 0, 31, "rw"),
        "L2CACTL": (V3D_L2CACTL, 0, 2, "rw"), "L2CCLR": (V3D_L2CACTL, 2, 2, "w"),
        "L2CDIS": (V3D_L2CACTL, 1, 1, "w"), "L2CENA": (V3D_L2CACTL, 0, 0, "rw"),
        "QPURQPC": (V3D_SRQPC, 0, 31, "w"), "QPURQUA": (V3D_SRQUA, 0, 31, "rw"),
        "QPURQUL": (V3D_SRQUL, 0, 11, "rw"), "QPURQCC": (V3D_SRQCS, 16, 23, "rw"),
        "QPURQCM": (V3D_SRQCS, 8, 15, "rw"), "QPURQERR": (V3D_SRQCS, 7, 7, "rw"),
        "QPURQL": (V3D_SRQCS, 0, 5, "rw"),
        "VPMURSV": (V3D_VPMBASE, 0, 4, "rw"),
        "CTCLR": (V3D_PCTRC, 0, 15, "w"), "CTEN": (V3D_PCTRE, 0, 31, "rw"),
        "VCDI": (V3D_ERRSTAT, 12, 12, "r"), "VCDE": (V3D_ERRSTAT, 11, 11, "r"),
        "VDWE": (V3D_ERRSTAT, 10, 10, "r"),
    }
    for cache, low in (("T1CCS", 24), ("T0CCS", 16), ("UCCS", 8), ("ICCS", 0)):
        for s in range(4):                        # one bit per slice: write 1 to clear
            table[f"{cache}{s}"] = (V3D_SLCACTL, low + 3 - s, low + 3 - s, "w")
    for n in range(V3D_PCTR_COUNT):
        table[f"PCTR{n}"] = (v3d_pctr(n), 0, 31, "rw")
        table[f"PCTRS{n}"] = (v3d_pctrs(n), 0, 4, "rw")
    return table


V3D_FIELDS: Dict[str, Tuple[int, int, int, str]] = _v3d_fields()

#: what each performance-counter source counts (guide Table 93; V3D_PCTRSn selects one)
V3D_COUNTER_SOURCES = {
    0: "FEP valid primitives with no rendered pixels", 1: "FEP valid primitives",
    2: "FEP early-Z/near/far clipped quads", 3: "FEP valid quads",
    4: "TLB quads with no pixels passing the stencil test",
    5: "TLB quads with no pixels passing the Z and stencil tests",
    6: "TLB quads with any pixel passing the Z and stencil tests",
    7: "TLB quads with all pixels at zero coverage", 8: "TLB quads with any non-zero coverage",
    9: "TLB quads with valid pixels written to the colour buffer",
    10: "PTB primitives outside the viewport", 11: "PTB primitives that need clipping",
    12: "PSE primitives discarded as reversed", 13: "QPU idle cycles (all QPUs)",
    14: "QPU cycles vertex/coordinate shading", 15: "QPU cycles fragment shading",
    16: "QPU cycles executing valid instructions", 17: "QPU cycles stalled waiting for the TMUs",
    18: "QPU cycles stalled waiting for the scoreboard", 19: "QPU cycles stalled waiting for varyings",
    20: "QPU instruction cache hits", 21: "QPU instruction cache misses",
    22: "QPU uniforms cache hits", 23: "QPU uniforms cache misses",
    24: "TMU texture quads processed", 25: "TMU cache misses",
    26: "VPM cycles the VDW stalled waiting for the VPM",
    27: "VPM cycles the VCD stalled waiting for the VPM", 28: "L2C hits", 29: "L2C misses",
}
