"""Words -> a listing in the DSL's own syntax that reassembles to the same words.

Each word becomes the DSL call(s) that produce it; the candidate is assembled on the spot and
kept only if it gives back the word exactly. Words no DSL call produces (reserved opcodes,
undefined modes, field combinations the assembler never emits) become `raw(low, high)` with a
comment saying why. Branch targets inside the program get labels (the program's own label names
when known, else `L<index>`).
"""
from __future__ import annotations

import keyword
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from . import isa
from .asm import Assembler
from .decode import ALU, BRANCH, LOAD_IMM, SEMAPHORE, Instruction, decode
from .dsl import assemble_text
from .program import WORD_BYTES, Program
from .registers import REGISTERS, Register
from .source import AssembleError

_IMM_MASK = (1 << 32) - 1


class NotExpressible(Exception):
    """The word has no DSL spelling; the message says why."""


class LabelTarget:
    """A label as a branch argument in a listing."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return label_expression(self.name)


def label_expression(name: str) -> str:
    if name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__"):
        return f"L.{name}"
    return f"L[{name!r}]"


@dataclass
class Call:
    """One DSL call: `name(*args, **kwargs)`; a chain is a list of calls."""
    name: str
    args: tuple = ()
    kwargs: Dict[str, object] = field(default_factory=dict)

    def text(self) -> str:
        parts = [_literal(a) for a in self.args] + [f"{k}={_literal(v)}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"


def _literal(value) -> str:
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, HexInt):
        return f"0x{int(value):08X}"
    return repr(value)


class HexInt(int):
    """An int the listing writes in hex (ldi values, absolute branch targets)."""


def _chain_text(calls: List[Call]) -> str:
    return ".".join(c.text() for c in calls)


def _apply(calls: List[Call], asm: Assembler, label_offsets: Dict[str, int], base: int) -> None:
    target = getattr(asm, calls[0].name)(*_resolve(calls[0].args, label_offsets, base), **calls[0].kwargs)
    for call in calls[1:]:
        target = getattr(target, call.name)(*_resolve(call.args, label_offsets, base), **call.kwargs)


def _resolve(args: tuple, label_offsets: Dict[str, int], base: int) -> tuple:
    """Labels become the byte offset relative to `base` (the branch's PC + 32) they stand for."""
    return tuple(label_offsets[a.name] - base if isinstance(a, LabelTarget) else a for a in args)


# ---- operands and destinations ---------------------------------------------------------------

_FLOAT_SMALL_IMM_CODES = frozenset(isa.SMALL_IMM_FLOAT_CODES.values())


def _small_imm_value(code: int) -> Union[int, float]:
    """The operand value of a small-immediate code (rotation codes read as their integer value)."""
    bits = isa.SMALL_IMM_BITS[code]
    if code in _FLOAT_SMALL_IMM_CODES:
        return struct.unpack("<f", struct.pack("<I", bits))[0]
    return bits - (1 << 32) if bits >> 31 else bits


def _read_operand(inst: Instruction, mux: int):
    f = inst.fields
    if mux <= isa.MUX_R5:
        reg = REGISTERS[isa.MUX_NAMES[mux]]
        if mux == isa.MUX_R4 and f["pm"] and f["unpack"]:
            reg = reg.unpack(isa.UNPACKS[f["unpack"]])
        return reg
    if mux == isa.MUX_B and inst.small_imm is not None:
        return _small_imm_value(inst.small_imm)
    space, addr = ("a", f["raddr_a"]) if mux == isa.MUX_A else ("b", f["raddr_b"])
    names = isa.read_names(addr, space)
    if not names:
        raise NotExpressible(f"raddr_{space} {addr} is not a readable location of regfile {space.upper()}")
    reg = REGISTERS[names[0]]
    if mux == isa.MUX_A and not f["pm"] and f["unpack"]:
        reg = reg.unpack(isa.UNPACKS[f["unpack"]])
    return reg


def _destination(addr: int, space: str, packed: Optional[str]) -> Register:
    names = isa.write_names(addr, space)
    if not names:
        raise NotExpressible(f"waddr {addr} is not a writable location of regfile {space.upper()}")
    reg = REGISTERS[names[0]]
    return reg.pack(packed) if packed else reg


def _destinations(inst: Instruction) -> Tuple[Register, Register]:
    f = inst.fields
    regfile_pack = isa.REGFILE_A_PACKS[f["pack"]] if not f["pm"] and f["pack"] else None
    add_pack = regfile_pack if inst.add_space == "a" else None
    mul_pack = regfile_pack if inst.mul_space == "a" else None
    return (_destination(f["waddr_add"], inst.add_space, add_pack),
            _destination(f["waddr_mul"], inst.mul_space, mul_pack))


def _trim(args: list, n_inputs: int) -> tuple:
    """Leave out trailing operands that the DSL fills with r0 anyway."""
    r0 = REGISTERS["r0"]
    minimum = {0: 0, 1: 2}.get(n_inputs, 3)
    while len(args) > minimum and isinstance(args[-1], Register) and args[-1] is r0:
        args = args[:-1]
    return tuple(args)


def _same_operand(inst: Instruction, x: str, y: str) -> bool:
    return inst.fields[x] == inst.fields[y]


# ---- candidates per format ---------------------------------------------------------------------

def _alu_calls(inst: Instruction) -> List[Call]:
    f = inst.fields
    add_op, mul_op = inst.add_op, inst.mul_op
    if add_op is None:
        raise NotExpressible(f"reserved add-pipe opcode {f['op_add']}")
    if f["pm"] and f["pack"] and f["pack"] not in isa.MUL_PACKS.values():
        raise NotExpressible(f"reserved mul-pipe pack code {f['pack']}")
    sig = f["sig"]
    signal = isa.SIGNALS[sig] if sig not in (isa.SIG_NONE, isa.SIG_SMALL_IMM) else None
    rotation = inst.rotation
    add_dst, mul_dst = _destinations(inst)
    add_ops = [_read_operand(inst, f["add_a"]), _read_operand(inst, f["add_b"])]
    mul_ops = [_read_operand(inst, f["mul_a"]), _read_operand(inst, f["mul_b"])]
    sf = bool(f["sf"])
    add_unused = (f["op_add"] == 0 and f["cond_add"] == 0 and f["waddr_add"] == isa.ADDR_NOP
                  and f["add_a"] == 0 and f["add_b"] == 0)
    mul_unused = (f["op_mul"] == 0 and f["cond_mul"] == 0 and f["waddr_mul"] == isa.ADDR_NOP
                  and f["mul_a"] == 0 and f["mul_b"] == 0 and rotation is None)

    def add_call(with_sig: bool) -> Call:
        kwargs: Dict[str, object] = {}
        if add_op.name == isa.ADD_MOV and _same_operand(inst, "add_a", "add_b"):
            call = Call("mov", (add_dst, add_ops[0]), kwargs)
            if sf:
                kwargs["set_flags"] = True
        else:
            call = Call(add_op.name, _trim([add_dst] + add_ops, add_op.n_inputs), kwargs)
            if add_op.code != 0 and not sf:
                kwargs["set_flags"] = False
        if isa.CONDITIONS[f["cond_add"]] != "always":
            kwargs["cond"] = isa.CONDITIONS[f["cond_add"]]
        if with_sig and signal:
            kwargs["sig"] = signal
        return call

    def mul_call(chained: bool, with_sig: bool) -> Call:
        kwargs: Dict[str, object] = {}
        same = _same_operand(inst, "mul_a", "mul_b")
        if mul_op.name == isa.MUL_MOV and same and rotation is not None:
            amount = REGISTERS["r5"] if rotation == 0 else rotation
            call = Call("rotate", (mul_dst, mul_ops[0], amount), kwargs)
        elif mul_op.name == isa.MUL_MOV and same and chained:
            call = Call("mov", (mul_dst, mul_ops[0]), kwargs)
        else:
            call = Call(mul_op.name, _trim([mul_dst] + mul_ops, mul_op.n_inputs), kwargs)
            if rotation is not None:
                kwargs["rotate"] = REGISTERS["r5"] if rotation == 0 else rotation
        if isa.CONDITIONS[f["cond_mul"]] != "always":
            kwargs["cond"] = isa.CONDITIONS[f["cond_mul"]]
        if f["pm"] and f["pack"]:
            kwargs["pack"] = next(k for k, v in isa.MUL_PACKS.items() if v == f["pack"])
        if sf and f["op_add"] == 0:
            kwargs["set_flags"] = True
        if with_sig and signal:
            kwargs["sig"] = signal
        return call

    if mul_unused:
        return [add_call(True)]
    if add_unused and mul_op.name not in isa.ADD_OP_BY_NAME:
        return [mul_call(False, True)]
    return [add_call(True), mul_call(True, False)]


def _load_calls(inst: Instruction) -> List[Call]:
    f = inst.fields
    if f["mode"] not in (isa.LOAD_IMM_32, isa.LOAD_IMM_PER_ELEMENT_SIGNED, isa.LOAD_IMM_PER_ELEMENT_UNSIGNED):
        raise NotExpressible(f"undefined load-immediate mode {f['mode']}")
    if f["pm"]:
        raise NotExpressible("pm=1 in a load immediate (the DSL packs loads through regfile A only)")
    if f["cond_add"] != f["cond_mul"]:
        raise NotExpressible("different add and mul conditions in a load immediate")
    add_dst, mul_dst = _destinations(inst)
    imm = f["immediate"]
    if f["mode"] == isa.LOAD_IMM_32:
        value: object = HexInt(imm)
    else:
        signed = f["mode"] == isa.LOAD_IMM_PER_ELEMENT_SIGNED
        value = [(-2 if signed else 2) * ((imm >> (16 + i)) & 1) + ((imm >> i) & 1) for i in range(16)]
        if signed and min(value) >= 0:
            raise NotExpressible("signed per-element load whose values are all >= 0 (the DSL chooses "
                                 "the unsigned mode for those)")
    args = (add_dst, value) if f["waddr_mul"] == isa.ADDR_NOP and mul_dst.pack_mode == "nop" \
        else (add_dst, mul_dst, value)
    kwargs: Dict[str, object] = {}
    if isa.CONDITIONS[f["cond_add"]] != "always":
        kwargs["cond"] = isa.CONDITIONS[f["cond_add"]]
    if f["sf"]:
        kwargs["set_flags"] = True
    return [Call("ldi", args, kwargs)]


def _semaphore_calls(inst: Instruction) -> List[Call]:
    f = inst.fields
    return [Call("sema_down" if f["sa"] else "sema_up", (f["semaphore"],))]


def _branch_calls(inst: Instruction, index: int, label_names: Dict[int, str]) -> List[Call]:
    f = inst.fields
    if f["cond_br"] not in {c.code for c in isa.BRANCH_CONDITIONS}:
        raise NotExpressible(f"reserved branch condition {f['cond_br']}")
    if not f["reg"] and f["raddr_a"]:
        raise NotExpressible(f"raddr_a={f['raddr_a']} in a branch that reads no register (the DSL "
                             "writes 0; an odd value also makes the branch set flags)")
    if f["immediate"] % WORD_BYTES:
        raise NotExpressible(f"branch immediate 0x{f['immediate']:X} is not a multiple of 8")
    name = next(c.name for c in isa.BRANCH_CONDITIONS if c.code == f["cond_br"])
    kwargs: Dict[str, object] = {}
    imm = f["immediate"]
    args: tuple = ()
    if f["rel"]:
        signed = imm - (1 << 32) if imm >> 31 else imm
        target = WORD_BYTES * (index + 1 + isa.BRANCH_DELAY_SLOTS) + signed
        if not f["reg"] and target in label_names:
            args = (LabelTarget(label_names[target]),)
        elif signed or not f["reg"]:
            args = (signed,)
    else:
        kwargs["absolute"] = True
        if imm or not f["reg"]:
            args = (HexInt(imm),)
    if f["reg"]:
        kwargs["reg"] = REGISTERS[f"ra{f['raddr_a']}"]
    if f["waddr_add"] != isa.ADDR_NOP or f["ws"]:
        kwargs["link"] = _destination(f["waddr_add"], inst.add_space, None)
    return [Call(name, args, kwargs)]


def branch_target(inst: Instruction, index: int) -> Optional[int]:
    """Byte offset a relative, register-free branch at `index` goes to (None otherwise)."""
    if inst.kind != BRANCH or not inst.fields["rel"] or inst.fields["reg"]:
        return None
    imm = inst.fields["immediate"]
    signed = imm - (1 << 32) if imm >> 31 else imm
    return WORD_BYTES * (index + 1 + isa.BRANCH_DELAY_SLOTS) + signed


# ---- listing -----------------------------------------------------------------------------------

@dataclass
class Line:
    """One listing line: the DSL text of the word at `index` and an optional reason comment."""
    index: int
    word: int
    text: str
    note: str = ""
    hint: str = ""       # e.g. the float an ldi value stands for


def _field_difference(expected: int, got: int) -> str:
    a, b = decode(expected), decode(got)
    if a.kind != b.kind:
        return f"the DSL call gives a {b.kind} word"
    diffs = [f"{k}={a.fields[k]} (DSL: {b.fields[k]})" for k in a.fields if a.fields[k] != b.fields[k]]
    if a.unused_bits != b.unused_bits:
        diffs.append(f"don't-care bits 0x{a.unused_bits:016X} (DSL: 0)")
    return "no DSL call produces " + ", ".join(diffs)


def line_for(word: int, index: int = 0, label_names: Optional[Dict[int, str]] = None,
             label_offsets: Optional[Dict[str, int]] = None) -> Line:
    """The listing line of one word at instruction `index` (label_names: byte offset -> name;
    label_offsets, its inverse, may be passed to save rebuilding it for every line)."""
    label_names = label_names or {}
    inst = decode(word)
    try:
        if inst.kind == ALU:
            calls = _alu_calls(inst)
        elif inst.kind == LOAD_IMM:
            calls = _load_calls(inst)
        elif inst.kind == SEMAPHORE:
            calls = _semaphore_calls(inst)
        else:
            calls = _branch_calls(inst, index, label_names)
        asm = Assembler()
        if label_offsets is None:
            label_offsets = {name: offset for offset, name in label_names.items()}
        _apply(calls, asm, label_offsets, WORD_BYTES * (index + 1 + isa.BRANCH_DELAY_SLOTS))
        got = asm._words[0]
        if got != word:
            raise NotExpressible(_field_difference(word, got))
        return Line(index, word, _chain_text(calls), hint=_float_hint(inst))
    except (NotExpressible, AssembleError) as exc:
        reason = exc.reason if isinstance(exc, AssembleError) else str(exc)
        return Line(index, word, f"raw(0x{word & _IMM_MASK:08X}, 0x{word >> 32:08X})", reason)


def _float_hint(inst: Instruction) -> str:
    """`= 1.5f` when a 32-bit ldi value reads naturally as a float (short decimal, sane magnitude)."""
    if inst.kind != LOAD_IMM or inst.fields["mode"] != isa.LOAD_IMM_32:
        return ""
    bits = inst.fields["immediate"]
    value = struct.unpack("<f", struct.pack("<I", bits))[0]
    text = f"{value:.7g}"
    if not 1e-6 <= abs(value) <= 1e9 or len(text) > 9 or \
            struct.unpack("<I", struct.pack("<f", float(text)))[0] != bits:
        return ""
    if "." not in text and "e" not in text:
        text += ".0"
    return f"= {text}f"


def label_names_for(words: Sequence[int], labels: Optional[Dict[str, int]] = None) -> Dict[int, str]:
    """Byte offset -> label name: the given labels plus `L<index>` for other branch targets."""
    names: Dict[int, str] = {}
    for name, offset in sorted((labels or {}).items(), key=lambda kv: kv[1]):
        names.setdefault(offset, name)
    taken = set(labels or {})
    for i, word in enumerate(words):
        target = branch_target(decode(word), i)
        if target is not None and 0 <= target <= WORD_BYTES * len(words) and target % WORD_BYTES == 0 \
                and target not in names and decode(word).fields["immediate"] % WORD_BYTES == 0:
            name = f"L{target // WORD_BYTES}"
            while name in taken:
                name += "_"
            names[target] = name
            taken.add(name)
    return names


def disassemble(words: Union[Sequence[int], bytes, Program], labels: Optional[Dict[str, int]] = None,
                addresses: bool = True) -> str:
    """A listing of `words` (ints, little-endian bytes, or a Program) in the DSL's syntax. Put in
    the body of a @qpu function (or given to `assemble_text`), it assembles to the same words.
    `labels` (name -> byte offset) are printed where they are; with `addresses` every line ends
    with a comment `# OFFSET: WORD`."""
    if isinstance(words, Program):
        labels = words.labels if labels is None else labels
        words = words.words
    elif isinstance(words, (bytes, bytearray, memoryview)):
        words = Program.from_bytes(bytes(words)).words
    words = list(words)
    label_names = label_names_for(words, labels)
    label_offsets = {name: offset for offset, name in label_names.items()}
    extra = {}
    for name, offset in (labels or {}).items():
        if label_names.get(offset) != name:
            extra.setdefault(offset, []).append(name)
    out: List[str] = []
    known: Dict[int, Line] = {}
    for i in range(len(words) + 1):
        offset = WORD_BYTES * i
        if offset in label_names:
            out.append(label_expression(label_names[offset]))
        for name in extra.get(offset, []):
            out.append(label_expression(name))
        if i == len(words):
            break
        word = words[i]
        if word >> 60 == isa.SIG_BRANCH:          # a branch's text depends on where it is
            line = line_for(word, i, label_names, label_offsets)
        else:
            line = known.get(word) or known.setdefault(word, line_for(word, i))
        comment = []
        if addresses:
            comment.append(f"{offset:04x}: {word:016x}")
        if line.hint:
            comment.append(line.hint)
        if line.note:
            comment.append(line.note)
        out.append(line.text + (f"  # {' '.join(comment)}" if comment else ""))
    return "\n".join(out) + "\n"


class RoundTripError(AssertionError):
    """Disassembling and reassembling a program did not give back its words."""


def verify_roundtrip(program: Union[Program, Sequence[int], bytes]) -> Program:
    """Disassemble, reassemble, and check the words are identical; returns the reassembled
    Program or raises RoundTripError naming the first differing instruction."""
    if isinstance(program, Program):
        original = program.words
    elif isinstance(program, (bytes, bytearray)):
        original = Program.from_bytes(bytes(program)).words
    else:
        original = list(program)
    text = disassemble(program)
    again = assemble_text(text)
    if again.words != list(original):
        for i, (a, b) in enumerate(zip(original, again.words)):
            if a != b:
                raise RoundTripError(f"instruction {i}: 0x{a:016X} reassembles to 0x{b:016X}\n"
                                     f"listing line: {line_for(a, i).text}")
        raise RoundTripError(f"{len(original)} words reassemble to {len(again.words)}")
    return again
