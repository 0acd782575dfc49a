"""Operands -> instruction fields: read-operand placement, write routing and the ALU word.

The placement and routing follow py-videocore's algorithm (reference guide digest §2.2, §2.7) so
that its kernels assemble to the same words; everything the hardware cannot encode raises
AssembleError. Field values and layouts come from `isa`.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

from . import isa
from .registers import NULL, R0, Register
from .source import AssembleError

Operand = Union[Register, int, float]

NO_SIGNAL = "no signal"
SMALL_IMM_SIGNAL = isa.SIGNALS[isa.SIG_SMALL_IMM]


def condition_code(name: str) -> int:
    if name not in isa.CONDITION_CODES:
        raise AssembleError(f"unknown condition {name!r}; use one of {list(isa.CONDITIONS)}")
    return isa.CONDITION_CODES[name]


def check_alu_signal(name: str) -> None:
    """An ALU instruction may carry signals 0-13 (13 is implied by a small immediate)."""
    if name not in isa.SIGNAL_CODES:
        raise AssembleError(f"unknown signal {name!r}; use one of {list(isa.SIGNALS[:14])}")
    if isa.SIGNAL_CODES[name] > isa.SIG_SMALL_IMM:
        raise AssembleError(f"signal {name!r} is not an ALU signal: use ldi(), sema_up()/sema_down() "
                            "or a branch instruction")


def small_imm_code(value) -> int:
    """Small-immediate code of an operand value (ints -16..15, 0.0, powers of two 2^-8..2^7)."""
    if isinstance(value, bool):
        raise AssembleError(f"{value!r} is not a small immediate; write 1 or 0")
    if isinstance(value, numbers.Integral):
        code = isa.SMALL_IMM_INT_CODES.get(int(value))
    elif isinstance(value, numbers.Real):
        v = float(value)
        if v == 0.0 and math.copysign(1.0, v) > 0:
            code = 0  # +0.0 has the bits of the integer 0
        else:
            code = isa.SMALL_IMM_FLOAT_CODES.get(v)
    else:
        raise AssembleError(f"operand {value!r} is neither a register nor a number")
    if code is None:
        raise AssembleError(
            f"{value!r} is not a small immediate (integers -16..15, 0.0 and powers of two from "
            "1/256 to 128.0); load it into a register with ldi() first")
    return code


@dataclass
class ReadPlacement:
    muxes: List[int]
    raddr_a: int
    raddr_b: int
    raddr_b_used: bool      # a register or small immediate occupies raddr_b
    small_imm: Optional[int]
    unpack: int
    unpack_pm: int


def place_reads(operands: Sequence[Operand]) -> ReadPlacement:
    """Choose input muxes, raddr_a and raddr_b for the operands (add_a, add_b, mul_a, mul_b)."""
    for opd in operands:
        if isinstance(opd, Register):
            if opd.pack_mode != "nop":
                raise AssembleError(f"{opd!r} is a packed write location; it cannot be read")
            if not opd.is_accumulator and not opd.spaces & isa.READ_AB:
                raise AssembleError(f"{opd.name} is write-only; it cannot be read")
        elif isinstance(opd, bool) or not isinstance(opd, numbers.Real):
            raise AssembleError(f"operand {opd!r} is neither a register nor a number")

    unpack, unpack_pm, unpack_from = 0, 0, None
    for opd in operands:
        if isinstance(opd, Register) and opd.unpack_code:
            if unpack_from is None:
                unpack, unpack_pm, unpack_from = opd.unpack_code, opd.unpack_pm, opd
            elif (opd.unpack_code, opd.unpack_pm) != (unpack, unpack_pm):
                raise AssembleError(f"conflicting unpacks {unpack_from!r} and {opd!r}: one instruction "
                                    "has one unpack setting, for regfile A or for r4")

    muxes: List[Optional[int]] = [None] * 4
    for i, opd in enumerate(operands):
        if isinstance(opd, Register) and opd.is_accumulator:
            muxes[i] = opd.mux
    raddr_a: Optional[int] = None
    raddr_b: Optional[int] = None
    b_reg: Optional[Register] = None
    small_imm: Optional[int] = None

    for i, opd in enumerate(operands):      # locations readable only from regfile B
        if muxes[i] is None and isinstance(opd, Register) and not opd.spaces & isa.READ_A:
            if raddr_b is None or raddr_b == opd.addr:
                raddr_b, b_reg, muxes[i] = opd.addr, opd, isa.MUX_B
            else:
                raise AssembleError(f"two different regfile-B reads ({b_reg.name} and {opd.name}) "
                                    "in one instruction; copy one to an accumulator first")
    for i, opd in enumerate(operands):      # small immediates
        if muxes[i] is None and not isinstance(opd, Register):
            code = small_imm_code(opd)
            if small_imm is None or small_imm == code:
                small_imm, muxes[i] = code, isa.MUX_B
            else:
                raise AssembleError("two different small immediates in one instruction; an "
                                    "instruction has one small-immediate field")
    if small_imm is not None and raddr_b is not None:
        raise AssembleError(f"a small immediate and a regfile-B read ({b_reg.name}) in one instruction: "
                            "both use the raddr_b field")
    if small_imm is not None:
        raddr_b = small_imm
    a_reg: Optional[Register] = None
    for i, opd in enumerate(operands):      # locations readable only from regfile A
        if muxes[i] is None and not opd.spaces & isa.READ_B:
            if raddr_a is None or raddr_a == opd.addr:
                raddr_a, a_reg, muxes[i] = opd.addr, opd, isa.MUX_A
            else:
                raise AssembleError(f"two different regfile-A reads ({a_reg.name} and {opd.name}) "
                                    "in one instruction; copy one to an accumulator first")
    for i, opd in enumerate(operands):      # locations readable from both files
        if muxes[i] is not None:
            continue
        if raddr_a is None or raddr_a == opd.addr:
            raddr_a, a_reg, muxes[i] = opd.addr, opd, isa.MUX_A
        elif (small_imm is None and raddr_b is None) or (small_imm is None and raddr_b == opd.addr):
            raddr_b, b_reg, muxes[i] = opd.addr, opd, isa.MUX_B
        else:
            raise AssembleError(f"no read port left for {opd.name}: raddr_a holds {a_reg.name} and "
                                f"raddr_b holds {b_reg.name if b_reg is not None else 'a small immediate'}")
    return ReadPlacement(
        muxes=[int(m) for m in muxes],
        raddr_a=isa.ADDR_NOP if raddr_a is None else raddr_a,
        raddr_b=isa.ADDR_NOP if raddr_b is None else raddr_b,
        raddr_b_used=raddr_b is not None, small_imm=small_imm, unpack=unpack, unpack_pm=unpack_pm)


def check_destination(dst) -> Register:
    if not isinstance(dst, Register):
        raise AssembleError(f"destination {dst!r} is not a register")
    if dst.unpack_mode != "nop":
        raise AssembleError(f"{dst!r}: unpack applies to read operands, not to a destination")
    if dst.name == "r4":
        raise AssembleError("r4 cannot be written: only the SFU, TMU loads and tile-buffer loads write it")
    if dst.name == "r5":
        raise AssembleError("r5 is written through `broadcast` (element 0 to all 16) or `r5_pix0` "
                            "(element 0 of each quad)")
    if not dst.spaces & isa.WRITE_AB:
        raise AssembleError(f"{dst.name} is read-only; it cannot be a destination")
    return dst


def route_writes(add_dst: Register, mul_dst: Register) -> Tuple[int, int, int, int]:
    """(waddr_add, waddr_mul, ws, regfile-A pack code) for the two pipes' destinations."""
    check_destination(add_dst)
    check_destination(mul_dst)
    if add_dst.pack_code and mul_dst.pack_code:
        raise AssembleError(f"both destinations packed ({add_dst!r}, {mul_dst!r}); one instruction "
                            "has one pack field")
    pack = add_dst.pack_code or mul_dst.pack_code
    if add_dst.spaces & isa.WRITE_A and mul_dst.spaces & isa.WRITE_B:
        return add_dst.addr, mul_dst.addr, 0, pack
    if mul_dst.spaces & isa.WRITE_A and add_dst.spaces & isa.WRITE_B:
        return add_dst.addr, mul_dst.addr, 1, pack
    file = "A" if add_dst.spaces & isa.WRITE_A else "B"
    raise AssembleError(f"both pipes write regfile {file} ({add_dst!r} and {mul_dst!r}); one "
                        "instruction writes one A-space and one B-space location")


