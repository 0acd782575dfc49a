"""Per-instruction trace records of chosen QPUs: PC, disassembly, registers and flags written, and
the I/O the instruction performed."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

import numpy as np

from vc4infer.qpu import isa


def describe_fields(word: int) -> str:
    """One word as its decoded fields: how the emulator names an instruction when no one gave it
    a disassembler (Machine's `describe_instruction`; the emu backend gives vc4infer.qpu's)."""
    sig = isa.field(word, isa.ALU_FIELDS, "sig")
    layout = (isa.BRANCH_FIELDS if sig == isa.SIG_BRANCH else
              isa.LOAD_IMM_FIELDS if sig == isa.SIG_LOAD_IMM else isa.ALU_FIELDS)
    fields = isa.decode_fields(layout, word)
    return f"0x{word:016X} " + " ".join(f"{k}={v}" for k, v in fields.items())


def io_of(word: int) -> List[str]:
    """The I/O an instruction word performs, in words (reads, writes and signals)."""
    sig = isa.field(word, isa.ALU_FIELDS, "sig")
    out: List[str] = []
    if sig == isa.SIG_BRANCH:
        return ["branch"]
    if sig == isa.SIG_LOAD_IMM and isa.field(word, isa.LOAD_IMM_FIELDS, "mode") == isa.LOAD_IMM_SEMAPHORE:
        f = isa.decode_fields(isa.SEMAPHORE_FIELDS, word)
        out.append(f"semaphore {f['semaphore']} {'down' if f['sa'] else 'up'}")
    if sig <= isa.SIG_SMALL_IMM:
        ra = isa.field(word, isa.ALU_FIELDS, "raddr_a")
        rb = isa.field(word, isa.ALU_FIELDS, "raddr_b")
        if ra >= 32 and ra != isa.ADDR_NOP:
            out.append("read " + "/".join(isa.read_names(ra, "a")))
        if sig != isa.SIG_SMALL_IMM and rb >= 32 and rb != isa.ADDR_NOP:
            out.append("read " + "/".join(isa.read_names(rb, "b")))
        if sig in (isa.SIG_LOAD_TMU0, isa.SIG_LOAD_TMU1):
            out.append(isa.SIGNALS[sig])
        if sig in isa.SIGNALS_ENDING_PROGRAM:
            out.append("thread end")
    ws = isa.field(word, isa.ALU_FIELDS, "ws")
    for name, space in (("waddr_add", "b" if ws else "a"), ("waddr_mul", "a" if ws else "b")):
        addr = isa.field(word, isa.ALU_FIELDS, name)
        if addr >= 36 and addr != isa.ADDR_NOP and addr != isa.ADDR_R5:
            if sig <= isa.SIG_SMALL_IMM:
                op = isa.field(word, isa.ALU_FIELDS, "op_add" if name == "waddr_add" else "op_mul")
                if op == 0:
                    continue
            out.append("write " + "/".join(isa.write_names(addr, space)))
    return out


@dataclass
class TraceRecord:
    """One executed instruction of a traced QPU."""
    qpu: int
    pc: int
    cycle: int                      # modelled cycle the instruction issued at
    word: int
    text: str                       # disassembly
    writes: Dict[str, Tuple[int, ...]] = field(default_factory=dict)   # register -> 16 new values
    flags: Dict[str, Tuple[int, ...]] = field(default_factory=dict)    # "z"/"n"/"c" -> 16 new bits
    io: List[str] = field(default_factory=list)

    def format(self) -> str:
        """One line (plus one per written register) for a terminal."""
        lines = [f"qpu{self.qpu} {self.cycle:>8} 0x{self.pc:08X}  {self.text}"
                 + (f"    [{'; '.join(self.io)}]" if self.io else "")]
        for name, values in self.writes.items():
            lines.append(f"{'':>24}{name} = [" + " ".join(f"{v:08X}" for v in values) + "]")
        for name, values in self.flags.items():
            lines.append(f"{'':>24}{name} = " + "".join(str(v) for v in values))
        return "\n".join(lines)


def record_for(qpu: int, pc: int, cycle: int, word: int, before, after,
               describe: Callable[[int], str] = describe_fields) -> TraceRecord:
    """A record from the QPU's (regs, accumulators, flags) snapshots before and after."""
    writes: Dict[str, Tuple[int, ...]] = {}
    regs0, acc0, fl0 = before
    regs1, acc1, fl1 = after
    for r in np.nonzero((regs0 != regs1).any(axis=1))[0]:
        name = f"ra{r}" if r < 32 else f"rb{r - 32}"
        writes[name] = tuple(int(v) for v in regs1[r])
    for a in np.nonzero((acc0 != acc1).any(axis=1))[0]:
        writes[f"r{a}"] = tuple(int(v) for v in acc1[a])
    flags = {name: tuple(int(v) for v in fl1[i]) for i, name in enumerate("znc")  # row 3: internal
             if (fl0[i] != fl1[i]).any()}
    return TraceRecord(qpu, pc, cycle, word, describe(word), writes, flags, io_of(word))
