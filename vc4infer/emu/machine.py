"""The emulated VideoCore IV as a Python object: GPU memory, 12 QPUs, a launch = `run(control)`.

    memory = GpuMemory(64 << 20)
    machine = Machine(memory, clock_hz=250e6, strict=True)
    stats = machine.run([(uniforms_bus_address, code_bus_address), ...])

Each launch starts from a clean machine as execute_qpu does (caches invalidated, semaphores 0,
mutex free, registers 0) except the VPM, whose contents persist like the hardware's. Errors are
raised as vc4infer.emu.errors classes with messages naming the QPU, its PC, the instruction and what
went wrong; figures in the returned LaunchStats are modelled.
"""
from __future__ import annotations

import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vc4infer.device import LaunchStats
from vc4infer.device import DriverError, LaunchTimeoutError
from vc4infer.emu import core, decode, qic, state, timing, tmu, warmup
from vc4infer.emu.errors import (BudgetExceededError, DeadlockError, MemoryFaultError,
                                 ModelledTimeLimitError, StrayReadWarning, UndefinedBehaviourError)
from vc4infer.emu.memory import GpuMemory
from vc4infer.emu.state import (ERR_ADDR, ERR_KIND, ERR_NBYTES, ERR_PC, ERR_QPU, ERR_ROW, ERR_X,
                                NQ, QS_CYCLE, QS_INSTR, QS_PC, QS_STATUS)
from vc4infer.emu.trace import TraceRecord, describe_fields, record_for
from vc4infer.qpu import isa

#: instructions the compiled loop runs between two wall-clock timeout checks
CHUNK_INSTRUCTIONS = 1 << 22
UNLIMITED = np.iinfo(np.int64).max
#: predecoded code kept between launches (a launch decodes only code it has not seen): at most
#: this many bytes of decoded rows (a row per 8 bytes of code buffer, C_N int64 columns)
DECODED_CACHE_BYTES = 32 << 20

UNDEFINED_MESSAGES: Dict[int, str] = {
    state.UB_REGFILE_RAW: "reads physical register {x} written by the previous instruction (no forwarding: "
                          "the hardware returns the old value; put one instruction in between)",
    state.UB_R4_SFU: "touches r4 before the SFU result arrives (r4 is valid 3 instructions after the SFU "
                     "write; {x} more to wait)",
    state.UB_VPM_READ_BEYOND_NUM: "reads the VPM beyond the NUM vectors of its read setup (undefined data)",
    state.UB_COND_PERIPHERAL: "writes peripheral register {x} conditionally (the FIFO is triggered for all "
                              "elements with undefined data; use cond='always')",
    state.UB_SEMAPHORE_END: "ends the launch with semaphore {x} not back to 0 (its value is left for the "
                            "next "
                            "launch on a board)",
    state.UB_DMA_IN_FLIGHT_END: "ends its program while a DMA it started is still running ({x} cycles left): "
                                "read vpm_ld_wait / vpm_st_wait before the end",
    state.UB_STALE_TMU: "TMU-reads {x} words whose cached copies are stale (written by DMA in this launch; "
                        "the TMU caches are not coherent with VDW stores)",
    state.UB_TMU_FIFO_OVERFLOW: "queues a 9th TMU request without ldtmu ({x} outstanding): the FIFO "
                                "holds 8 and "
                                "the hardware would hang",
    state.UB_TMU_FIFO_DEPTH: "queues more than 4 TMU requests ({x} outstanding already; more than 4 is "
                             "unreliable on hardware, vc4asm addendum)",
    state.UB_LDTMU_EMPTY: "signals ldtmu with no outstanding request on TMU{x} (the hardware would hang)",
    state.UB_UNIFORM_AFTER_ADDR: "reads a uniform {x} instructions too early after writing uniforms_address "
                                 "(the new stream starts 3 instructions after the write)",
    state.UB_NOSWAP_LATE: "accesses the TMU {x} instructions too early after writing tmu_noswap",
    state.UB_BRANCH_IN_DELAY: "branches in delay slot {x} of a previous branch",
    state.UB_ROTATE_HAZARD: "rotates an accumulator (or by r5) written by the previous instruction",
    state.UB_ROTATE_MIXED: "rotates with one accumulator and one non-accumulator mul operand (undocumented)",
    state.UB_BOTH_WRITE_SAME: "writes I/O register {x} from both pipes",
    state.UB_PARTIAL_PACK_PERIPHERAL: "writes a partial-width pack to peripheral register {x}",
    state.UB_RESERVED_SETUP: "writes a reserved or undocumented setup word 0x{x:08X}",
    state.UB_VPM_SETUP_REPLACED: "writes a new VPM read setup while {x} vectors of the previous one are "
                                 "unread",
    state.UB_VPM_READS_AT_END: "ends with {x} VPM reads of its setup not done",
    state.UB_FRAGMENT_ONLY: "uses a fragment-shader-only signal or register ({x}) in a user program",
    state.UB_TEXTURE: "writes TMU parameter register {x}: texture (non-direct) lookups are not emulated; "
                      "write only tmu0_s / tmu1_s for direct lookups",
    state.UB_UNIFORM_TWICE: "reads the same FIFO register ({x}) through both raddr fields (one value or two "
                            "is undocumented)",
    state.UB_BRANCH_ELEMENT: "branches by register ra{x} whose elements 0 and 15 differ (the guide says "
                             "element 0, hardware measurements say element 15)",
    state.UB_UNPACK_MIXED: "unpacks a regfile-A operand for a float and an integer op at once (guide and "
                           "VC4C disagree on the result)",
    state.UB_FLAG_DISAGREE: "reads a C flag set by itof or imul24 where vc4asm and VC4C disagree on its "
                            "value",
    state.UB_MUTEX_NOT_OWNER: "releases the mutex without holding it (owner: {x})",
    state.UB_RESERVED_OP: "uses reserved encoding {x}",
    state.UB_MISALIGNED: "branches to 0x{x:08X}, not a multiple of 8",
    state.UB_UNIF_ADDR_REL: "writes the B-space uniforms address (relative form, undocumented)",
    state.UB_SETUP_AND_VPM: "combines a VPM setup write with a VPM access in one instruction",
    state.UB_PITCHB_BEYOND_GUIDE: "sets a DMA load pitch (MPITCHB) of {x} bytes, past the 13 bits the "
                                  "guide documents (the hardware reads 16: py-videocore's SGEMM "
                                  "relies on it)",
    state.UB_SF_COND_NEVER: "sets flags with an add op whose condition is never while the mul op writes "
                            "(guide: the mul pipe sets them; hardware measurements: nobody does)",
}