@dataclass
class AddHalf:
    """The add-pipe part of an ALU instruction (defaults: the unused pipe of a mul-only word)."""
    op: str = "nop"
    dst: Register = NULL
    a: Operand = R0
    b: Operand = R0
    cond: str = "never"
    set_flags: bool = False
    sig: str = NO_SIGNAL


@dataclass
class MulHalf:
    """The mul-pipe part (defaults: the unused pipe of an add-only word)."""
    op: str = "nop"
    dst: Register = NULL
    a: Operand = R0
    b: Operand = R0
    cond: str = "never"
    rotate: object = 0
    pack: str = "nop"
    sig: str = NO_SIGNAL
    set_flags: bool = False


def rotation_code(rotate) -> int:
    """Small-immediate code requesting a mul-pipe rotation (48 = by r5, 49..63 = by 1..15)."""
    if isinstance(rotate, Register):
        if rotate.name != "r5" or rotate.unpack_mode != "nop":
            raise AssembleError(f"rotate={rotate!r}: rotate by a constant 1..15 (or -15..-1) or by r5")
        return isa.SMALL_IMM_ROTATE_BY_R5
    if isinstance(rotate, bool) or not isinstance(rotate, numbers.Integral):
        raise AssembleError(f"rotate={rotate!r}: rotate by a constant 1..15 (or -15..-1) or by r5")
    amount = int(rotate) % isa.SIMD_WIDTH
    if amount == 0:
        raise AssembleError(f"rotate={rotate}: a multiple of 16 is no rotation (py-videocore would "
                            "silently rotate by r5 here)")
    return isa.SMALL_IMM_ROTATE_BY_R5 + amount


