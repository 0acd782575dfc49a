"""Static hazard checker: finds the timing and usage rules of the VideoCore IV that a QPU program
breaks, before it runs.

`check_program(program_or_words)` decodes every instruction with the tables of `isa`, builds the
program's control flow (branch delay slots, thread end and its delay slots, relative branch
targets) and applies the rules of `vc4infer.qpu.rules`. Rules about consecutive instructions are
checked along every edge of that flow, so an instruction in the last delay slot of a branch is
checked against the branch target too. Rules that need a count (TMU requests, VPM reads) follow
the counts through straight-line code and merge them where paths meet; where the count cannot be
known (paths disagree, a register branch, a setup value computed at run time) nothing is reported.
The checker targets user programs (no tile buffer, no scoreboard, one thread).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

from . import decode, isa
from .rules import ERROR, RULES, WARNING
from .source import UNKNOWN_LOCATION, AssembleError

__all__ = ["Finding", "HazardError", "check_program", "errors"]


# --------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One broken rule at one instruction."""
    index: int          # instruction number, 0-based
    rule: str           # rule id, a key of `vc4infer.qpu.rules.RULES`
    severity: str       # "error" or "warning"
    message: str        # what is wrong here, then the rule's wording and its source
    source: Any = None  # the Program's source location of this instruction, or None

    def location(self) -> str:
        """"file:line" when the source location has them, else "instruction N"."""
        src = self.source
        filename = _first_attr(src, ("filename", "file", "path"))
        line = _first_attr(src, ("lineno", "line"))
        if src is None or src == UNKNOWN_LOCATION or line == 0:
            return f"instruction {self.index}"
        if filename is not None and line is not None:
            return f"{filename}:{line}"
        return str(src)

    def __str__(self) -> str:
        return f"{self.location()}: {self.severity}: [{self.rule}] {self.message}"


def _first_attr(obj: Any, names: Sequence[str]) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


class HazardError(AssembleError):
    """The hazard checker found errors in a program; `.findings` lists all of them (and the
    warnings). `.location` is the source location of the first error, when known."""

    def __init__(self, findings: Sequence[Finding]):
        self.findings = list(findings)
        errs = errors(self.findings)
        lines = "\n".join(str(f) for f in errs)
        first = errs[0].source if errs and errs[0].source is not None else UNKNOWN_LOCATION
        super().__init__(f"{_count(len(errs), 'hazard error')} in the QPU program:\n{lines}", first)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def errors(findings: Iterable[Finding]) -> List[Finding]:
    """The findings of severity "error"."""
    return [f for f in findings if f.severity == ERROR]


# --------------------------------------------------------------------------------------------
# A decoded view of one instruction, in the terms the rules use
# --------------------------------------------------------------------------------------------
_PHYSICAL = range(isa.REGFILE_SIZE)
_ACCUMULATOR_ADDRS = frozenset(isa.ACCUMULATOR_WADDR.values()) | {isa.ADDR_R5}
#: write addresses that reach hardware other than a register (TMU, SFU, VPM, TLB, ...)
_PERIPHERAL_ADDRS = frozenset(range(isa.REGFILE_SIZE, 64)) - _ACCUMULATOR_ADDRS - {isa.ADDR_NOP}
_TMU_ADDRS = range(isa.ADDR_TMU_FIRST, isa.ADDR_TMU_LAST + 1)
_TMU_S_ADDRS = {isa.ADDR_TMU0_S: 0, isa.ADDR_TMU1_S: 1}
_SFU_ADDRS = range(isa.ADDR_SFU_FIRST, isa.ADDR_SFU_LAST + 1)
_TLB_ADDRS = range(isa.ADDR_TLB_FIRST, isa.ADDR_TLB_LAST + 1)
_VPM_DMA_ADDRS = (isa.ADDR_VPM, isa.ADDR_VPM_SETUP, isa.ADDR_VPM_DMA)
_LDTMU = {isa.SIG_LOAD_TMU0: 0, isa.SIG_LOAD_TMU1: 1}
_REGFILE_14 = 14   # written with the next thread's W/Z during thread end [AG p.21]


@dataclass(frozen=True)
class _Write:
    pipe: str    # "add" or "mul" (ALU, load immediate, semaphore) or "link" (branch)
    space: str   # "a" or "b": the register space the pipe writes, after ws
    addr: int
    cond: int


