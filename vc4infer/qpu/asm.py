"""The assembler behind the DSL: one `Assembler` per assembly collects words, their source
locations and labels. Instruction names are methods (`asm.fadd(r0, r1, r2)`), dual issue is
chaining (`asm.fadd(...).fmul(...)`), labels are `asm.L.name`, macros live in `macros.py`.

Defaults follow py-videocore so that its kernels assemble to the same words: add ops set flags
unless told otherwise (`mov` and `nop` do not); `nop()` writes r0 under cond always with op nop;
an instruction's unused pipe writes `null` under cond never; ldi writes the unused pipe to null
under the same condition; unused read ports read address 39.
"""
from __future__ import annotations

import contextlib
import numbers
import struct
from typing import Dict, List, Optional, Tuple

from . import isa
from .encode import NO_SIGNAL, AddHalf, MulHalf, condition_code, encode_alu, route_writes
from .program import WORD_BYTES, Program
from .registers import NULL, R0, REGISTERS, Register, ra, rb
from .source import AssembleError, SourceLocation, caller_location

_ADD_KEYWORDS = ("cond", "set_flags", "sig")
_MUL_KEYWORDS = ("cond", "rotate", "pack", "sig", "set_flags")
_ROTATE_KEYWORDS = ("cond", "pack", "sig", "set_flags")
_BRANCH_KEYWORDS = ("reg", "absolute", "link")
_WORD_MASK = (1 << 64) - 1
_IMM_MASK = (1 << 32) - 1


def _check_keywords(op: str, kwargs: dict, allowed: Tuple[str, ...]) -> None:
    for key in kwargs:
        if key not in allowed:
            raise AssembleError(f"{op}() got an unknown keyword argument {key!r}; it takes {list(allowed)}")


def _operands(op: str, n_inputs: int, args: tuple) -> Tuple[Register, object, object]:
    """(dst, a, b) from positional arguments, filling what py-videocore fills with r0."""
    if n_inputs == 0 and len(args) <= 3:
        args = tuple(args) + (R0,) * (3 - len(args))
    elif n_inputs == 1 and len(args) == 2:
        args = tuple(args) + (R0,)
    if len(args) != 3:
        shape = {0: "([dst[, a[, b]]])", 1: "(dst, a)"}.get(n_inputs, "(dst, a, b)")
        raise AssembleError(f"{op} takes {shape}, got {len(args)} positional arguments")
    return args[0], args[1], args[2]


class Label:
    """What `L.name` gives: a label definition at the current position, or, when passed to a
    branch, a reference to the label of that name."""
    __slots__ = ("name", "offset", "location", "is_definition")

    def __init__(self, name: str, offset: int, location: SourceLocation):
        self.name = name
        self.offset = offset
        self.location = location
        self.is_definition = True

    def __repr__(self) -> str:
        return f"L[{self.name!r}]"


class LabelFactory:
    """`L.loop` / `L['loop']`: defines (as a statement) or names (as a branch target) a label."""

    def __init__(self, asm: "Assembler"):
        self.__asm = asm          # name-mangled: L.<anything a kernel may call a label> stays free

    def __getitem__(self, name: str) -> Label:
        if not isinstance(name, str) or not name:
            raise AssembleError(f"label name {name!r} is not a non-empty string")
        asm = self.__asm
        label = Label(".".join(asm._namespaces + [name]), len(asm._words) * WORD_BYTES, caller_location())
        asm._label_defs.append(label)
        return label

    def __getattr__(self, name: str) -> Label:
        if name.startswith("__"):
            raise AttributeError(name)
        return self[name]


class MulIssued:
    """Returned by a mul-only instruction: nothing can be chained after it."""

    def __init__(self, op: str):
        self._op = op

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AssembleError(f"{self._op} was issued on the mul pipe; to dual-issue, write the add-pipe "
                            f"op first and chain the mul op: fadd(...).{self._op}(...)")


