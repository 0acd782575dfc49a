"""64-bit QPU word -> `Instruction`: the format, every field, and what the fields mean (ops,
signal, small immediate, rotation, destinations). The disassembler, the hazard checker and the
emulator read words through this module; the tables are `isa`'s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from . import isa

ALU, LOAD_IMM, SEMAPHORE, BRANCH = "alu", "load_imm", "semaphore", "branch"
_LAYOUTS = {ALU: isa.ALU_FIELDS, LOAD_IMM: isa.LOAD_IMM_FIELDS, SEMAPHORE: isa.SEMAPHORE_FIELDS,
            BRANCH: isa.BRANCH_FIELDS}
_WORD_MASK = (1 << 64) - 1


def _covered_mask(layout: isa.Layout) -> int:
    mask = 0
    for lsb, width in layout.values():
        mask |= ((1 << width) - 1) << lsb
    return mask


#: bits of each format that no field covers (the guide's "don't care" bits)
UNUSED_MASKS = {kind: _WORD_MASK & ~_covered_mask(layout) for kind, layout in _LAYOUTS.items()}


@dataclass(frozen=True)
class Instruction:
    """One decoded word. `fields` holds every field of the word's format (names as in isa's
    layouts); `unused_bits` the bits of the word outside every field. Field values are also
    attributes (`inst.waddr_add`)."""
    word: int
    kind: str
    fields: Dict[str, int]
    unused_bits: int

    def __getattr__(self, name: str) -> int:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    @property
    def sig(self) -> int:
        return self.fields["sig"]

    @property
    def add_op(self) -> Optional[isa.AluOp]:
        """The add-pipe op of an ALU word (None for a reserved opcode or a non-ALU word)."""
        return isa.ADD_OP_BY_CODE.get(self.fields["op_add"]) if self.kind == ALU else None

    @property
    def mul_op(self) -> Optional[isa.AluOp]:
        return isa.MUL_OP_BY_CODE.get(self.fields["op_mul"]) if self.kind == ALU else None

    @property
    def small_imm(self) -> Optional[int]:
        """The small-immediate code of a sig-13 ALU word, else None."""
        return self.fields["raddr_b"] if self.kind == ALU and self.sig == isa.SIG_SMALL_IMM else None

    @property
    def rotation(self) -> Optional[int]:
        """Mul-pipe rotation: None for none, 0 for "by r5", 1..15 for a constant."""
        code = self.small_imm
        if code is None or isa.small_imm_rotation(code) < 0:
            return None
        return isa.small_imm_rotation(code)

    @property
    def add_space(self) -> str:
        """Register space ("a" or "b") the add pipe (or a branch link / ldi first target) writes."""
        return "b" if self.fields["ws"] else "a"

    @property
    def mul_space(self) -> str:
        return "a" if self.fields["ws"] else "b"

    def writes(self) -> List[Tuple[str, str, int]]:
        """(pipe, space, address) of each pipe's write, leaving out writes to null (39)."""
        out = []
        for pipe, space in (("add", self.add_space), ("mul", self.mul_space)):
            addr = self.fields[f"waddr_{pipe}"]
            if addr != isa.ADDR_NOP:
                out.append((pipe, space, addr))
        return out

    def input_muxes(self) -> List[int]:
        """Muxes of the operands the ALU ops consume (add_a/add_b per input count, then mul)."""
        if self.kind != ALU:
            return []
        out = []
        for pipe, op in (("add", self.add_op), ("mul", self.mul_op)):
            n = 2 if op is None else op.n_inputs
            out += [self.fields[f"{pipe}_{x}"] for x in "ab"[:n]]
        return out

    def reads(self) -> List[Tuple[str, int]]:
        """(space, address) of the regfile/I-O locations an ALU word reads through its muxes."""
        muxes = self.input_muxes()
        out = []
        if isa.MUX_A in muxes:
            out.append(("a", self.fields["raddr_a"]))
        if isa.MUX_B in muxes and self.small_imm is None:
            out.append(("b", self.fields["raddr_b"]))
        if self.kind == BRANCH and self.fields["reg"]:
            out.append(("a", self.fields["raddr_a"]))
        return out


def kind_of(word: int) -> str:
    sig = (word >> isa.ALU_FIELDS["sig"][0]) & 0xF
    if sig == isa.SIG_BRANCH:
        return BRANCH
    if sig == isa.SIG_LOAD_IMM:
        mode = isa.field(word, isa.LOAD_IMM_FIELDS, "mode")
        return SEMAPHORE if mode == isa.LOAD_IMM_SEMAPHORE else LOAD_IMM
    return ALU


def decode(word: int) -> Instruction:
    """Decode one 64-bit instruction word."""
    if not 0 <= word <= _WORD_MASK:
        raise ValueError(f"{word!r} is not a 64-bit instruction word")
    kind = kind_of(word)
    return Instruction(word, kind, isa.decode_fields(_LAYOUTS[kind], word), word & UNUSED_MASKS[kind])


def encode(inst: Instruction) -> int:
    """The word of a decoded instruction (fields and unused bits): `encode(decode(w)) == w`."""
    return isa.encode_fields(_LAYOUTS[inst.kind], **inst.fields) | inst.unused_bits


def decode_words(words: Sequence[int]) -> List[Instruction]:
    return [decode(w) for w in words]