@dataclass
class _Insn:
    index: int
    word: int
    sig: int
    kind: str                         # "alu", "load", "semaphore" or "branch"
    fields: Dict[str, int]
    writes: Tuple[_Write, ...]        # writes that happen (condition not never, op not nop)
    named: Tuple[_Write, ...]         # destinations named with a condition other than never
    muxes: Tuple[Tuple[str, int], ...]  # (pipe, mux) of every operand an active op reads
    reg_reads: FrozenSet[Tuple[str, int]]  # physical regfile locations actually read
    raddrs: FrozenSet[Tuple[str, int]]     # read addresses in use (regfile or I/O)
    rotation: Optional[int]           # mul-pipe rotation: 0 = by r5, 1..15, None = none

    def io_reads(self, addr: int) -> bool:
        return ("a", addr) in self.raddrs or ("b", addr) in self.raddrs

    def writes_to(self, addrs) -> List[_Write]:
        return [w for w in self.writes if w.addr in addrs]

    def writes_addr(self, space: str, addr: int) -> bool:
        return any(w.space == space and w.addr == addr for w in self.writes)

    @property
    def ends_thread(self) -> bool:
        return self.sig in isa.SIGNALS_ENDING_PROGRAM

    @property
    def is_branch(self) -> bool:
        return self.kind == "branch"

    def value(self) -> Optional[int]:
        """The 32-bit value a load-immediate or semaphore word gives both pipes, else None."""
        if self.kind == "load" and self.fields["mode"] == isa.LOAD_IMM_32:
            return self.fields["immediate"]
        if self.kind == "semaphore":   # the ALU outputs carry the low 32 bits of the word
            return self.word & 0xFFFFFFFF
        return None

    def reads_r4(self) -> bool:
        return any(mux == isa.MUX_R4 for _, mux in self.muxes)

    def r4_writers(self) -> List[str]:
        """What in this instruction writes r4 (SFU writes and load signals)."""
        found = [_wname(w) for w in self.writes_to(_SFU_ADDRS)]
        if self.sig in isa.SIGNALS_WRITING_R4:
            found.append(f"signal '{isa.SIGNALS[self.sig]}'")
        return found


def _decode(index: int, word: int) -> _Insn:
    inst = decode.decode(word)
    f = inst.fields
    writes: List[_Write] = []
    named: List[_Write] = []
    for pipe, space, addr in inst.writes():
        if inst.kind == decode.BRANCH:   # the link value goes to both destinations
            w = _Write("link", space, addr, isa.COND_ALWAYS)
            writes.append(w)
            named.append(w)
            continue
        cond = f[f"cond_{pipe}"]
        if cond == isa.COND_NEVER:
            continue
        w = _Write(pipe, space, addr, cond)
        named.append(w)
        if inst.kind != decode.ALU or f[f"op_{pipe}"] != 0:   # a nop writes nothing
            writes.append(w)
    muxes: List[Tuple[str, int]] = []
    raddrs: Set[Tuple[str, int]] = set()
    rotation = None
    if inst.kind == decode.ALU:
        for pipe, op in (("add", inst.add_op), ("mul", inst.mul_op)):
            if f[f"op_{pipe}"] != 0:
                n = 2 if op is None else op.n_inputs   # reserved opcodes: assume both operands
                muxes.extend((pipe, f[f"{pipe}_{x}"]) for x in "ab"[:n])
        raddrs.add(("a", f["raddr_a"]))
        if inst.small_imm is None:
            raddrs.add(("b", f["raddr_b"]))
        raddrs -= {("a", isa.ADDR_NOP), ("b", isa.ADDR_NOP)}
        if f["op_mul"] != 0 and f["cond_mul"] != isa.COND_NEVER:
            rotation = inst.rotation
    elif inst.kind == decode.BRANCH and f["reg"]:
        raddrs.add(("a", f["raddr_a"]))
    reg_reads = frozenset((s, a) for s, a in inst.reads() if a in _PHYSICAL)
    kind = "load" if inst.kind == decode.LOAD_IMM else inst.kind
    return _Insn(index, word, inst.sig, kind, f, tuple(writes), tuple(named), tuple(muxes),
                 reg_reads, frozenset(raddrs), rotation)


def _rname(space: str, addr: int) -> str:
    names = isa.read_names(addr, space)
    return names[0] if names else f"read address {addr} of regfile {space.upper()}"


def _wname(w: _Write) -> str:
    names = isa.write_names(w.addr, w.space)
    return names[0] if names else f"write address {w.addr} of regfile {w.space.upper()}"