class DualIssue:
    """Returned by an add-pipe instruction; its methods put a mul-pipe op into the same word."""

    def __init__(self, asm: "Assembler", index: int, add: AddHalf):
        self._asm = asm
        self._index = index
        self._add = add
        self._used = False

    def _issue(self, op: str, *args, **kwargs) -> MulIssued:
        if self._used:
            raise AssembleError("this instruction already has a mul-pipe op")
        mul = self._asm._mul_half(op, args, kwargs)
        self._asm._words[self._index] = encode_alu(self._add, mul)
        self._used = True
        return MulIssued(op)

    def mov(self, dst, src, **kwargs) -> MulIssued:
        """Mul-pipe move: `v8min dst, src, src`."""
        _check_keywords("mov", kwargs, _MUL_KEYWORDS)
        return self._issue(isa.MUL_MOV, dst, src, src, **kwargs)

    def rotate(self, dst, src, shift, **kwargs) -> MulIssued:
        """Mul-pipe move rotated by `shift` elements (1..15, -15..-1, or r5)."""
        _check_keywords("rotate", kwargs, _ROTATE_KEYWORDS)
        return self._issue(isa.MUL_MOV, dst, src, src, rotate=shift, **kwargs)

    def __getattr__(self, name: str):
        if name in isa.MUL_OP_BY_NAME:
            return lambda *args, **kwargs: self._issue(name, *args, **kwargs)
        if name in isa.ADD_OP_BY_NAME:
            raise AssembleError(f"{name} is an add-pipe op; it cannot be chained as the mul-pipe op "
                                f"(mul-pipe ops: {[op.name for op in isa.MUL_OPS]})")
        raise AttributeError(f"no mul-pipe op named {name!r}; mul-pipe ops: "
                             f"{[op.name for op in isa.MUL_OPS] + ['mov', 'rotate']}")