class Machine:
    """An emulated V3D with `memory`. `trace` lists QPU numbers to trace; records go to
    `trace_callback` if given, else to `self.trace_records`."""

    def __init__(self, memory: GpuMemory, clock_hz: float = timing.DEFAULT_CLOCK_HZ,
                 strict: bool = False, trace: Sequence[int] = (),
                 max_instructions: Optional[int] = None, max_cycles: Optional[int] = None,
                 trace_callback: Optional[Callable[[TraceRecord], None]] = None,
                 fast_path: bool = True,
                 describe_instruction: Callable[[int], str] = describe_fields):
        self.memory = memory
        #: names an instruction word in errors and trace records (the emu backend passes the
        #: toolchain's disassembler; the emulator itself only decodes fields)
        self.describe_instruction = describe_instruction
        self.fast_path = bool(fast_path)   # False: every instruction through the general loop
        self.clock_hz = float(clock_hz)
        self.strict = bool(strict)
        for q in trace:
            if not 0 <= q < NQ:
                raise DriverError(f"trace lists QPU {q}; QPUs are numbered 0..{NQ - 1}")
        self.trace = tuple(trace)
        self.trace_callback = trace_callback
        self.trace_records: List[TraceRecord] = []
        self.max_instructions = max_instructions
        self.max_cycles = max_cycles
        self.tp = timing.parameters(self.clock_hz)
        self.regs = np.zeros((NQ, 2 * isa.REGFILE_SIZE, isa.SIMD_WIDTH), dtype=np.uint32)
        self.acc = np.zeros((NQ, 6, isa.SIMD_WIDTH), dtype=np.uint32)
        self.flags = np.zeros((NQ, 4, isa.SIMD_WIDTH), dtype=np.uint8)   # Z, N, C, C-ambiguous
        self.oldv = np.zeros((NQ, 2, isa.SIMD_WIDTH), dtype=np.uint32)
        self.sfu_val = np.zeros((NQ, isa.SIMD_WIDTH), dtype=np.uint32)
        self.tmu_data = np.zeros((NQ, 2, isa.TMU_FIFO_DEPTH, isa.SIMD_WIDTH), dtype=np.uint32)
        self.tmu_ready = np.zeros((NQ, 2, isa.TMU_FIFO_DEPTH), dtype=np.int64)
        self.vpm = np.zeros(isa.VPM_USER_ROWS * isa.VPM_ROW_WORDS, dtype=np.uint32)
        self.qs = np.zeros((NQ, state.QS_N), dtype=np.int64)
        self.gs = np.zeros(state.GS_N, dtype=np.int64)
        self.gt = np.zeros(state.GT_N, dtype=np.float64)
        self.stall = np.zeros((NQ, state.STALL_N), dtype=np.int64)
        self.caches = tmu.new_caches(state.NSLICES * state.TMUS_PER_SLICE)
        self.qic = qic.new_cache()
        self.err = np.zeros(state.ERR_N, dtype=np.int64)
        self.ip = np.zeros(state.IP_N, dtype=np.int64)
        self._regions: List[Tuple[int, int, int]] = []
        self._prog = np.zeros((0, decode.C_N), dtype=np.int64)
        self._decoded: Dict[bytes, np.ndarray] = {}   # code bytes -> predecoded rows (LRU order)
        self.n_qpus = 0

    # ---- launch ---------------------------------------------------------------------------------
    def run(self, control: Sequence[Tuple[int, int]], timeout_s: Optional[float] = None,
            max_modelled_s: Optional[float] = None) -> LaunchStats:
        """Run one program instance per (uniforms_bus_address, code_bus_address) pair on QPUs
        0..n-1. `timeout_s` bounds the host time; `max_modelled_s` the modelled V3D time (a
        QPU's cycles at the clock), past which the launch stops (ModelledTimeLimitError)."""
        control = [(int(u), int(c)) for u, c in control]
        if not 1 <= len(control) <= NQ:
            raise DriverError(f"a launch runs 1 to {NQ} program instances; {len(control)} were given")
        t0 = time.perf_counter()
        cpu0 = time.thread_time()
        self._reset(control)
        cap = None if max_modelled_s is None else int(max_modelled_s * self.clock_hz)
        if cap is not None and cap < self.ip[state.IP_MAX_CYCLES]:
            self.ip[state.IP_MAX_CYCLES] = cap
        else:
            cap = None                          # the user's budget, if any, comes first
        bounds = self.memory.bounds()
        warmup.ensure_compiled(core._run, self._loop_arguments(bounds))
        while True:
            with np.errstate(all="ignore"):          # only matters for the plain-Python fallback
                event = core.run(self._loop_arguments(bounds))
            if event == state.EV_DONE:
                break
            if event == state.EV_NEED_DECODE:
                self._decode_at(int(self.err[ERR_ADDR]))
            elif event == state.EV_TRACE:
                self._record_trace(int(self.err[ERR_QPU]), int(self.err[ERR_PC]))
            elif event == state.EV_CHUNK:
                pass
            elif event == state.EV_BUDGET and cap is not None and \
                    int(self.qs[int(self.err[ERR_QPU]), QS_CYCLE]) >= cap:
                raise ModelledTimeLimitError(
                    f"the launch ran past {max_modelled_s:g} s of modelled V3D time at "
                    f"{self.clock_hz / 1e6:.0f} MHz ({int(self.gs[state.GS_TOTAL_INSTR])} "
                    f"instructions run), the longest one launch may take: "
                    + self._where_all() + ". A kernel that never ends, or too much work for "
                    "one launch: split it (max_launch_seconds)")
            else:
                raise self._error(event)
            if timeout_s is not None and time.perf_counter() - t0 > timeout_s:
                raise LaunchTimeoutError(
                    f"the emulated launch did not finish within {timeout_s} s of host time "
                    f"({int(self.gs[state.GS_TOTAL_INSTR])} instructions run): "
                    + self._where_all() + "; give execute a longer timeout or set a budget")
        self._warn_stray_reads()
        return self._stats(time.perf_counter() - t0, time.thread_time() - cpu0)

    def _loop_arguments(self, bounds: np.ndarray) -> tuple:
        return core.loop_arguments(self._prog, self._region_array(), self.memory.data, bounds,
                                   self.regs, self.acc, self.flags, self.oldv, self.sfu_val,
                                   self.tmu_data, self.tmu_ready, self.vpm, self.qs, self.gs, self.gt,
                                   self.stall, *self.caches, self.qic, self.tp, self.ip, self.err)

    def _reset(self, control: Sequence[Tuple[int, int]]) -> None:
        self.n_qpus = len(control)
        for arr in (self.regs, self.acc, self.flags, self.oldv, self.sfu_val, self.tmu_data,
                    self.tmu_ready, self.qs, self.gs, self.gt, self.stall, self.err):
            arr[...] = 0
        tmu.invalidate(self.caches)
        qic.invalidate(self.qic)
        self.gs[state.GS_MUTEX_OWNER] = -1
        qs = self.qs
        for column in (state.QS_UPTR_AT, state.QS_BR1_AT, state.QS_BR2_AT, state.QS_END_AT,
                       state.QS_SFU_AT, state.QS_NOSWAP_AT, state.QS_LASTW_A, state.QS_LASTW_B,
                       state.QS_ULINE, state.QS_ILINE):
            qs[:, column] = -1
        for column in (state.QS_LASTW_INSTR, state.QS_R5W_INSTR, state.QS_ACCW_INSTR,
                       state.QS_BRANCH_INSTR):
            qs[:, column] = -10
        self._regions = []
        self._prog = np.zeros((0, decode.C_N), dtype=np.int64)
        for q, (uniforms, code) in enumerate(control):
            qs[q, state.QS_PC] = code
            qs[q, state.QS_UPTR] = uniforms
            qs[q, QS_STATUS] = state.ST_RUN
            if self.memory.find(code, 8) is None:
                raise MemoryFaultError(
                    f"QPU {q}: the program's first instruction at 0x{code:08X} is outside every live "
                    f"buffer; {self.memory.describe(code)}. Pass the code buffer's bus address.")
            self._decode_at(code)
        self._set_uniform_rows(control)
        self.ip[state.IP_NQ] = self.n_qpus
        self.ip[state.IP_STRICT] = int(self.strict)
        self.ip[state.IP_FAST_PATH] = int(self.fast_path)
        self.ip[state.IP_MAX_INSTR] = self.max_instructions if self.max_instructions else UNLIMITED
        self.ip[state.IP_MAX_CYCLES] = self.max_cycles if self.max_cycles else UNLIMITED
        self.ip[state.IP_CHUNK] = CHUNK_INSTRUCTIONS
        mask = 0
        for q in self.trace:
            mask |= 1 << q
        self.ip[state.IP_TRACE_MASK] = mask
        self.ip[state.IP_MEMBASE] = self.memory.base
        self._trace_snapshots = {q: self._snapshot(q) for q in self.trace}

    def _set_uniform_rows(self, control: Sequence[Tuple[int, int]]) -> None:
        """Each QPU reads the launch's uniforms within its own row, from its start to the next
        QPU's start in the same buffer (or the buffer's end); a read past it, into another QPU's
        row, faults in strict mode and is a stray read otherwise (the hardware reads on, which
        hides a kernel's miscount)."""
        starts = sorted({u for u, _ in control})
        for q, (u, _) in enumerate(control):
            buffer = self.memory.find(u, 4)
            if buffer is None:
                continue                               # the first read faults on its own
            later = [s for s in starts if u < s < buffer.end and s >= buffer.bus_address]
            self.qs[q, state.QS_UROW_LO] = u
            self.qs[q, state.QS_UROW_HI] = min(later) if later else buffer.end

    def _decode_at(self, address: int) -> None:
        """Predecode from `address` to the end of its buffer (once per address and launch)."""
        if any(start == address for start, _, _ in self._regions):
            return
        buf = self.memory.find(address, 8)
        n = (buf.end - address) // 8
        off = address - self.memory.base
        code = self.memory.data[off: off + 8 * n].tobytes()
        rows = self._decoded.pop(code, None)       # keyed by content: code may change between launches
        if rows is None:
            rows = decode.predecode(np.frombuffer(code, dtype="<u8"))
        self._decoded[code] = rows                 # most recently used last
        while sum(r.nbytes for r in self._decoded.values()) > DECODED_CACHE_BYTES:
            del self._decoded[next(iter(self._decoded))]
        self._regions.append((address, n, len(self._prog)))
        self._prog = np.concatenate([self._prog, rows])

    def _region_array(self) -> np.ndarray:
        return np.array(self._regions, dtype=np.int64).reshape(-1, 3)

    # ---- results --------------------------------------------------------------------------------
    def _stats(self, wall: float, cpu: float) -> LaunchStats:
        n = self.n_qpus
        cycles = tuple(int(c) for c in self.qs[:n, state.QS_END_CYCLE])
        instructions = tuple(int(i) for i in self.qs[:n, QS_INSTR])
        stalls = {name: int(self.stall[:n, i].sum()) for i, name in enumerate(state.STALL_NAMES)}
        gs = self.gs
        total = int(gs[state.GS_TOTAL_INSTR])
        return LaunchStats(
            backend="emu", n_threads=n, wall_seconds=wall,
            modelled_seconds=max(cycles) / self.clock_hz, clock_hz=self.clock_hz,
            instructions=instructions, cycles=cycles, stalls=stalls,
            dma_load_bytes=int(gs[state.GS_DMA_LOAD_BYTES]),
            dma_store_bytes=int(gs[state.GS_DMA_STORE_BYTES]),
            tmu_bytes=int(gs[state.GS_TMU_BYTES]),
            extra={
                "host_interrupts": tuple(int(h) for h in self.qs[:n, state.QS_HOSTINT]),
                "tmu_requests": int(gs[state.GS_TMU_REQUESTS]),
                "tmu_l1_misses": int(gs[state.GS_TMU_L1_MISSES]),
                "tmu_l2_misses": int(gs[state.GS_TMU_L2_MISSES]),
                "tmu_stale_words": int(gs[state.GS_STALE_READS]),
                "uniform_lines": int(gs[state.GS_UNIFORM_LINES]),
                "uniform_l2_misses": int(gs[state.GS_UNIFORM_L2_MISSES]),
                "instruction_cache_misses": int(gs[state.GS_QIC_MISSES]),
                "instruction_l2_misses": int(gs[state.GS_QIC_L2_MISSES]),
                "dram_bytes": int(gs[state.GS_DRAM_BYTES]),
                "uniforms_read": tuple(int(u) for u in self.qs[:n, state.QS_UNIF_READS]),
                "emulated_instructions_per_second": total / wall if wall > 0 else 0.0,
                "host_cpu_seconds": cpu,          # CPU time of the launching thread
            })

    # ---- errors ---------------------------------------------------------------------------------
    def _word_at(self, pc: int) -> Optional[int]:
        buf = self.memory.find(pc, 8)
        if buf is None:
            return None
        return int.from_bytes(self.memory.read(pc, 8), "little")

    def _describe(self, word: int) -> str:
        """The instruction's text, or its fields if the describer fails (an error message must
        never fail on it)."""
        try:
            return self.describe_instruction(word)
        except Exception:  # noqa: BLE001 - any describer failure falls back to the fields
            return describe_fields(word)

    def _where(self, q: int, pc: Optional[int] = None) -> str:
        pc = int(self.qs[q, QS_PC]) if pc is None else pc
        word = self._word_at(pc)
        text = (self._describe(word) if word is not None
                else "<no instruction: outside every buffer>")
        buf = self.memory.find(pc, 8)
        where = f" ('{buf.label}' + 0x{pc - buf.bus_address:X})" if buf else ""
        return f"QPU {q} at PC 0x{pc:08X}{where}: {text}"

    def _where_all(self) -> str:
        return "; ".join(self._where(q) for q in range(self.n_qpus)
                         if self.qs[q, QS_STATUS] != state.ST_ENDED)

    def _access_text(self, kind: int, q: int, pc: int, addr: int, nbytes: int, row: int) -> str:
        """Where a faulting (or stray) access came from and where it went."""
        detail = {state.FAULT_DMA_LOAD: f" (memory row {row})",
                  state.FAULT_DMA_STORE: f" (memory row {row})",
                  state.FAULT_TMU: f" (element {row})",
                  state.FAULT_UNIFORM: f" (uniform #{row} of this program)",
                  state.FAULT_UNIFORM_ROW: f" (uniform #{row} of this program)"}.get(kind, "")
        inside = self.memory.find(addr, nbytes)
        if kind == state.FAULT_UNIFORM_ROW:
            lo, hi = int(self.qs[q, state.QS_UROW_LO]), int(self.qs[q, state.QS_UROW_HI])
            where = (f"lies past this QPU's row [0x{lo:08X}, 0x{hi:08X}) of the launch's "
                     f"uniforms, in another QPU's (strict mode checks uniforms row by row)")
        elif inside is not None and kind == state.FAULT_DMA_STORE:
            where = (f"lands in buffer '{inside.label}', not in the buffer of the store's first "
                     f"row: a DMA store stays inside one buffer")
        else:
            where = f"is outside every live buffer; {self.memory.describe(addr, nbytes)}"
        return (f"{self._where(q, pc)}\n  {state.FAULT_NAMES[kind]} of {nbytes} bytes at "
                f"0x{addr:08X}{detail} {where}")

    def _warn_stray_reads(self) -> None:
        """One StrayReadWarning per launch that read outside its buffers (not strict)."""
        gs = self.gs
        count = int(gs[state.GS_STRAY_READS])
        if not count:
            return
        text = self._access_text(int(gs[state.GS_STRAY_KIND]), int(gs[state.GS_STRAY_QPU]),
                                 int(gs[state.GS_STRAY_PC]), int(gs[state.GS_STRAY_ADDR]),
                                 int(gs[state.GS_STRAY_NBYTES]), int(gs[state.GS_STRAY_ROW]))
        warnings.warn(StrayReadWarning(
            f"{text}.\n  A Pi reads whatever lies there in the Driver's memory, and so did the "
            f"emulator ({count} such read{'s' if count > 1 else ''} in this launch); strict "
            f"mode refuses them. Give the buffer the bytes the program reads, or stop it reading "
            f"past them."), stacklevel=5)

    def _error(self, event: int) -> DriverError:
        err = self.err
        q, pc = int(err[ERR_QPU]), int(err[ERR_PC])
        if event == state.EV_FAULT:
            return MemoryFaultError(self._access_text(
                int(err[ERR_KIND]), q, pc, int(err[ERR_ADDR]), int(err[ERR_NBYTES]),
                int(err[ERR_ROW])) + ". Nothing was written.")
        if event == state.EV_DEADLOCK:
            lines = []
            for i in range(self.n_qpus):
                status = int(self.qs[i, QS_STATUS])
                if status == state.ST_ENDED:
                    lines.append(f"QPU {i}: ended")
                    continue
                wait = int(self.qs[i, state.QS_BLOCK_ON])
                if wait == state.BLOCK_MUTEX:
                    owner = int(self.gs[state.GS_MUTEX_OWNER])
                    what = f"waits for the mutex (held by QPU {owner})"
                else:
                    value = int(self.gs[state.GS_SEM + wait])
                    op = "decrement" if value == 0 else "increment"
                    what = f"waits to {op} semaphore {wait} (value {value})"
                lines.append(f"{self._where(i)} -- {what}")
            return DeadlockError("every QPU that has not ended is waiting:\n  " + "\n  ".join(lines))
        if event == state.EV_BUDGET:
            limit = (f"{self.max_instructions} instructions" if self.max_instructions else "") + \
                (" / " if self.max_instructions and self.max_cycles else "") + \
                (f"{self.max_cycles} cycles" if self.max_cycles else "")
            return BudgetExceededError(
                f"the launch exceeded its budget of {limit} after "
                f"{int(self.gs[state.GS_TOTAL_INSTR])} instructions: {self._where_all()}. "
                "A loop that never ends, or raise max_instructions / max_cycles.")
        if event == state.EV_UNDEFINED:
            kind = int(err[ERR_KIND])
            message = UNDEFINED_MESSAGES[kind].format(x=int(err[ERR_X]))
            who = self._where(q, pc) if q >= 0 else "the launch"
            mode = "strict mode: " if self.strict else ""
            return UndefinedBehaviourError(f"{mode}{who}\n  {message}")
        return DriverError(f"emulator stopped with unknown event {event}")

    # ---- tracing --------------------------------------------------------------------------------
    def _snapshot(self, q: int):
        return (self.regs[q].copy(), self.acc[q].copy(), self.flags[q].copy())

    def _record_trace(self, q: int, pc: int) -> None:
        before = self._trace_snapshots[q]
        after = self._snapshot(q)
        word = self._word_at(pc) or 0
        cycle = int(self.qs[q, QS_CYCLE]) - int(self.tp[timing.TP_ISSUE])
        record = record_for(q, pc, cycle, word, before, after, self._describe)
        self._trace_snapshots[q] = after
        if self.trace_callback is not None:
            self.trace_callback(record)
        else:
            self.trace_records.append(record)