def _acc_name(mux: int) -> str:
    return isa.MUX_NAMES[mux]


# --------------------------------------------------------------------------------------------
# Control flow
# --------------------------------------------------------------------------------------------
_LINK_INSTRUCTIONS = isa.BRANCH_LINK_OFFSET_BYTES // 8   # relative base, in instructions


class _Flow:
    """Successors of every instruction: delay slots, branch targets, thread end."""

    def __init__(self, insns: Sequence[_Insn]):
        n = len(insns)
        self.n = n
        self.unknown_targets = False
        self.bad_targets: Dict[int, str] = {}   # branch index -> what is wrong with its target
        self.succ: List[Tuple[int, ...]] = []
        for i in range(n):
            self.succ.append(self._successors(insns, i))
        self.pred: List[List[int]] = [[] for _ in range(n + 1)]
        for i, nexts in enumerate(self.succ):
            for j in nexts:
                self.pred[j].append(i)
        self.reachable = self._reach_from_start()

    def _successors(self, insns: Sequence[_Insn], i: int) -> Tuple[int, ...]:
        end = i - isa.THREAD_END_DELAY_SLOTS
        if end >= 0 and insns[end].ends_thread:
            return ()
        b = i - isa.BRANCH_DELAY_SLOTS
        if b >= 0 and insns[b].is_branch:
            f = insns[b].fields
            nexts = [] if f["cond_br"] == isa.BRANCH_ALWAYS else [i + 1]
            target = self._target(insns[b])
            if target is not None:
                nexts.append(target)
            return tuple(sorted(set(nexts)))
        return (i + 1,)

    def _target(self, br: _Insn) -> Optional[int]:
        f = br.fields
        if f["reg"] or not f["rel"]:   # register or absolute: unknown here
            self.unknown_targets = True
            return None
        imm = f["immediate"] - (1 << 32) if f["immediate"] >> 31 else f["immediate"]
        if imm % 8:
            self.bad_targets[br.index] = f"branch offset {imm} is not a multiple of 8 bytes"
            return None
        target = br.index + _LINK_INSTRUCTIONS + imm // 8
        if not 0 <= target < self.n:
            self.bad_targets[br.index] = (
                f"branch target is instruction {target}, outside the program (0..{self.n - 1})")
            return None
        return target

    def _reach_from_start(self) -> Set[int]:
        seen: Set[int] = set()
        todo = [0] if self.n else []
        while todo:
            i = todo.pop()
            if i in seen or i >= self.n:
                continue
            seen.add(i)
            todo.extend(self.succ[i])
        return seen

    def after(self, i: int, distance: int) -> Set[int]:
        """Instructions that can execute exactly `distance` instructions after instruction i."""
        level = {i}
        for _ in range(distance):
            level = {j for k in level if k < self.n for j in self.succ[k] if j < self.n}
        return level

    def via(self, i: int, j: int) -> str:
        """How control gets from i to its successor j, for messages."""
        return "" if j == i + 1 else f" (a branch target reached from instruction {i})"


# --------------------------------------------------------------------------------------------
# Counting state: TMU requests and parameters, VPM reads (None = not known)
# --------------------------------------------------------------------------------------------
_State = Tuple[Optional[int], ...]   # (requests tmu0, requests tmu1, params tmu0, params tmu1, vpm reads)
_START: _State = (0, 0, 0, 0, 0)
_UNKNOWN: _State = (None,) * 5


def _merge(a: Optional[_State], b: _State) -> _State:
    if a is None:
        return b
    return tuple(x if x == y else None for x, y in zip(a, b))


def _generic_read_num(insn: _Insn) -> Tuple[Optional[bool], Optional[int]]:
    """For an instruction writing the VPM read setup: (is it a generic read setup?, NUM) as far
    as the written value is known: (True, n), (False, None) for a DMA load setup, or (None, None)
    when the value is not known here."""
    value = insn.value()
    if value is None:
        return None, None
    if isa.field(value, isa.VCD_LOAD_FIELDS, "id"):
        return False, None
    if isa.field(value, isa.VPM_GENERIC_READ_FIELDS, "id"):
        return None, None   # ID 01: not documented
    return True, isa.field(value, isa.VPM_GENERIC_READ_FIELDS, "num") or isa.VPM_READ_NUM_ZERO