def _wants_rotation(rotate) -> bool:
    """py-videocore rotates when `rotate` is truthy: r5, or a non-zero amount."""
    if isinstance(rotate, Register):
        return True
    is_zero = isinstance(rotate, numbers.Number) and rotate == 0
    return rotate is not None and rotate is not False and not is_zero


def encode_alu(add: AddHalf, mul: MulHalf) -> int:
    """The 64-bit ALU word of an add half and a mul half."""
    op_add = isa.ADD_OP_BY_NAME[add.op].code
    op_mul = isa.MUL_OP_BY_NAME[mul.op].code
    reads = place_reads([add.a, add.b, mul.a, mul.b])
    waddr_add, waddr_mul, ws, regfile_pack = route_writes(add.dst, mul.dst)
    if mul.pack not in isa.MUL_PACKS:
        raise AssembleError(f"unknown mul pack {mul.pack!r}; use one of {list(isa.MUL_PACKS)}")
    mul_pack = isa.MUL_PACKS[mul.pack]
    if mul_pack and regfile_pack:
        raise AssembleError("a regfile-A pack and a mul pack in one instruction: one pack field")
    write_pm = 1 if mul_pack else 0
    pack = mul_pack or regfile_pack
    if reads.unpack and pack and reads.unpack_pm != write_pm:
        raise AssembleError(
            ("an r4 unpack" if reads.unpack_pm else "a regfile-A unpack")
            + (" with a mul pack" if write_pm else " with a regfile-A pack")
            + " in one instruction: the pm bit selects regfile-A pack+unpack or mul pack+r4 unpack")
    pm = reads.unpack_pm if reads.unpack else write_pm

    for sig in (add.sig, mul.sig):
        check_alu_signal(sig)
    if add.sig != NO_SIGNAL and mul.sig != NO_SIGNAL:
        raise AssembleError(f"two signals in one instruction ({add.sig!r} and {mul.sig!r})")
    sig = add.sig if add.sig != NO_SIGNAL else mul.sig
    raddr_b = reads.raddr_b
    uses_small_imm = reads.small_imm is not None
    if _wants_rotation(mul.rotate):
        code = rotation_code(mul.rotate)
        if reads.muxes[2] in (isa.MUX_R5, isa.MUX_B) or reads.muxes[3] in (isa.MUX_R5, isa.MUX_B):
            raise AssembleError("a rotated mul op must take its inputs from r0-r4 or regfile A")
        if reads.raddr_b_used:
            if not uses_small_imm:
                raise AssembleError("a rotation and a regfile-B read in one instruction: both use "
                                    "the raddr_b field")
            if isa.SMALL_IMM_BITS[code] != isa.SMALL_IMM_BITS[reads.small_imm]:
                value = isa.SMALL_IMM_BITS[code] - (1 << 32)
                raise AssembleError(f"a rotation and a small immediate share one field: with this "
                                    f"rotation the only immediate operand possible is {value}")
        raddr_b = code
        uses_small_imm = True
    if uses_small_imm:
        if sig not in (NO_SIGNAL, SMALL_IMM_SIGNAL):
            raise AssembleError(f"signal {sig!r} cannot be used with a small immediate or a rotation: "
                                "both use the signal field")
        sig = SMALL_IMM_SIGNAL
    elif sig == SMALL_IMM_SIGNAL and reads.raddr_b_used:
        raise AssembleError("signal 'alu small imm' turns the regfile-B read into a small immediate")

    if mul.set_flags and op_add != 0:
        raise AssembleError("set_flags on the mul op of a dual-issue: flags come from the add result; "
                            "pass set_flags to the add op")
    sf = 1 if (add.set_flags and op_add != 0) or mul.set_flags else 0

    return isa.encode_fields(
        isa.ALU_FIELDS, sig=isa.SIGNAL_CODES[sig], unpack=reads.unpack, pm=pm, pack=pack,
        cond_add=condition_code(add.cond), cond_mul=condition_code(mul.cond), sf=sf, ws=ws,
        waddr_add=waddr_add, waddr_mul=waddr_mul, op_mul=op_mul, op_add=op_add,
        raddr_a=reads.raddr_a, raddr_b=raddr_b, add_a=reads.muxes[0], add_b=reads.muxes[1],
        mul_a=reads.muxes[2], mul_b=reads.muxes[3])