class Assembler:
    """Collects one program. Use the DSL (`@qpu`, `assemble`) rather than this class directly."""

    def __init__(self):
        self._words: List[int] = []
        self._locations: List[SourceLocation] = []
        self._label_defs: List[Label] = []
        self._fixups: List[Tuple[int, Label]] = []
        self._namespaces: List[str] = []
        self.L = LabelFactory(self)

    # ---- registers as attributes (asm.r0, asm.ra[3]) -------------------------------------------
    def __getattr__(self, name: str):
        if name in REGISTERS:
            return REGISTERS[name]
        if name == "ra":
            return ra
        if name == "rb":
            return rb
        raise AttributeError(f"the QPU assembler has no instruction or register named {name!r}")

    @contextlib.contextmanager
    def namespace(self, name: str):
        """Labels defined and referenced inside `with namespace('x'):` are prefixed 'x.'."""
        self._namespaces.append(str(name))
        try:
            yield self
        finally:
            self._namespaces.pop()

    # ---- emission ---------------------------------------------------------------------------
    def _emit(self, word: int) -> int:
        self._words.append(word)
        self._locations.append(caller_location())
        return len(self._words) - 1

    def _add_op(self, op: str, *args, **kwargs) -> DualIssue:
        _check_keywords(op, kwargs, _ADD_KEYWORDS)
        dst, a, b = _operands(op, isa.ADD_OP_BY_NAME[op].n_inputs, args)
        set_flags = kwargs.get("set_flags", True)
        add = AddHalf(op=op, dst=dst, a=a, b=b, cond=kwargs.get("cond", "always"),
                      set_flags=bool(set_flags) and op != "nop", sig=kwargs.get("sig", NO_SIGNAL))
        index = self._emit(encode_alu(add, MulHalf()))
        return DualIssue(self, index, add)

    def _mul_half(self, op: str, args: tuple, kwargs: dict) -> MulHalf:
        _check_keywords(op, kwargs, _MUL_KEYWORDS)
        dst, a, b = _operands(op, isa.MUL_OP_BY_NAME[op].n_inputs, args)
        return MulHalf(op=op, dst=dst, a=a, b=b, cond=kwargs.get("cond", "always"),
                       rotate=kwargs.get("rotate", 0), pack=kwargs.get("pack", "nop"),
                       sig=kwargs.get("sig", NO_SIGNAL), set_flags=bool(kwargs.get("set_flags", False)))

    def _mul_op(self, op: str, *args, **kwargs) -> MulIssued:
        mul = self._mul_half(op, args, kwargs)
        self._emit(encode_alu(AddHalf(), mul))
        return MulIssued(op)

    def mov(self, dst, src, **kwargs) -> DualIssue:
        """Add-pipe move (`bor dst, src, src`); does not set flags unless set_flags=True."""
        _check_keywords("mov", kwargs, _ADD_KEYWORDS)
        kwargs.setdefault("set_flags", False)
        return self._add_op(isa.ADD_MOV, dst, src, src, **kwargs)

    def rotate(self, dst, src, shift, **kwargs) -> MulIssued:
        """Mul-pipe move rotated by `shift` elements: 1..15, -15..-1 (mod 16), or r5."""
        _check_keywords("rotate", kwargs, _ROTATE_KEYWORDS)
        return self._mul_op(isa.MUL_MOV, dst, src, src, rotate=shift, **kwargs)

    def ldi(self, *args, **kwargs) -> None:
        """Load immediate: `ldi(dst, value)` or `ldi(dst1, dst2, value)`. `value` is a 32-bit int,
        a float, or a list of up to 16 per-element 2-bit values (all >= 0: 0..3, else -2..1)."""
        _check_keywords("ldi", kwargs, ("cond", "set_flags", "sig"))
        if len(args) == 2:
            (dst1, value), dst2 = args, NULL
        elif len(args) == 3:
            dst1, dst2, value = args
        else:
            raise AssembleError(f"ldi takes (dst, value) or (dst1, dst2, value), got {len(args)} arguments")
        if kwargs.get("sig", "load") != "load":
            raise AssembleError(f"ldi cannot carry signal {kwargs['sig']!r}: the signal field holds 'load'")
        waddr_add, waddr_mul, ws, pack = route_writes(dst1, dst2)
        immediate, mode = encode_load_value(value)
        cond = condition_code(kwargs.get("cond", "always"))
        self._emit(isa.encode_fields(
            isa.LOAD_IMM_FIELDS, sig=isa.SIG_LOAD_IMM, mode=mode, pm=0, pack=pack, cond_add=cond,
            cond_mul=cond, sf=1 if kwargs.get("set_flags", False) else 0, ws=ws,
            waddr_add=waddr_add, waddr_mul=waddr_mul, immediate=immediate))

    def _semaphore(self, decrement: int, number) -> None:
        if isinstance(number, bool) or not isinstance(number, numbers.Integral) \
                or not 0 <= number <= isa.SEMAPHORE_MAX:
            raise AssembleError(f"semaphore number {number!r} is out of range 0..{isa.SEMAPHORE_MAX}")
        self._emit(isa.encode_fields(
            isa.SEMAPHORE_FIELDS, sig=isa.SIG_LOAD_IMM, mode=isa.LOAD_IMM_SEMAPHORE,
            cond_add=isa.COND_ALWAYS, cond_mul=isa.COND_ALWAYS, waddr_add=isa.ADDR_NOP,
            waddr_mul=isa.ADDR_NOP, sa=decrement, semaphore=int(number)))

    def sema_up(self, number: int) -> None:
        """Increment semaphore `number` (0..15); stalls while it is at 15."""
        self._semaphore(0, number)

    def sema_down(self, number: int) -> None:
        """Decrement semaphore `number` (0..15); stalls while it is at 0."""
        self._semaphore(1, number)

    def raw(self, low: int, high: int) -> None:
        """One instruction given as its two 32-bit halves (low word first, as in memory)."""
        for half in (low, high):
            if isinstance(half, bool) or not isinstance(half, numbers.Integral) or not 0 <= half <= _IMM_MASK:
                raise AssembleError(f"raw(): {half!r} is not a 32-bit unsigned value")
        self._emit((int(high) << 32) | int(low))

    def raw_program(self, data, size: Optional[int] = None) -> None:
        """Instructions given as little-endian bytes (`size` bytes of `data`, a multiple of 8)."""
        code = memoryview(data).tobytes()
        code = code if size is None else code[:size]
        if len(code) % WORD_BYTES:
            raise AssembleError(f"raw_program(): {len(code)} bytes is not a whole number of instructions")
        for (word,) in struct.iter_unpack("<Q", code):
            self._emit(word)

    def _branch(self, cond: str, target=None, reg=None, absolute=False, link=NULL, **kwargs) -> None:
        _check_keywords(cond, kwargs, _BRANCH_KEYWORDS)
        label = None
        if target is None:
            immediate = 0
        elif isinstance(target, Label):
            if absolute:
                raise AssembleError(f"{cond}({target!r}, absolute=True): a label target needs a "
                                    "relative branch")
            target.is_definition = False
            label, immediate = target, 0
        elif isinstance(target, numbers.Integral) and not isinstance(target, bool):
            immediate = int(target)
            if not -(1 << 31) <= immediate <= _IMM_MASK:
                raise AssembleError(f"branch offset {immediate} does not fit in 32 bits")
            if immediate % WORD_BYTES:
                raise AssembleError(f"branch offset {immediate} is not a multiple of 8 bytes")
        else:
            raise AssembleError(f"invalid branch target {target!r}: give a label (L.name) or a byte offset")
        if reg is not None:
            if not isinstance(reg, Register) or not reg.is_regfile or not reg.spaces & isa.READ_A \
                    or reg.unpack_mode != "nop":
                raise AssembleError(f"branch register {reg!r} must be one of ra0-ra31")
        waddr_add, waddr_mul, ws, pack = route_writes(link, NULL)
        if pack:
            raise AssembleError(f"link register {link!r}: a branch cannot pack its link value")
        index = self._emit(isa.encode_fields(
            isa.BRANCH_FIELDS, sig=isa.SIG_BRANCH, cond_br=isa.BRANCH_CONDITION_CODES[cond],
            rel=0 if absolute else 1, reg=0 if reg is None else 1,
            raddr_a=0 if reg is None else reg.addr, ws=ws, waddr_add=waddr_add, waddr_mul=waddr_mul,
            immediate=immediate & _IMM_MASK))
        if label is not None:
            self._fixups.append((index, label))

    # ---- finishing ----------------------------------------------------------------------------
    def program(self, name: str = "program") -> Program:
        """Resolve labels and return the Program. Raises AssembleError for duplicate or unknown labels."""
        labels: Dict[str, int] = {}
        first: Dict[str, Label] = {}
        for label in self._label_defs:
            if not label.is_definition:
                continue
            if label.name in labels:
                raise AssembleError(f"duplicate label {label.name!r} (first defined at "
                                    f"{first[label.name].location})", label.location)
            labels[label.name] = label.offset
            first[label.name] = label
        words = list(self._words)
        for index, label in self._fixups:
            if label.name not in labels:
                raise AssembleError(f"undefined label {label.name!r}", self._locations[index])
            offset = labels[label.name] - WORD_BYTES * (index + 1 + isa.BRANCH_DELAY_SLOTS)
            words[index] = (words[index] & ~_IMM_MASK & _WORD_MASK) | (offset & _IMM_MASK)
        return Program(words=words, locations=list(self._locations), labels=labels, name=name)