class _Checker:
    def __init__(self, words: Sequence[int], sources: Sequence[Any]):
        self.insns = [_decode(i, w) for i, w in enumerate(words)]
        self.sources = sources
        self.flow = _Flow(self.insns)
        self.findings: List[Finding] = []

    def report(self, index: int, rule: str, what: str, severity: Optional[str] = None) -> None:
        r = RULES[rule]
        message = f"{what}; {r.wording} [{r.source}]"
        self.findings.append(Finding(index, rule, severity or r.severity, message,
                                     self.sources[index] if index < len(self.sources) else None))

    def run(self) -> List[Finding]:
        for check in _CHECKS:
            check(self)
        self._counts()
        unique = {(f.index, f.rule, f.message): f for f in self.findings}
        return sorted(unique.values(), key=lambda f: (f.index, int(f.rule[1:]), f.message))

    # ---- counting rules (H24, H25, H27, H28) ----------------------------------------------
    def _counts(self) -> None:
        n = len(self.insns)
        states: List[Optional[_State]] = [None] * n
        if n:
            states[0] = _START
        if self.flow.unknown_targets:   # any instruction may be entered with unknown counts
            states = [_merge(s, _UNKNOWN) for s in states]
        todo = [i for i in range(n) if states[i] is not None]
        while todo:
            i = todo.pop()
            out = self._transfer(self.insns[i], states[i], report=False)
            for j in self.flow.succ[i]:
                if j < n:
                    merged = _merge(states[j], out)
                    if merged != states[j]:
                        states[j] = merged
                        todo.append(j)
        for i, state in enumerate(states):
            if state is not None:
                self._transfer(self.insns[i], state, report=True)

    def _transfer(self, insn: _Insn, state: _State, report: bool) -> _State:
        requests, params, vpm = list(state[0:2]), list(state[2:4]), state[4]
        i = insn.index
        # ldtmu pops the receive FIFO of its TMU
        if insn.sig in _LDTMU:
            t = _LDTMU[insn.sig]
            if requests[t] == 0:
                if report:
                    self.report(i, "H27", f"ldtmu{t} with no request pending on TMU{t}")
            elif requests[t] is not None:
                requests[t] -= 1
        # TMU writes: t/r/b are texture parameters, s submits the request
        for w in insn.writes_to(_TMU_ADDRS):
            t = 0 if w.addr <= isa.ADDR_TMU0_B else 1
            texture = None
            if w.addr in _TMU_S_ADDRS:
                texture = None if params[t] is None else params[t] > 0
                if requests[t] is not None:
                    requests[t] += 1
                    if report:
                        self._check_tmu_depth(i, t, requests[t])
                params[t] = 0
            else:
                texture = True
                params[t] = None if params[t] is None else params[t] + 1
            if report and texture and insn.io_reads(isa.ADDR_UNIFORM):
                self.report(i, "H25", f"reads a uniform while writing {_wname(w)} in texture "
                                      f"mode, which consumes a uniform itself")
        # VPM reads, then a new read setup
        if insn.kind == "alu" and insn.io_reads(isa.ADDR_VPM):
            if vpm == 0:
                if report:
                    self.report(i, "H24", "reads the VPM with no read setup outstanding "
                                          "(more reads than the setup's NUM)")
            elif vpm is not None:
                vpm -= 1
        if insn.writes_addr("a", isa.ADDR_VPM_SETUP):
            generic, num = _generic_read_num(insn)
            if generic:
                if report and vpm:
                    self.report(i, "H24", f"writes a new VPM read setup while {_count(vpm, 'read')} of "
                                          f"the previous one are outstanding (the guide queues "
                                          f"it, Mesa and vc4asm found it replaces the first)",
                                WARNING)
                vpm = num
            elif generic is None:
                vpm = None
        if report and insn.ends_thread and vpm:
            self.report(i, "H24", f"the program ends with {_count(vpm, 'VPM read')} of the last read "
                                  f"setup not done", WARNING)
        return (requests[0], requests[1], params[0], params[1], vpm)

    def _check_tmu_depth(self, i: int, t: int, count: int) -> None:
        if count > isa.TMU_FIFO_DEPTH:
            self.report(i, "H28", f"{count} requests outstanding on TMU{t}, more than the "
                                  f"{isa.TMU_FIFO_DEPTH} its FIFO holds")
        elif count > isa.TMU_FIFO_DEPTH_RELIABLE:
            self.report(i, "H28", f"{count} requests outstanding on TMU{t}, more than the "
                                  f"{isa.TMU_FIFO_DEPTH_RELIABLE} that work reliably", WARNING)


# --------------------------------------------------------------------------------------------
# Rules between an instruction and the ones after it
# --------------------------------------------------------------------------------------------
def _h1_regfile_read_after_write(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        written = {(w.space, w.addr): w for w in insn.writes if w.addr in _PHYSICAL}
        if not written:
            continue
        for j in c.flow.succ[i]:
            if j >= c.flow.n:
                continue
            for loc in sorted(written.keys() & c.insns[j].reg_reads):
                c.report(j, "H1", f"reads {_rname(*loc)}, which instruction {i} just "
                                  f"wrote{c.flow.via(i, j)}")


def _h2_r4_after_sfu(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        sfu = insn.writes_to(_SFU_ADDRS)
        if not sfu:
            continue
        for d in range(1, isa.SFU_RESULT_INSTRUCTIONS):
            for j in sorted(c.flow.after(i, d)):
                later = c.insns[j]
                where = f"{_count(d, 'instruction')} after the {_wname(sfu[0])} write at instruction {i}"
                if later.reads_r4():
                    c.report(j, "H2", f"reads r4 {where} (its result is in r4 from instruction "
                                      f"{i + isa.SFU_RESULT_INSTRUCTIONS} on)")
                for what in later.r4_writers():
                    c.report(j, "H2", f"writes r4 ({what}) {where}")


def _h3_h4_h5_rotation(c: _Checker) -> None:
    for j, insn in enumerate(c.insns):
        if insn.rotation is None:
            continue
        mul_muxes = sorted({m for pipe, m in insn.muxes if pipe == "mul"})
        amount = "r5" if insn.rotation == 0 else str(insn.rotation)
        if any(m > isa.MUX_R3 for m in mul_muxes):
            names = ", ".join(_mux_name(insn, m) for m in mul_muxes)
            c.report(j, "H5", f"rotates by {amount} with mul operands {names}: only a per-quad "
                              f"rotation results")
        for i in c.flow.pred[j]:
            prev = c.insns[i]
            for m in mul_muxes:
                if m <= isa.MUX_R3 and any(w.addr == isa.ACCUMULATOR_WADDR[_acc_name(m)]
                                           for w in prev.writes):
                    c.report(j, "H3", f"rotates {_acc_name(m)}, which instruction {i} just "
                                      f"wrote{c.flow.via(i, j)}")
                if m == isa.MUX_R5 and prev.writes_to({isa.ADDR_R5}):
                    c.report(j, "H3", f"rotates r5, which instruction {i} just "
                                      f"wrote{c.flow.via(i, j)}")
            if insn.rotation == 0:
                if prev.writes_to({isa.ADDR_R5}):
                    c.report(j, "H4", f"rotates by r5, which instruction {i} just "
                                      f"wrote{c.flow.via(i, j)}")
                elif prev.kind == "alu" and prev.io_reads(isa.ADDR_VARYING):
                    c.report(j, "H4", f"rotates by r5, which the varying read of instruction "
                                      f"{i} just wrote{c.flow.via(i, j)}")


def _mux_name(insn: _Insn, mux: int) -> str:
    if mux == isa.MUX_A:
        return _rname("a", insn.fields["raddr_a"])
    if mux == isa.MUX_B:
        return "the small immediate" if insn.sig == isa.SIG_SMALL_IMM else \
            _rname("b", insn.fields["raddr_b"])
    return _acc_name(mux)


def _texture_write(insn: _Insn) -> bool:
    """A write to a TMU t/r/b register, which always takes a uniform (texture parameter)."""
    return any(w.addr not in _TMU_S_ADDRS for w in insn.writes_to(_TMU_ADDRS))


def _h6_uniforms_after_address(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        if not insn.writes_to({isa.ADDR_UNIFORMS_ADDRESS}):
            continue
        for d in range(1, isa.UNIFORMS_ADDRESS_INSTRUCTIONS):
            for j in sorted(c.flow.after(i, d)):
                later = c.insns[j]
                if later.kind == "alu" and later.io_reads(isa.ADDR_UNIFORM):
                    c.report(j, "H6", f"reads a uniform {_count(d, 'instruction')} after "
                                      f"instruction {i} wrote uniforms_address")
                elif _texture_write(later):
                    c.report(j, "H6", f"a texture-mode TMU write takes a uniform "
                                      f"{_count(d, 'instruction')} after instruction {i} "
                                      f"wrote uniforms_address")


def _h7_tmu_after_noswap(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        if not insn.writes_to({isa.ADDR_TMU_NOSWAP}):
            continue
        for d in range(1, isa.TMU_NOSWAP_INSTRUCTIONS):
            for j in sorted(c.flow.after(i, d)):
                for w in c.insns[j].writes_to(_TMU_ADDRS):
                    c.report(j, "H7", f"writes {_wname(w)} {_count(d, 'instruction')} after "
                                      f"instruction {i} wrote tmu_noswap")


def _h23_vpm_read_after_setup(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        if not insn.writes_addr("a", isa.ADDR_VPM_SETUP) or not _generic_read_num(insn)[0]:
            continue
        for d in range(1, isa.VPM_READ_SETUP_INSTRUCTIONS):
            for j in sorted(c.flow.after(i, d)):
                later = c.insns[j]
                if later.kind == "alu" and later.io_reads(isa.ADDR_VPM):
                    c.report(j, "H23", f"reads the VPM {_count(d, 'instruction')} after the read setup "
                                       f"at instruction {i} (data from instruction "
                                       f"{i + isa.VPM_READ_SETUP_INSTRUCTIONS} on)")


# --------------------------------------------------------------------------------------------
# Rules within one instruction
# --------------------------------------------------------------------------------------------
def _h8_peripheral_accesses(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        accesses = [_wname(w) for w in insn.writes
                    if w.addr in _TMU_ADDRS or w.addr in _SFU_ADDRS or w.addr in _TLB_ADDRS]
        if insn.sig in _LDTMU or insn.sig in isa.SIGNALS_WRITING_R4:
            accesses.append(f"signal '{isa.SIGNALS[insn.sig]}'")
        if insn.kind == "alu" and insn.io_reads(isa.ADDR_MUTEX):
            accesses.append("mutex read")
        if insn.kind == "semaphore":
            accesses.append("semaphore")
        if len(accesses) > 1:
            c.report(i, "H8", f"does {len(accesses)} peripheral accesses: {', '.join(accesses)}")


def _same_register(addr: int) -> bool:
    """Whether a write to `addr` from regfile space A and one from space B reach the same
    register (accumulators and most I/O registers; not the physical register files)."""
    if addr in _PHYSICAL or addr == isa.ADDR_NOP:
        return False
    return (isa.write_names(addr, "a") == isa.write_names(addr, "b")
            or addr in (isa.ADDR_R5, isa.ADDR_UNIFORMS_ADDRESS))


def _same_value(insn: _Insn) -> bool:
    """Whether both pipes provably produce the same value (so a double write is harmless)."""
    f = insn.fields
    if insn.kind == "branch":
        return True
    colour_pack = f["pm"] == 1 and f["pack"] != 0
    if insn.kind in ("load", "semaphore"):
        return not colour_pack
    return (f["op_add"] == isa.ADD_OP_BY_NAME[isa.ADD_MOV].code
            and f["op_mul"] == isa.MUL_OP_BY_NAME[isa.MUL_MOV].code
            and f["add_a"] == f["add_b"] == f["mul_a"] == f["mul_b"]
            and insn.rotation is None and not colour_pack)


def _exclusive(c1: int, c2: int) -> bool:
    """Conditions that never hold together (zs/zc, ns/nc, cs/cc)."""
    n1, n2 = isa.CONDITIONS[c1], isa.CONDITIONS[c2]
    return c1 > isa.COND_ALWAYS and c2 > isa.COND_ALWAYS and n1[0] == n2[0] and n1 != n2


def _h18_both_pipes_same_register(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        if len(insn.writes) != 2:
            continue
        w1, w2 = insn.writes
        if w1.addr != w2.addr or not _same_register(w1.addr):
            continue
        name = _wname(w1) if w1.addr != isa.ADDR_R5 else "r5"
        if w1.addr in _PERIPHERAL_ADDRS:
            c.report(i, "H18", f"both pipes write {name}, a peripheral register", ERROR)
        elif not _exclusive(w1.cond, w2.cond) and not (w1.addr != isa.ADDR_R5 and _same_value(insn)):
            c.report(i, "H18", f"both pipes write {name}")


def _h19_conditional_peripheral_write(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        for w in insn.writes:
            if (w.addr in _PERIPHERAL_ADDRS and w.addr != isa.ADDR_HOST_INT
                    and w.cond != isa.COND_ALWAYS):
                c.report(i, "H19", f"writes {_wname(w)} under condition "
                                   f"'{isa.CONDITIONS[w.cond]}'")


def _h20_partial_pack_to_peripheral(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        if insn.kind == "branch" or insn.fields["pack"] == 0:
            continue
        pm, pack = insn.fields["pm"], insn.fields["pack"]
        if pm == 0:
            partial = isa.PACK_BYTE_MASK[pack] != 0xF
            targets = [w for w in insn.writes if w.space == "a" and w.addr in _PERIPHERAL_ADDRS]
            mode = isa.REGFILE_A_PACKS[pack]
        else:
            partial = isa.MUL_PACK_BYTE_MASK.get(pack, 0xF) != 0xF
            targets = [w for w in insn.writes if w.pipe == "mul" and w.addr in _PERIPHERAL_ADDRS]
            mode = next((k for k, v in isa.MUL_PACKS.items() if v == pack), str(pack))
        if partial:
            for w in targets:
                c.report(i, "H20", f"packs '{mode}' into {_wname(w)}")


def _h21_vpm_setup_with_access(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        setups = insn.writes_to({isa.ADDR_VPM_SETUP})
        if not setups:
            continue
        if len({w.space for w in setups}) == 2:
            c.report(i, "H21", "writes vpmvcd_rd_setup and vpmvcd_wr_setup together")
        data = []
        if insn.kind == "alu" and insn.io_reads(isa.ADDR_VPM):
            data.append("reads vpm")
        if insn.writes_to({isa.ADDR_VPM}):
            data.append("writes vpm")
        for what in data:
            c.report(i, "H21", f"{what} while writing {_wname(setups[0])}")


def _h22_semaphore_destinations(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        if insn.kind != "semaphore":
            continue
        for w in insn.writes:
            if w.addr in _TLB_ADDRS or w.addr in _TMU_ADDRS or w.addr in _SFU_ADDRS:
                c.report(i, "H22", f"the semaphore instruction writes {_wname(w)}")


def _h26_host_interrupt_zero(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        for w in insn.writes_to({isa.ADDR_HOST_INT}):
            if insn.value() == 0 or _moves_small_imm_zero(insn, w.pipe):
                c.report(i, "H26", "writes 0 to host_interrupt")


def _moves_small_imm_zero(insn: _Insn, pipe: str) -> bool:
    f = insn.fields
    if insn.sig != isa.SIG_SMALL_IMM or pipe not in ("add", "mul"):
        return False
    mov = (isa.ADD_OP_BY_NAME[isa.ADD_MOV] if pipe == "add" else isa.MUL_OP_BY_NAME[isa.MUL_MOV])
    return (f[f"op_{pipe}"] == mov.code and f[f"{pipe}_a"] == f[f"{pipe}_b"] == isa.MUX_B
            and isa.SMALL_IMM_BITS[f["raddr_b"]] == 0
            and (pipe == "add" or insn.rotation is None))


def _h30_fragment_only(c: _Checker) -> None:
    for i, insn in enumerate(c.insns):
        if insn.sig in isa.SIGNALS_FRAGMENT_ONLY:
            c.report(i, "H30", f"uses signal '{isa.SIGNALS[insn.sig]}'")
        for w in insn.writes_to(_TLB_ADDRS):
            c.report(i, "H30", f"writes {_wname(w)}")


# --------------------------------------------------------------------------------------------
# Delay slots and program end
# --------------------------------------------------------------------------------------------
def _h15_h31_delay_slots(c: _Checker) -> None:
    n = len(c.insns)
    for b, insn in enumerate(c.insns):
        if insn.is_branch:
            for k in range(1, isa.BRANCH_DELAY_SLOTS + 1):
                if b + k >= n:
                    break
                slot = c.insns[b + k]
                if slot.is_branch:
                    last = k == isa.BRANCH_DELAY_SLOTS
                    c.report(b + k, "H15", f"branch in delay slot {k} of the branch at "
                                           f"instruction {b}", WARNING if last else ERROR)
                if slot.ends_thread:
                    c.report(b + k, "H31", f"thread end in delay slot {k} of the branch at "
                                           f"instruction {b}")
        if insn.ends_thread:
            for k in range(1, isa.THREAD_END_DELAY_SLOTS + 1):
                if b + k < n and (c.insns[b + k].is_branch or c.insns[b + k].ends_thread):
                    what = "branch" if c.insns[b + k].is_branch else "another thread end"
                    c.report(b + k, "H31", f"{what} in delay slot {k} of the thread end at "
                                           f"instruction {b}")


def _h9_h10_h11_thread_end(c: _Checker) -> None:
    n = len(c.insns)
    for te, insn in enumerate(c.insns):
        if not insn.ends_thread:
            continue
        for w in insn.named:
            if w.addr in _PHYSICAL:
                c.report(te, "H9", f"the thread-end instruction writes {_wname(w)}")
        for k in range(te, min(n, te + isa.THREAD_END_DELAY_SLOTS + 1)):
            last3 = c.insns[k]
            where = "the thread-end instruction" if k == te else \
                f"delay slot {k - te} of the thread end at instruction {te}"
            touched = [_rname(s, a) for s, a in sorted(last3.raddrs) if a == _REGFILE_14]
            touched += [_wname(w) for w in last3.named if w.addr == _REGFILE_14]
            for name in touched:
                c.report(k, "H10", f"{where} uses {name}")
            if last3.kind == "alu":
                for space, addr in sorted(last3.raddrs):
                    if addr in (isa.ADDR_UNIFORM, isa.ADDR_VARYING) + _VPM_DMA_ADDRS:
                        c.report(k, "H11", f"{where} reads {_rname(space, addr)}")
            for w in last3.writes_to(_VPM_DMA_ADDRS):
                c.report(k, "H11", f"{where} writes {_wname(w)}")


def _h29_program_end(c: _Checker) -> None:
    n = len(c.insns)
    ends = [i for i, insn in enumerate(c.insns) if insn.ends_thread]
    if not ends:
        c.report(max(n - 1, 0), "H29", "the program has no thread-end instruction"
                 if n else "the program is empty")
    cut = set()
    for te in ends:
        if te + isa.THREAD_END_DELAY_SLOTS >= n:
            missing = te + isa.THREAD_END_DELAY_SLOTS - n + 1
            c.report(te, "H29", f"the thread end lacks {missing} of its "
                                f"{isa.THREAD_END_DELAY_SLOTS} delay slots")
            cut.update(range(te, n))
    for b, what in sorted(c.flow.bad_targets.items()):
        c.report(b, "H29", what)
    for i in sorted(c.flow.reachable) if ends else ():   # without a thread end, said above
        if n in c.flow.succ[i] and i not in cut:
            c.report(i, "H29", "execution continues past the last instruction")


_CHECKS = (
    _h1_regfile_read_after_write, _h2_r4_after_sfu, _h3_h4_h5_rotation,
    _h6_uniforms_after_address, _h7_tmu_after_noswap, _h8_peripheral_accesses,
    _h9_h10_h11_thread_end, _h15_h31_delay_slots, _h18_both_pipes_same_register,
    _h19_conditional_peripheral_write, _h20_partial_pack_to_peripheral,
    _h21_vpm_setup_with_access, _h22_semaphore_destinations, _h23_vpm_read_after_setup,
    _h26_host_interrupt_zero, _h29_program_end, _h30_fragment_only,
)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
def _words_of(program: Any) -> List[int]:
    words = getattr(program, "words", program)
    if isinstance(words, (bytes, bytearray, memoryview)):
        data = bytes(words)
        if len(data) % 8:
            raise ValueError(f"QPU code is {len(data)} bytes, not a whole number of 8-byte "
                             f"instructions")
        return [w for (w,) in struct.iter_unpack("<Q", data)]
    out = [int(w) for w in words]
    for i, w in enumerate(out):
        if not 0 <= w < 1 << 64:
            raise ValueError(f"instruction {i} is {w:#x}, not a 64-bit word")
    return out


def _sources_of(program: Any, source: Any, n: int) -> List[Any]:
    if source is None:
        for name in ("sources", "source_locations", "locations"):
            source = getattr(program, name, None)
            if source is not None:
                break
    if source is None:
        return [None] * n
    if isinstance(source, dict):
        return [source.get(i) for i in range(n)]
    listed = list(source)
    return listed + [None] * (n - len(listed))


def check_program(program_or_words: Any, source: Any = None) -> List[Finding]:
    """Check a QPU program against the hazard rules of `vc4infer.qpu.rules`.

    `program_or_words` is a Program (its `.words` and per-instruction source locations are
    used), a sequence of 64-bit instruction words, or the program's bytes (little-endian).
    `source` optionally gives the source location of every instruction (a sequence, or a dict
    from instruction index). Returns the findings sorted by instruction; errors and warnings
    alike (see `errors`).
    """
    words = _words_of(program_or_words)
    sources = _sources_of(program_or_words, source, len(words))
    return _Checker(words, sources).run()