def encode_load_value(value) -> Tuple[int, int]:
    """(immediate, mode) of an ldi value: 32-bit int or float, or per-element 2-bit list."""
    if isinstance(value, bool):
        raise AssembleError(f"ldi value {value!r}: write 1 or 0")
    if isinstance(value, numbers.Integral):
        v = int(value)
        if not -(1 << 31) <= v <= _IMM_MASK:
            raise AssembleError(f"ldi value {v} does not fit in 32 bits")
        return v & _IMM_MASK, isa.LOAD_IMM_32
    if isinstance(value, numbers.Real):
        try:
            return struct.unpack("<I", struct.pack("<f", float(value)))[0], isa.LOAD_IMM_32
        except OverflowError:
            raise AssembleError(f"ldi value {value!r} is out of float32 range") from None
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        values = list(value.tolist() if hasattr(value, "tolist") else value)
        return _per_element(values)
    raise AssembleError(f"unsupported ldi value {value!r}: give an int, a float or a list of "
                        "up to 16 per-element 2-bit values")


def _per_element(values: list) -> Tuple[int, int]:
    if len(values) > isa.SIMD_WIDTH:
        raise AssembleError(f"{len(values)} per-element values: at most {isa.SIMD_WIDTH}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise AssembleError(f"per-element ldi value {v!r} is not an integer")
    values = [int(v) for v in values] + [0] * (isa.SIMD_WIDTH - len(values))
    unsigned = all(v >= 0 for v in values)
    low = high = 0
    for i, v in enumerate(values):
        if (unsigned and v > 3) or (not unsigned and not -2 <= v <= 1):
            kind = "unsigned (0..3)" if unsigned else "signed (-2..1, the list has a negative value)"
            raise AssembleError(f"per-element ldi value {v} (element {i}) is not a 2-bit {kind} value")
        high |= ((v >> 1) & 1) << i
        low |= (v & 1) << i
    mode = isa.LOAD_IMM_PER_ELEMENT_UNSIGNED if unsigned else isa.LOAD_IMM_PER_ELEMENT_SIGNED
    return (high << isa.SIMD_WIDTH) | low, mode


def _install_instructions() -> None:
    def add_method(name):
        def method(self, *args, **kwargs):
            return self._add_op(name, *args, **kwargs)
        method.__name__ = name
        method.__doc__ = f"Add-pipe `{name}` (dst, a, b); keywords cond=, set_flags=, sig=."
        return method

    def mul_method(name):
        def method(self, *args, **kwargs):
            return self._mul_op(name, *args, **kwargs)
        method.__name__ = name
        method.__doc__ = f"Mul-pipe `{name}` (dst, a, b); keywords cond=, rotate=, pack=, sig=."
        return method

    def branch_method(name):
        def method(self, target=None, **kwargs):
            return self._branch(name, target, **kwargs)
        method.__name__ = name
        method.__doc__ = f"Branch `{name}`(target=None, reg=None, absolute=False, link=null)."
        return method

    for op in isa.ADD_OPS:
        setattr(Assembler, op.name, add_method(op.name))
    for op in isa.MUL_OPS:
        if op.name not in isa.ADD_OP_BY_NAME:
            setattr(Assembler, op.name, mul_method(op.name))
    for cond in isa.BRANCH_CONDITIONS:
        setattr(Assembler, cond.name, branch_method(cond.name))


_install_instructions()

#: instruction names a kernel can call (macros are added by `macros.py`)
INSTRUCTION_NAMES: List[str] = (
    [op.name for op in isa.ADD_OPS]
    + [op.name for op in isa.MUL_OPS if op.name not in isa.ADD_OP_BY_NAME]
    + [cond.name for cond in isa.BRANCH_CONDITIONS]
    + ["mov", "rotate", "ldi", "sema_up", "sema_down", "raw", "raw_program"]
)
