"""The compiled instruction loop: 1-12 QPUs, one instruction at a time, all state in numpy arrays.

Scheduling is deterministic: the runnable QPU with the smallest modelled cycle count (ties: lowest
QPU number) runs. A QPU keeps running past others while its instructions touch only its own state;
an instruction that touches machine-wide state (memory, VPM, DMA, TMU caches, mutex, semaphores) runs
only while its QPU is that minimum, so the result equals strict one-instruction-at-a-time ordering.

The loop returns to Python only for rare events (state.EV_*): end, fault, deadlock, budget,
undefined behaviour (strict mode), a branch into code not yet decoded, a traced instruction, or the
end of a chunk (so the caller can enforce a wall-clock timeout).

Per instruction the order is the reference's Appendix B: branch / load immediate / ALU; stalls and
blocking are decided before any side effect, so a stalled instruction is simply issued again later.

Runs of plain ALU instructions (decode's C_FAST: no shared state; DMA waits and setup writes
included) go to fastpath.run_burst instead, outside strict mode and tracing: same results
(tests/emu/test_fast_path.py holds it to this loop), a fraction of the host time.
"""
import numpy as np

from vc4infer.emu import alu, dma, pack, sfu, tmu, vpm
from vc4infer.emu.decode import (
    C_BCOND, C_BRA, C_BREG, C_BREL, C_CA, C_CM, C_DADD, C_DMUL, C_IMM, C_MODE, C_MUX_AA, C_MUX_AB,
    C_MUX_MA, C_MUX_MB, C_OPA, C_OPM, C_PACK, C_PM, C_RA, C_RB, C_SF, C_SHARED, C_SIG, C_USES,
    C_WAITS, C_FAST, FAST_NO, MUL_USES_A, ADD_USES_A, USES_A, USES_B, USES_R4)
from vc4infer.emu.fastpath import branch_taken, cond_mask, dma_wait_ready, queue_branch, run_burst
from vc4infer.emu.jit import jit, jit_inline, vectorizing
from vc4infer.emu.qic import fetch_stall as qic_fetch_stall
from vc4infer.emu.uniforms import pop_uniform, uniform_in_buffer, uniform_line_stall
from vc4infer.emu.memory import buffer_index, in_buffer, load_u32, stray_read
from vc4infer.emu.state import (
    BLOCK_MUTEX, ERR_ADDR, ERR_KIND, ERR_PC, ERR_QPU, ERR_X, EV_BUDGET,
    EV_CHUNK, EV_DEADLOCK, EV_DONE, EV_FAULT, EV_NEED_DECODE, EV_TRACE, EV_UNDEFINED,
    FAULT_DMA_LOAD, FAULT_DMA_STORE, FAULT_FETCH, FAULT_TMU, FAULT_UNIFORM, FAULT_UNIFORM_ROW,
    GS_DMA_LOAD_BYTES, GS_L2_CLOCK,
    GS_DMA_STORE_BYTES, GS_DRAM_BYTES, GS_MUTEX_OWNER, GS_SEM, GS_STALE_READS, GS_TMU_BYTES,
    GS_STRAY_KIND, GS_STRAY_READS,
    GS_TMU_L1_MISSES, GS_TMU_L2_MISSES, GS_TMU_REQUESTS, GS_TOTAL_INSTR, GT_DRAM_FREE, GT_TMU_DONE,
    GT_TMU_FREE,
    IP_CHUNK, IP_FAST_PATH, IP_MAX_CYCLES, IP_MAX_INSTR, IP_MEMBASE, IP_NQ, IP_STRICT, IP_TRACE_MASK,
    QPUS_PER_SLICE, QS_ACCW_INSTR, QS_ACCW_MASK, QS_BLOCK_ON, QS_BR1_AT, QS_BR1_TGT, QS_BR2_AT,
    QS_BR2_TGT, QS_BRANCH_INSTR, QS_CYCLE, QS_END_AT, QS_END_CYCLE, QS_HOSTINT, QS_INSTR,
    QS_LASTW_A, QS_LASTW_B, QS_LASTW_INSTR, QS_LD_DONE, QS_LD_PENDING, QS_MUTEX_HELD, QS_NOSWAP,
    QS_NOSWAP_AT, QS_NOSWAP_NEXT, QS_PC, QS_R5W_INSTR, QS_SFU_AT, QS_ST_DONE, QS_ST_PENDING,
    QS_STATUS, QS_TMU_CNT0, QS_TMU_HEAD0, QS_UBUF_HI, QS_UBUF_LO, QS_ULINE, QS_UNIF_READS, QS_UPTR,
    QS_ILINE, QS_UROW_HI, QS_UROW_LO,
    QS_UPTR_AT,
    QS_UPTR_NEXT,
    QS_VCD_PITCHB, QS_VCD_SETUP, QS_VDW_SETUP, QS_VDW_STRIDE, QS_VPMR_ADDR, QS_VPMR_HORIZ,
    QS_VPMR_LANED, QS_VPMR_LEFT, QS_VPMR_READY, QS_VPMR_SIZE, QS_VPMR_STRIDE, QS_VPMW_ADDR,
    QS_VPMW_HORIZ, QS_VPMW_LANED, QS_VPMW_SIZE, QS_VPMW_STRIDE, ST_BLOCKED, ST_ENDED, ST_RUN,
    STALL_DMA_QUEUE, STALL_FETCH, STALL_MUTEX, STALL_SEMAPHORE,
    STALL_TMU, STALL_UNIFORM, STALL_VPM_READ, UB_BOTH_WRITE_SAME, UB_BRANCH_ELEMENT, UB_BRANCH_IN_DELAY,
    UB_COND_PERIPHERAL, UB_DMA_IN_FLIGHT_END, UB_FLAG_DISAGREE, UB_FRAGMENT_ONLY, UB_LDTMU_EMPTY,
    UB_MISALIGNED, UB_MUTEX_NOT_OWNER, UB_NOSWAP_LATE, UB_PARTIAL_PACK_PERIPHERAL,
    UB_R4_SFU, UB_REGFILE_RAW, UB_RESERVED_OP, UB_ROTATE_HAZARD,
    UB_ROTATE_MIXED, UB_SEMAPHORE_END, UB_SETUP_AND_VPM, UB_SF_COND_NEVER, UB_STALE_TMU,
    UB_TEXTURE, UB_TMU_FIFO_DEPTH, UB_TMU_FIFO_OVERFLOW, UB_UNIF_ADDR_REL,
    UB_UNIFORM_AFTER_ADDR, UB_UNIFORM_TWICE, UB_UNPACK_MIXED, UB_VPM_READ_BEYOND_NUM,
    UB_VPM_READS_AT_END)
from vc4infer.emu.timing import (
    CACHE_LINE_BYTES, SYNC_WAKE_CYCLES, TP_DRAM_BPC, TP_DRAM_LATENCY, TP_ISSUE, TP_TMU_HIT, TP_TMU_ISSUE,
    TP_TMU_L2_LINE)
from vc4infer.qpu import isa

ADD_FLOAT_IN = np.zeros(32, dtype=np.int64)
ADD_FLOAT_OUT = np.zeros(32, dtype=np.int64)
for _op in isa.ADD_OPS:
    ADD_FLOAT_IN[_op.code] = _op.float_in
    ADD_FLOAT_OUT[_op.code] = _op.float_out
MUL_FLOAT_IN = np.zeros(8, dtype=np.int64)
for _op in isa.MUL_OPS:
    MUL_FLOAT_IN[_op.code] = _op.float_in
SMALL_IMM = np.array(isa.SMALL_IMM_BITS, dtype=np.int64)
SMALL_IMM_ROWS = np.repeat(SMALL_IMM.astype(np.uint32)[:, None], isa.SIMD_WIDTH, axis=1)
OP_ITOF = isa.ADD_OP_BY_NAME["itof"].code
OP_IADD = isa.ADD_OP_BY_NAME["iadd"].code
OP_ISUB = isa.ADD_OP_BY_NAME["isub"].code
OP_MUL24 = isa.MUL_OP_BY_NAME["imul24"].code
ENDS_PROGRAM = np.zeros(16, dtype=np.int64)
for _s in isa.SIGNALS_ENDING_PROGRAM:
    ENDS_PROGRAM[_s] = 1
FRAGMENT_ONLY_SIGNALS = np.zeros(16, dtype=np.int64)
for _s in isa.SIGNALS_FRAGMENT_ONLY:
    FRAGMENT_ONLY_SIGNALS[_s] = 1
TMU_FIFO_DEPTH = isa.TMU_FIFO_DEPTH
TMU_FIFO_DEPTH_RELIABLE = isa.TMU_FIFO_DEPTH_RELIABLE
B_SPACE = 64     # full destination = space * 64 + address


@jit
def _undefined(err, kind, q, pc, x):
    err[ERR_KIND] = kind
    err[ERR_QPU] = q
    err[ERR_PC] = pc
    err[ERR_X] = x
    return EV_UNDEFINED


@jit
def _put_access(out, at, kind, q, pc, addr, nbytes, row):
    """Write an access's kind, QPU, PC, address, bytes and row to out[at:at + 6] (the order of
    both ERR_KIND.. and GS_STRAY_KIND..)."""
    out[at] = kind
    out[at + 1] = q
    out[at + 2] = pc
    out[at + 3] = addr
    out[at + 4] = nbytes
    out[at + 5] = row


@jit
def _fault(err, kind, q, pc, addr, nbytes, row):
    _put_access(err, ERR_KIND, kind, q, pc, addr, nbytes, row)
    return EV_FAULT


@jit
def _stray(gs, kind, q, pc, addr, nbytes, row):
    """Count a read outside every live buffer that a Pi would serve from the Driver's memory
    (memory.stray_read; not strict), keeping the first one's details as a fault would give."""
    if gs[GS_STRAY_READS] == 0:
        _put_access(gs, GS_STRAY_KIND, kind, q, pc, addr, nbytes, row)
    gs[GS_STRAY_READS] += 1


@jit
def _c_ambiguous(fl, cond):
    """Whether condition `cond` reads a C flag whose value vc4asm and VC4C would disagree on."""
    if cond < 6:
        return False
    for i in range(16):
        if fl[3, i] != 0:
            return True
    return False


@jit
def _tmu_unit(qs, q, t):
    """Physical TMU (0 or 1) a QPU reaches when it names TMU `t`: QPUs 2 and 3 of each slice are
    swapped unless tmu_noswap is set (guide p.40)."""
    if (q % QPUS_PER_SLICE) >= 2 and qs[q, QS_NOSWAP] == 0:
        return 1 - t
    return t


@jit
def _apply_noswap(qs, q, n):
    if qs[q, QS_NOSWAP_AT] >= 0 and n >= qs[q, QS_NOSWAP_AT]:
        qs[q, QS_NOSWAP] = qs[q, QS_NOSWAP_NEXT]
        qs[q, QS_NOSWAP_AT] = -1


@jit
def _wake(qs, nq, resource, cycle, stall, cause):
    """Make every QPU blocked on `resource` runnable again at `cycle` or later."""
    for i in range(nq):
        if qs[i, QS_STATUS] == ST_BLOCKED and qs[i, QS_BLOCK_ON] == resource:
            qs[i, QS_STATUS] = ST_RUN
            if qs[i, QS_CYCLE] < cycle:
                stall[i, cause] += cycle - qs[i, QS_CYCLE]
                qs[i, QS_CYCLE] = cycle


@jit
def _read_uniform(q, n, pc, qs, gs, mem, membase, bounds, strict, err):
    """Pop the next uniform. Returns (status, value); status -1 = ok, else an event code."""
    if qs[q, QS_UPTR_AT] >= 0:
        if n >= qs[q, QS_UPTR_AT]:
            qs[q, QS_UPTR] = qs[q, QS_UPTR_NEXT]
            qs[q, QS_UPTR_AT] = -1
        elif strict:
            return _undefined(err, UB_UNIFORM_AFTER_ADDR, q, pc, qs[q, QS_UPTR_AT] - n), 0
    a = qs[q, QS_UPTR]
    if not in_buffer(bounds, a, 4):
        if strict or not stray_read(bounds, a & ~3, 4, membase + mem.shape[0]):
            return _fault(err, FAULT_UNIFORM, q, pc, a, 4, qs[q, QS_UNIF_READS]), 0
        _stray(gs, FAULT_UNIFORM, q, pc, a, 4, qs[q, QS_UNIF_READS])
        qs[q, QS_UPTR] = a + 4
        qs[q, QS_UNIF_READS] += 1
        return -1, load_u32(mem, (a & ~3) - membase)
    b = buffer_index(bounds, a)                # in_buffer held: a buffer starts at or below a
    lo, hi = bounds[b, 0], bounds[b, 1]
    row_lo, row_hi = qs[q, QS_UROW_LO], qs[q, QS_UROW_HI]
    if row_hi > 0 and lo <= row_lo < hi:       # the launch's uniforms, read row by row
        if a < row_lo or a + 4 > row_hi:       # into another QPU's row: a Pi reads on
            if strict:
                return _fault(err, FAULT_UNIFORM_ROW, q, pc, a, 4, qs[q, QS_UNIF_READS]), 0
            _stray(gs, FAULT_UNIFORM_ROW, q, pc, a, 4, qs[q, QS_UNIF_READS])
        else:
            lo, hi = row_lo, row_hi
    qs[q, QS_UBUF_LO] = lo                    # lets the loop's fast path skip the search
    qs[q, QS_UBUF_HI] = hi
    qs[q, QS_UPTR] = a + 4
    qs[q, QS_UNIF_READS] += 1
    return -1, load_u32(mem, a - membase)


@jit_inline
def _vpm_read(q, pc, qs, vpm8, vpm16, vpm32, out, strict, err):
    """Pop one vector of the current VPM read setup into `out`. Returns -1 or an event code."""
    if qs[q, QS_VPMR_LEFT] <= 0:
        if strict:
            return _undefined(err, UB_VPM_READ_BEYOND_NUM, q, pc, 0)
        for i in range(16):       # guide: "return immediately with undefined data"; we give zeros
            out[i] = 0
        return -1
    vpm.read_vector(vpm8, vpm16, vpm32, qs[q, QS_VPMR_ADDR], qs[q, QS_VPMR_SIZE],
                    qs[q, QS_VPMR_HORIZ], qs[q, QS_VPMR_LANED], out)
    qs[q, QS_VPMR_ADDR] += qs[q, QS_VPMR_STRIDE]
    qs[q, QS_VPMR_LEFT] -= 1
    return -1


@jit_inline
def _io_read(q, n, pc, addr, space, qs, gs, mem, membase, bounds, vpm8, vpm16, vpm32, out,
             strict, used, err):
    """Read I/O address `addr` (32..63) of regfile space 0 (A) / 1 (B) into out[16].
    `used`: whether an operand mux selects this value. Returns -1 or an event code."""
    cycle = qs[q, QS_CYCLE]
    if addr == isa.ADDR_UNIFORM:
        st, v = _read_uniform(q, n, pc, qs, gs, mem, membase, bounds, strict, err)
        if st >= 0:
            return st
        for i in range(16):
            out[i] = v
        return -1
    if addr == isa.ADDR_VPM:
        return _vpm_read(q, pc, qs, vpm8, vpm16, vpm32, out, strict, err)
    if addr == isa.ADDR_VPM_SETUP:              # busy flags
        busy = qs[q, QS_LD_DONE] > cycle if space == 0 else qs[q, QS_ST_DONE] > cycle
        for i in range(16):
            out[i] = 1 if busy else 0
        return -1
    if addr == isa.ADDR_VPM_DMA:                # wait (the stall happened before issue)
        if space == 0:
            qs[q, QS_LD_PENDING] = 0
        else:
            qs[q, QS_ST_PENDING] = 0
        for i in range(16):
            out[i] = 0
        return -1
    if addr == isa.ADDR_MUTEX:                  # acquire (granted before issue)
        gs[GS_MUTEX_OWNER] = q
        qs[q, QS_MUTEX_HELD] = 1
    elif addr == isa.ADDR_NOP:
        # undocumented value (vc4asm: last values read by elements 12-15); idioms such as
        # `mov(mutex, null)` read it without using it, so it is not flagged. We give zeros.
        for i in range(16):
            out[i] = 0
        return -1
    elif addr == isa.ADDR_VARYING or addr == 41 or addr == 42:
        if used and strict:
            return _undefined(err, UB_FRAGMENT_ONLY, q, pc, addr)
    # element_number (A) / qpu_number (B); also the guide's "default unmapped I/O read data"
    for i in range(16):
        out[i] = i if space == 0 else q
    return -1


@jit_inline
def _io_write(q, n, pc, full, vals, cmask, bytemask, qs, gs, gt, stall, mem, membase, bounds,
              vpm8, vpm16, vpm32, sfu_val, tmu_data, tmu_ready, l1tag, l1data, l2tag, l2state,
              l2data, tp, nq, strict, err, fault):
    """Side effect of writing I/O address (full & 63) in space (full >> 6). Returns -1 (done),
    -2 (done, other QPUs were woken: reschedule) or an event code."""
    addr = full & 63
    space = full >> 6
    cycle = qs[q, QS_CYCLE]
    all_on = True
    for i in range(16):
        if cmask[i] == 0:
            all_on = False
    if strict and not all_on and addr != isa.ADDR_HOST_INT:
        return _undefined(err, UB_COND_PERIPHERAL, q, pc, full)
    if strict and bytemask != 0xF:
        return _undefined(err, UB_PARTIAL_PACK_PERIPHERAL, q, pc, full)
    v0 = np.int64(vals[0])
    if addr == isa.ADDR_TMU_NOSWAP:
        qs[q, QS_NOSWAP_NEXT] = 1 if v0 != 0 else 0
        qs[q, QS_NOSWAP_AT] = n + isa.TMU_NOSWAP_INSTRUCTIONS
        return -1
    if addr == isa.ADDR_HOST_INT:
        if cmask[0] and v0 != 0:           # a zero value does nothing (vc4asm addendum)
            qs[q, QS_HOSTINT] += 1
        return -1
    if addr == isa.ADDR_UNIFORMS_ADDRESS:
        if space == 1 and strict:
            return _undefined(err, UB_UNIF_ADDR_REL, q, pc, v0)
        qs[q, QS_UPTR_NEXT] = v0
        qs[q, QS_UPTR_AT] = n + isa.UNIFORMS_ADDRESS_INSTRUCTIONS
        return -1
    if addr >= isa.ADDR_TLB_FIRST and addr <= isa.ADDR_TLB_LAST or addr == 41 or addr == 42:
        if strict:
            return _undefined(err, UB_FRAGMENT_ONLY, q, pc, addr)
        return -1
    if addr == isa.ADDR_VPM:
        vpm.write_vector(vpm8, vpm16, vpm32, qs[q, QS_VPMW_ADDR], qs[q, QS_VPMW_SIZE],
                         qs[q, QS_VPMW_HORIZ], qs[q, QS_VPMW_LANED], vals)
        qs[q, QS_VPMW_ADDR] += qs[q, QS_VPMW_STRIDE]
        return -1
    if addr == isa.ADDR_VPM_SETUP:
        if strict:
            ub, x = vpm.setup_problem(q, space, v0, qs)
            if ub >= 0:
                return _undefined(err, ub, q, pc, x)
        vpm.setup_write(q, space, v0, cycle, qs, tp)
        return -1
    if addr == isa.ADDR_VPM_DMA:
        if space == 0:
            nbytes = dma.vcd_load(mem, membase, bounds, vpm8, qs[q, QS_VCD_SETUP],
                                  qs[q, QS_VCD_PITCHB], v0, fault, strict)
            if nbytes < 0:
                return _fault(err, FAULT_DMA_LOAD, q, pc, fault[1], fault[2], fault[0])
            if fault[3] > 0:
                _stray(gs, FAULT_DMA_LOAD, q, pc, fault[1], fault[2], fault[0])
            start, end = dma.transfer_end(gt, tp, False, cycle, nbytes)
            qs[q, QS_LD_DONE] = np.int64(np.ceil(end))
            qs[q, QS_LD_PENDING] = 1
            gs[GS_DMA_LOAD_BYTES] += nbytes
        else:
            nbytes = dma.vdw_store(mem, membase, bounds, vpm8, qs[q, QS_VDW_SETUP],
                                   qs[q, QS_VDW_STRIDE], v0, fault)
            if nbytes < 0:
                return _fault(err, FAULT_DMA_STORE, q, pc, fault[1], fault[2], fault[0])
            start, end = dma.transfer_end(gt, tp, True, cycle, nbytes)
            qs[q, QS_ST_DONE] = np.int64(np.ceil(end))
            qs[q, QS_ST_PENDING] = 1
            gs[GS_DMA_STORE_BYTES] += nbytes
        gs[GS_DRAM_BYTES] += nbytes
        return -1
    if addr == isa.ADDR_MUTEX:
        if gs[GS_MUTEX_OWNER] != q and strict:
            return _undefined(err, UB_MUTEX_NOT_OWNER, q, pc, gs[GS_MUTEX_OWNER])
        if gs[GS_MUTEX_OWNER] >= 0:
            qs[gs[GS_MUTEX_OWNER], QS_MUTEX_HELD] = 0
        gs[GS_MUTEX_OWNER] = -1
        _wake(qs, nq, BLOCK_MUTEX, cycle + SYNC_WAKE_CYCLES, stall, STALL_MUTEX)
        return -2
    if addr >= isa.ADDR_SFU_FIRST and addr <= isa.ADDR_SFU_LAST:
        for i in range(16):
            sfu_val[q, i] = sfu.sfu_value(addr, np.int64(vals[i]))
        qs[q, QS_SFU_AT] = n + isa.SFU_RESULT_INSTRUCTIONS - 1
        return -1
    if addr >= isa.ADDR_TMU_FIRST:
        t_named = (addr - isa.ADDR_TMU_FIRST) >> 2
        if ((addr - isa.ADDR_TMU_FIRST) & 3) != 0:
            return _undefined(err, UB_TEXTURE, q, pc, addr)
        _apply_noswap(qs, q, n)
        if strict and qs[q, QS_NOSWAP_AT] >= 0:
            return _undefined(err, UB_NOSWAP_LATE, q, pc, qs[q, QS_NOSWAP_AT] - n)
        t = _tmu_unit(qs, q, t_named)
        cnt = qs[q, QS_TMU_CNT0 + 2 * t]
        if cnt >= TMU_FIFO_DEPTH:
            return _undefined(err, UB_TMU_FIFO_OVERFLOW, q, pc, cnt)
        if strict and cnt >= TMU_FIFO_DEPTH_RELIABLE:
            return _undefined(err, UB_TMU_FIFO_DEPTH, q, pc, cnt)
        slot = (qs[q, QS_TMU_HEAD0 + 2 * t] + cnt) % TMU_FIFO_DEPTH
        counts = fault
        counts[0] = 0
        counts[1] = 0
        counts[2] = 0
        counts[3] = 0
        counts[4] = 0
        unit = (q // QPUS_PER_SLICE) * 2 + t
        free_i = GT_TMU_FREE + unit
        start = max(float(cycle), gt[free_i])
        bad = tmu.lookup(unit, vals, tmu_data[q, t, slot], mem, membase, bounds, l1tag, l1data,
                         l2tag, l2state, l2data, gs[GS_L2_CLOCK],
                         tmu.own_fetch_arrival(start, tp), counts, strict)
        gs[GS_L2_CLOCK] += 16
        if bad >= 0:
            a = np.int64(vals[bad]) & ~3
            return _fault(err, FAULT_TMU, q, pc, a, 4, bad)
        if counts[3] > 0:
            _stray(gs, FAULT_TMU, q, pc, np.int64(vals[counts[3] - 1]) & ~3, 4, counts[3] - 1)
        if counts[2] > 0:
            gs[GS_STALE_READS] += counts[2]
            if strict:
                return _undefined(err, UB_STALE_TMU, q, pc, counts[2])
        l1m = counts[0]
        l2m = counts[1]
        gs[GS_TMU_REQUESTS] += 1
        gs[GS_TMU_L1_MISSES] += l1m
        gs[GS_TMU_L2_MISSES] += l2m
        gs[GS_TMU_BYTES] += 64
        gs[GS_DRAM_BYTES] += l2m * CACHE_LINE_BYTES
        gt[free_i] = start + tp[TP_TMU_ISSUE]
        ready = start + tp[TP_TMU_HIT] + (l1m - l2m) * tp[TP_TMU_L2_LINE]
        if l2m > 0:
            dstart = max(start, gt[GT_DRAM_FREE])
            nbytes = l2m * CACHE_LINE_BYTES
            gt[GT_DRAM_FREE] = dstart + nbytes / tp[TP_DRAM_BPC]
            ready = max(ready, dstart + tp[TP_DRAM_LATENCY] + nbytes / tp[TP_DRAM_BPC])
            tmu.settle_fills(vals, l2tag, l2state, np.int64(np.ceil(ready)))
        if counts[4] > 0:                       # lines another request is still fetching
            ready = max(ready, counts[4] + tp[TP_TMU_L2_LINE])
        # a TMU returns its requests in order, whichever QPU made them (timing.py)
        ready = max(ready, gt[GT_TMU_DONE + unit])
        gt[GT_TMU_DONE + unit] = ready
        tmu_ready[q, t, slot] = np.int64(np.ceil(ready))
        qs[q, QS_TMU_CNT0 + 2 * t] = cnt + 1
        return -1
    return -1


@jit
def _rotate(src, dst, n, full):
    """dst = src rotated upward by n (element i moves to i + n), whole vector or within quads."""
    if full:
        for i in range(16):
            dst[(i + n) & 15] = src[i]
    else:
        m = n & 3
        for i in range(16):
            dst[(i & 12) | ((i + m) & 3)] = src[i]


@jit_inline
def _regfile_read(q, n, r, space, refuse_stale, regs, oldv, qs, dst):
    """dst = register r of regfile `space` (0: A, 1: B) as instruction n reads it: the value from
    before the previous instruction's write when that instruction wrote it (the regfiles' write
    latency, guide p.37). Returns False, reading nothing, for such a read when `refuse_stale`
    (strict mode and the value is used): the guide leaves it undefined."""
    if r == qs[q, QS_LASTW_A + space] and qs[q, QS_LASTW_INSTR] == n - 1:
        if refuse_stale:
            return False
        for i in range(16):
            dst[i] = oldv[q, space, i]
    else:
        for i in range(16):
            dst[i] = regs[q, 32 * space + r, i]
    return True


@jit_inline
def _pop_uniform_into(out, q, qs, gs, gt, mem, mem32, membase, l2tag, l2state, l2data, tp):
    """The next uniform (`uniform_in_buffer` holds) into all 16 elements of out; returns the
    modelled stall of entering a new cache line (0 within the line)."""
    stall_cycles = 0
    if qs[q, QS_UPTR] // CACHE_LINE_BYTES != qs[q, QS_ULINE]:
        stall_cycles = uniform_line_stall(q, qs[q, QS_UPTR], qs, gs, gt, mem, membase, l2tag, l2state,
                                          l2data, tp)
    v = pop_uniform(qs, q, mem32, membase)
    for i in range(16):
        out[i] = v
    return stall_cycles


@jit_inline
def _operand(dst, mux, q, acc, va, vb, ua, ur4, unpack_a, unpack_r4):
    """Copy the 16 elements that input mux `mux` selects into dst."""
    if mux == isa.MUX_A:
        if unpack_a:
            for i in range(16):
                dst[i] = ua[i]
        else:
            for i in range(16):
                dst[i] = va[i]
    elif mux == isa.MUX_B:
        for i in range(16):
            dst[i] = vb[i]
    elif mux == isa.MUX_R4 and unpack_r4:
        for i in range(16):
            dst[i] = ur4[i]
    else:
        for i in range(16):
            dst[i] = acc[q, mux, i]


def loop_arguments(prog, regions, mem, bounds, regs, acc, flags, oldv, sfu_val, tmu_data, tmu_ready,
                   vpm32, qs, gs, gt, stall, l1tag, l1data, l2tag, l2state, l2data, qic, tp, ip,
                   err) -> tuple:
    """The compiled loop's arguments: the machine state given, then its scratch arrays (compiled
    code does not allocate: see jit.py) and the small-immediate table."""
    ops = np.zeros((4, 16), dtype=np.uint32)
    res = np.zeros((2, 16), dtype=np.uint32)
    car = np.zeros((2, 16), dtype=np.uint8)
    d64 = np.zeros(16, dtype=np.float64)
    va = np.zeros(16, dtype=np.uint32)
    vb = np.zeros(16, dtype=np.uint32)
    ua = np.zeros(16, dtype=np.uint32)
    ur4 = np.zeros(16, dtype=np.uint32)
    cmask = np.ones((2, 16), dtype=np.uint8)      # all ones between instructions
    wval = np.zeros(16, dtype=np.uint32)
    fault = np.zeros(5, dtype=np.int64)
    return (prog, regions, mem, bounds, regs, acc, flags, oldv, sfu_val, tmu_data, tmu_ready, vpm32,
            qs, gs, gt, stall, l1tag, l1data, l2tag, l2state, l2data, qic, tp, ip, err,
            ops, res, car, d64, va, vb, ua, ur4, cmask, wval, fault, SMALL_IMM_ROWS)


def run(arguments: tuple) -> int:
    """Run the loaded QPUs until an event; returns the event code (state.EV_*). `arguments` come
    from loop_arguments."""
    with vectorizing():     # compiles (first call of a process without a cache) with SIMD on
        return _run(*arguments)


@jit
def _run(prog, regions, mem, bounds, regs, acc, flags, oldv, sfu_val, tmu_data, tmu_ready, vpm32,
         qs, gs, gt, stall, l1tag, l1data, l2tag, l2state, l2data, qic, tp, ip, err,
         ops, res, car, d64, va, vb, ua, ur4, cmask, wval, fault, simm_rows):
    # fixed rows: the add pipe reads operands 0-1 and writes result 0, the mul pipe 2-3 and 1
    op0, op1, op2, op3 = ops[0], ops[1], ops[2], ops[3]
    res0, res1 = res[0], res[1]
    car0, car1 = car[0], car[1]
    vpm8 = vpm32.view(np.uint8)
    vpm16 = vpm32.view(np.uint16)
    mem32 = mem.view(np.uint32)
    nq = ip[IP_NQ]
    strict = ip[IP_STRICT] != 0
    fast_path = ip[IP_FAST_PATH] != 0
    max_instr = ip[IP_MAX_INSTR]
    max_cycles = ip[IP_MAX_CYCLES]
    trace_mask = ip[IP_TRACE_MASK]
    membase = ip[IP_MEMBASE]
    issue = np.int64(tp[TP_ISSUE])
    chunk_left = ip[IP_CHUNK]
    nregions = regions.shape[0]


    lo = np.int64(0)        # the code region of the last fetch (regions are the same for all QPUs)
    hi = np.int64(0)
    off = np.int64(0)
    while True:
        # ---- pick the runnable QPU with the smallest cycle count (ties: lowest number), and
        # the next one after it: q may run ahead of others until it reaches (other_cycle, other_q)
        q = -1
        best = np.int64(1) << 62
        other_q = nq
        other_cycle = np.int64(1) << 62
        for i in range(nq):
            if qs[i, QS_STATUS] == ST_RUN:
                c = qs[i, QS_CYCLE]
                if c < best:
                    other_q = q if q >= 0 else nq
                    other_cycle = best
                    q = i
                    best = c
                elif c < other_cycle:
                    other_q = i
                    other_cycle = c
        if q < 0:
            blocked = 0
            for i in range(nq):
                if qs[i, QS_STATUS] == ST_BLOCKED:
                    blocked += 1
            if blocked > 0:
                return EV_DEADLOCK
            if strict:
                for s in range(isa.NUM_SEMAPHORES):
                    if gs[GS_SEM + s] != 0:
                        return _undefined(err, UB_SEMAPHORE_END, -1, -1, s)
            return EV_DONE
        fl = flags[q]
        burst_ok = fast_path and not strict and ((trace_mask >> q) & 1) == 0   # run_burst may run q

        # ---- run QPU q while it may ----
        while True:
            pc = qs[q, QS_PC]
            cyc = qs[q, QS_CYCLE]
            n = qs[q, QS_INSTR]
            if gs[GS_TOTAL_INSTR] >= max_instr or cyc >= max_cycles:
                err[ERR_QPU] = q
                err[ERR_PC] = pc
                return EV_BUDGET
            if chunk_left <= 0:
                return EV_CHUNK
            # fetch
            if pc < lo or pc >= hi or ((pc - lo) & 7) != 0:
                found = -1
                for r in range(nregions):
                    start = regions[r, 0]
                    if start <= pc < start + 8 * regions[r, 1] and ((pc - start) & 7) == 0:
                        found = r
                if found < 0:
                    if in_buffer(bounds, pc, 8):
                        err[ERR_QPU] = q
                        err[ERR_ADDR] = pc
                        return EV_NEED_DECODE
                    return _fault(err, FAULT_FETCH, q, pc, pc, 8, 0)
                lo = regions[found, 0]
                hi = lo + 8 * regions[found, 1]
                off = regions[found, 2]
            k = off + ((pc - lo) >> 3)
            line = pc // CACHE_LINE_BYTES
            if line != qs[q, QS_ILINE]:
                # a fetch that enters a new line uses the slice's QIC, the L2C and SDRAM
                if not (cyc < other_cycle or (cyc == other_cycle and q < other_q)):
                    break
                qs[q, QS_ILINE] = line
                wait = qic_fetch_stall(q, line, cyc, gs, gt, qic, mem, membase, l2tag, l2state, l2data,
                                       tp)
                if wait > 0:
                    stall[q, STALL_FETCH] += wait
                    qs[q, QS_CYCLE] = cyc + wait
                    break
            if burst_ok and prog[k, C_FAST] != FAST_NO:
                ran = run_burst(q, lo, hi, off, chunk_left, issue, max_instr, max_cycles, other_cycle,
                                other_q, prog, regs, acc, oldv, flags, sfu_val, qs, gs, gt, stall, mem,
                                mem32, membase, l2tag, l2state, l2data, qic, tp, simm_rows)
                if ran > 0:
                    chunk_left -= ran
                    continue
                if qs[q, QS_CYCLE] != cyc:   # it stalled q, then stopped: not q's turn, or budget
                    continue
            sig = prog[k, C_SIG]
            ra = prog[k, C_RA]
            rb = prog[k, C_RB]
            ordered = prog[k, C_SHARED] != 0
            if not ordered and (sig <= isa.SIG_SMALL_IMM and ra == isa.ADDR_UNIFORM or
                                sig < isa.SIG_SMALL_IMM and rb == isa.ADDR_UNIFORM):
                # a uniform read that enters a new line uses the shared L2C and SDRAM
                ordered = qs[q, QS_UPTR_AT] >= 0 or qs[q, QS_UPTR] // CACHE_LINE_BYTES != qs[q, QS_ULINE]
            if ordered and not (cyc < other_cycle or (cyc == other_cycle and q < other_q)):
                break

            # ---- decide stalls and blocking before any side effect ----
            is_alu = sig <= isa.SIG_SMALL_IMM
            reads_b = sig < isa.SIG_SMALL_IMM
            dadd = prog[k, C_DADD]
            dmul = prog[k, C_DMUL]
            if prog[k, C_WAITS] != 0:       # semaphores, ldtmu, VPM/DMA/mutex access (decode.py)
                if sig == isa.SIG_LOAD_IMM and prog[k, C_MODE] == isa.LOAD_IMM_SEMAPHORE:
                    imm = prog[k, C_IMM]
                    sem = imm & 15
                    value = gs[GS_SEM + sem]
                    down = (imm >> 4) & 1
                    if down == 0 and value >= isa.SEMAPHORE_MAX or down == 1 and value <= 0:
                        qs[q, QS_STATUS] = ST_BLOCKED
                        qs[q, QS_BLOCK_ON] = sem
                        break
                ready = cyc
                cause = -1
                if is_alu:
                    if ra == isa.ADDR_MUTEX or (reads_b and rb == isa.ADDR_MUTEX):
                        if gs[GS_MUTEX_OWNER] >= 0:
                            qs[q, QS_STATUS] = ST_BLOCKED
                            qs[q, QS_BLOCK_ON] = BLOCK_MUTEX
                            break
                    if sig == isa.SIG_LOAD_TMU0 or sig == isa.SIG_LOAD_TMU1:
                        _apply_noswap(qs, q, n)
                        t = _tmu_unit(qs, q, sig - isa.SIG_LOAD_TMU0)
                        if qs[q, QS_TMU_CNT0 + 2 * t] == 0:
                            return _undefined(err, UB_LDTMU_EMPTY, q, pc, t)
                        tr = tmu_ready[q, t, qs[q, QS_TMU_HEAD0 + 2 * t]]
                        if tr > ready:
                            ready = tr
                            cause = STALL_TMU
                    if (ra == isa.ADDR_VPM or (reads_b and rb == isa.ADDR_VPM)) and qs[q, QS_VPMR_LEFT] > 0:
                        if qs[q, QS_VPMR_READY] > ready:
                            ready = qs[q, QS_VPMR_READY]
                            cause = STALL_VPM_READ
                    dma_ready, dma_cause = dma_wait_ready(q, k, prog, qs, ready)
                    if dma_ready > ready:
                        ready = dma_ready
                        cause = dma_cause
                if sig != isa.SIG_BRANCH:
                    if (dadd == isa.ADDR_VPM_DMA or dmul == isa.ADDR_VPM_DMA) and qs[q, QS_LD_DONE] > ready:
                        ready = qs[q, QS_LD_DONE]
                        cause = STALL_DMA_QUEUE
                    if (dadd == B_SPACE + isa.ADDR_VPM_DMA or dmul == B_SPACE + isa.ADDR_VPM_DMA) and \
                            qs[q, QS_ST_DONE] > ready:
                        ready = qs[q, QS_ST_DONE]
                        cause = STALL_DMA_QUEUE
                if ready > cyc:
                    stall[q, cause] += ready - cyc
                    qs[q, QS_CYCLE] = ready
                    break

            # ---- strict checks of the instruction as a whole ----
            if strict:
                if sig < isa.SIG_BRANCH and (_c_ambiguous(fl, prog[k, C_CA])
                                             or _c_ambiguous(fl, prog[k, C_CM])):
                    return _undefined(err, UB_FLAG_DISAGREE, q, pc, 0)
                if FRAGMENT_ONLY_SIGNALS[sig] != 0:
                    return _undefined(err, UB_FRAGMENT_ONLY, q, pc, sig)
                if sig != isa.SIG_BRANCH and dadd != isa.ADDR_NOP and (dadd & 63) == (dmul & 63) and \
                        (dadd & 63) >= isa.ADDR_TMU_NOSWAP and (dadd & 63) != isa.ADDR_NOP and \
                        (dadd & 63) != isa.ADDR_R5 and prog[k, C_CA] != 0 and prog[k, C_CM] != 0 and \
                        (is_alu and prog[k, C_OPA] != 0 and prog[k, C_OPM] != 0 or not is_alu):
                    return _undefined(err, UB_BOTH_WRITE_SAME, q, pc, dadd & 63)
                if is_alu and ((dadd & 63) == isa.ADDR_VPM_SETUP or (dmul & 63) == isa.ADDR_VPM_SETUP) \
                        and (ra == isa.ADDR_VPM or (reads_b and rb == isa.ADDR_VPM)
                             or (dadd & 63) == isa.ADDR_VPM or (dmul & 63) == isa.ADDR_VPM):
                    return _undefined(err, UB_SETUP_AND_VPM, q, pc, 0)

            n_written_a = -1
            n_written_b = -1
            have_add = False
            have_mul = False
            add_float = False
            mul_float = True
            opa = 0
            opm = 0
            sf = prog[k, C_SF]
            pm = prog[k, C_PM]
            pk = prog[k, C_PACK]
            r4_pop = -1
            resched = False
            ustall = np.int64(0)
            masked = False

            if sig == isa.SIG_BRANCH:
                # ---- branch ----
                if strict and n - qs[q, QS_BRANCH_INSTR] <= 2:
                    return _undefined(err, UB_BRANCH_IN_DELAY, q, pc, n - qs[q, QS_BRANCH_INSTR])
                qs[q, QS_BRANCH_INSTR] = n
                bc = prog[k, C_BCOND]
                if strict and bc >= 8 and bc < 12 and _c_ambiguous(fl, 6):
                    return _undefined(err, UB_FLAG_DISAGREE, q, pc, bc)
                if bc == isa.BRANCH_ALWAYS or bc < 12:
                    taken = branch_taken(bc, fl)
                else:
                    if strict:
                        return _undefined(err, UB_RESERVED_OP, q, pc, bc)
                    taken = False
                if taken:
                    target = prog[k, C_IMM]
                    if prog[k, C_BREL] != 0:
                        target += pc + isa.BRANCH_LINK_OFFSET_BYTES
                    if prog[k, C_BREG] != 0:
                        rr = prog[k, C_BRA]
                        # element 15, measured by the vc4asm author (the guide says element 0)
                        v15 = np.int64(regs[q, rr, 15])
                        if strict and np.int64(regs[q, rr, 0]) != v15:
                            return _undefined(err, UB_BRANCH_ELEMENT, q, pc, rr)
                        target += v15
                    target &= 0xFFFFFFFF
                    if target & 7:
                        if strict:
                            return _undefined(err, UB_MISALIGNED, q, pc, target)
                        target &= ~7
                    queue_branch(qs, q, n, target)
                    link = (pc + isa.BRANCH_LINK_OFFSET_BYTES) & 0xFFFFFFFF
                    for i in range(16):
                        res[0, i] = link
                        res[1, i] = link
                    have_add = True
                    have_mul = True
                    add_float = False
                    mul_float = False
                    pm = 0
                    pk = 0
                    sf = prog[k, C_BRA] & 1      # raddr_a bit 0 is the sf bit (vc4asm addendum)
            elif sig == isa.SIG_LOAD_IMM:
                # ---- load immediate / semaphore ----
                imm = prog[k, C_IMM]
                mode = prog[k, C_MODE]
                if mode == isa.LOAD_IMM_SEMAPHORE:
                    sem = imm & 15
                    if (imm >> 4) & 1:
                        gs[GS_SEM + sem] -= 1
                    else:
                        gs[GS_SEM + sem] += 1
                    _wake(qs, nq, sem, cyc + SYNC_WAKE_CYCLES, stall, STALL_SEMAPHORE)
                    resched = True
                for i in range(16):
                    if mode == isa.LOAD_IMM_PER_ELEMENT_SIGNED:
                        v = -2 * ((imm >> (16 + i)) & 1) + ((imm >> i) & 1)
                    elif mode == isa.LOAD_IMM_PER_ELEMENT_UNSIGNED:
                        v = 2 * ((imm >> (16 + i)) & 1) + ((imm >> i) & 1)
                    else:
                        v = imm
                    res[0, i] = v & 0xFFFFFFFF
                    res[1, i] = v & 0xFFFFFFFF
                if strict and mode != isa.LOAD_IMM_32 and mode != isa.LOAD_IMM_SEMAPHORE and \
                        mode != isa.LOAD_IMM_PER_ELEMENT_SIGNED and mode != isa.LOAD_IMM_PER_ELEMENT_UNSIGNED:
                    return _undefined(err, UB_RESERVED_OP, q, pc, mode)
                if prog[k, C_CA] != isa.COND_ALWAYS or prog[k, C_CM] != isa.COND_ALWAYS:
                    cond_mask(prog[k, C_CA], fl, cmask[0])
                    cond_mask(prog[k, C_CM], fl, cmask[1])
                    masked = True
                have_add = True
                have_mul = True
                add_float = False
                mul_float = False
            else:
                # ---- ALU instruction ----
                opa = prog[k, C_OPA]
                opm = prog[k, C_OPM]
                maa = prog[k, C_MUX_AA]
                mab = prog[k, C_MUX_AB]
                mma = prog[k, C_MUX_MA]
                mmb = prog[k, C_MUX_MB]
                uses = prog[k, C_USES]
                uses_a = (uses & USES_A) != 0
                uses_b = (uses & USES_B) != 0
                uses_r4 = (uses & USES_R4) != 0
                if strict and qs[q, QS_SFU_AT] >= n and \
                        (uses_r4 or sig == isa.SIG_LOAD_TMU0 or sig == isa.SIG_LOAD_TMU1 or
                         (isa.ADDR_SFU_FIRST <= (dadd & 63) <= isa.ADDR_SFU_LAST and opa != 0) or
                         (isa.ADDR_SFU_FIRST <= (dmul & 63) <= isa.ADDR_SFU_LAST and opm != 0)):
                    return _undefined(err, UB_R4_SFU, q, pc, qs[q, QS_SFU_AT] + 1 - n)
                # regfile A read
                if ra < 32:
                    if not _regfile_read(q, n, ra, 0, uses_a and strict, regs, oldv, qs, va):
                        return _undefined(err, UB_REGFILE_RAW, q, pc, ra)
                elif ra == isa.ADDR_UNIFORM and uniform_in_buffer(qs, q):
                    ustall += _pop_uniform_into(va, q, qs, gs, gt, mem, mem32, membase, l2tag, l2state,
                                                l2data, tp)
                elif ra != isa.ADDR_NOP or uses_a:
                    st = _io_read(q, n, pc, ra, 0, qs, gs, mem, membase, bounds, vpm8, vpm16, vpm32,
                                  va, strict, uses_a, err)
                    if st >= 0:
                        return st
                    if ra == isa.ADDR_UNIFORM:
                        ustall += uniform_line_stall(q, qs[q, QS_UPTR] - 4, qs, gs, gt, mem, membase,
                                                      l2tag, l2state, l2data, tp)
                # regfile B read or small immediate
                if sig == isa.SIG_SMALL_IMM:
                    v = SMALL_IMM[rb]
                    for i in range(16):
                        vb[i] = v
                elif rb < 32:
                    if not _regfile_read(q, n, rb, 1, uses_b and strict, regs, oldv, qs, vb):
                        return _undefined(err, UB_REGFILE_RAW, q, pc, 32 + rb)
                elif rb == ra and (rb == isa.ADDR_UNIFORM or rb == isa.ADDR_VPM):
                    # one read serves both fields (VC4C; the Linux validator counts one uniform)
                    if strict and uses_a and uses_b:
                        return _undefined(err, UB_UNIFORM_TWICE, q, pc, rb)
                    for i in range(16):
                        vb[i] = va[i]
                elif rb == isa.ADDR_UNIFORM and uniform_in_buffer(qs, q):
                    ustall += _pop_uniform_into(vb, q, qs, gs, gt, mem, mem32, membase, l2tag, l2state,
                                                l2data, tp)
                elif rb != isa.ADDR_NOP or uses_b:
                    st = _io_read(q, n, pc, rb, 1, qs, gs, mem, membase, bounds, vpm8, vpm16, vpm32,
                                  vb, strict, uses_b, err)
                    if st >= 0:
                        return st
                    if rb == isa.ADDR_UNIFORM:
                        ustall += uniform_line_stall(q, qs[q, QS_UPTR] - 4, qs, gs, gt, mem, membase,
                                                      l2tag, l2state, l2data, tp)
                if ustall > 0:                  # the instruction issues once its uniform is in:
                    stall[q, STALL_UNIFORM] += ustall   # its effects (a DMA it starts) date from then
                    cyc += ustall
                    qs[q, QS_CYCLE] = cyc
                # unpack
                add_fin = ADD_FLOAT_IN[opa] != 0
                mul_fin = MUL_FLOAT_IN[opm] != 0
                add_float = ADD_FLOAT_OUT[opa] != 0
                mul_float = opm == 1
                mode = prog[k, C_MODE]
                unpack_a = mode != 0 and pm == 0
                unpack_r4 = mode != 0 and pm == 1
                if unpack_a:
                    add_uses_a = (uses & ADD_USES_A) != 0
                    mul_uses_a = (uses & MUL_USES_A) != 0
                    # guide: float conversion "if any ALU consuming data executes float instruction"
                    as_float = (add_uses_a and add_fin) or (mul_uses_a and mul_fin)
                    if strict and add_uses_a and mul_uses_a and add_fin != mul_fin:
                        return _undefined(err, UB_UNPACK_MIXED, q, pc, mode)
                    for i in range(16):
                        ua[i] = pack.unpack(mode, np.int64(va[i]), as_float)
                if unpack_r4:
                    for i in range(16):
                        ur4[i] = pack.unpack(mode, np.int64(acc[q, 4, i]), True)
                # operands: copies of their sources into the fixed operand rows
                if opa != 0:
                    _operand(op0, maa, q, acc, va, vb, ua, ur4, unpack_a, unpack_r4)
                    _operand(op1, mab, q, acc, va, vb, ua, ur4, unpack_a, unpack_r4)
                if opm != 0:
                    _operand(op2, mma, q, acc, va, vb, ua, ur4, unpack_a, unpack_r4)
                    _operand(op3, mmb, q, acc, va, vb, ua, ur4, unpack_a, unpack_r4)
                # mul-pipe rotation
                if sig == isa.SIG_SMALL_IMM and rb >= isa.SMALL_IMM_ROTATE_BY_R5 and opm != 0:
                    if rb == isa.SMALL_IMM_ROTATE_BY_R5:
                        amount = np.int64(acc[q, 5, 0]) & 15
                        if strict and qs[q, QS_R5W_INSTR] == n - 1:
                            return _undefined(err, UB_ROTATE_HAZARD, q, pc, 5)
                    else:
                        amount = rb - isa.SMALL_IMM_ROTATE_BY_R5
                    full_rot = mma < 4 and mmb < 4
                    if strict and (mma < 4) != (mmb < 4):
                        return _undefined(err, UB_ROTATE_MIXED, q, pc, amount)
                    if strict and full_rot and qs[q, QS_ACCW_INSTR] == n - 1 and \
                            ((qs[q, QS_ACCW_MASK] >> mma) & 1 or (qs[q, QS_ACCW_MASK] >> mmb) & 1):
                        return _undefined(err, UB_ROTATE_HAZARD, q, pc, amount)
                    _rotate(op2, wval, amount, full_rot)
                    for i in range(16):
                        op2[i] = wval[i]
                    _rotate(op3, wval, amount, full_rot)
                    for i in range(16):
                        op3[i] = wval[i]
                # execute
                if opa != 0:
                    alu.add_pipe(opa, op0, op1, res0, car0, d64, sf != 0)
                    if prog[k, C_CA] != isa.COND_ALWAYS:
                        cond_mask(prog[k, C_CA], fl, cmask[0])
                        masked = True
                    have_add = True
                    if pm == 0 and pk >= 8 and (opa == OP_IADD or opa == OP_ISUB):
                        for i in range(16):   # 32-bit saturation before the pack (VC4C)
                            x = np.int64(op0[i])
                            y = np.int64(op1[i])
                            sx = x - ((x & 0x80000000) << 1)
                            sy = y - ((y & 0x80000000) << 1)
                            s = sx + sy if opa == OP_IADD else sx - sy
                            if s > 2147483647:
                                res[0, i] = 0x7FFFFFFF
                            elif s < -2147483648:
                                res[0, i] = 0x80000000
                if opm != 0:
                    alu.mul_pipe(opm, op2, op3, res1, car1, sf != 0)
                    if prog[k, C_CM] != isa.COND_ALWAYS:
                        cond_mask(prog[k, C_CM], fl, cmask[1])
                        masked = True
                    have_mul = True
                if sig == isa.SIG_LOAD_TMU0 or sig == isa.SIG_LOAD_TMU1:
                    r4_pop = _tmu_unit(qs, q, sig - isa.SIG_LOAD_TMU0)
                if ENDS_PROGRAM[sig] != 0:
                    qs[q, QS_END_AT] = n + isa.THREAD_END_DELAY_SLOTS

            # ---- flags from the result before the write (conditions used the old flags) ----
            if sf != 0:
                fp = -1
                if have_add and (sig >= isa.SIG_LOAD_IMM or opa != 0):
                    fp = 0
                    if strict and is_alu and prog[k, C_CA] == 0 and opm != 0 and prog[k, C_CM] != 0:
                        return _undefined(err, UB_SF_COND_NEVER, q, pc, 0)
                elif have_mul:
                    fp = 1
                if fp >= 0:
                    pipe_op = opa if fp == 0 else opm
                    for i in range(16):
                        if cmask[fp, i]:
                            v = np.int64(res[fp, i])
                            fl[0, i] = 1 if v == 0 else 0
                            fl[1, i] = 1 if (v >> 31) & 1 else 0
                            fl[2, i] = car[fp, i] if is_alu else 0
                            # C where vc4asm and VC4C disagree: remembered, raised only if read
                            amb = 0
                            if is_alu and strict:
                                alt = alu.carry_alternative(fp, pipe_op, op0 if fp == 0 else op2,
                                                            op1 if fp == 0 else op3, res[fp], i)
                                amb = 1 if alt >= 0 and alt != car[fp, i] else 0
                            fl[3, i] = amb

            # ---- writes: add pipe, then mul pipe ----
            accw = 0
            for p in range(2):
                if p == 0 and not have_add or p == 1 and not have_mul:
                    continue
                full = dadd if p == 0 else dmul
                addr = full & 63
                if addr == isa.ADDR_NOP:
                    continue
                bm = 0xF
                src = res0 if p == 0 else res1       # the value written: the result or its pack
                if pm == 0 and pk != 0 and full < 32:
                    is_float = add_float if p == 0 else mul_float
                    bm = pack.PACK_BYTE_MASK[pk]
                    for i in range(16):
                        wval[i] = pack.pack_a(pk, np.int64(src[i]), is_float)
                    src = wval
                elif pm == 1 and pk != 0 and p == 1:
                    if strict and (pk < 3 or pk > 7):
                        return _undefined(err, UB_RESERVED_OP, q, pc, pk)
                    for i in range(16):
                        pv, bm = pack.colour_pack(pk, np.int64(src[i]))
                        wval[i] = pv
                    src = wval
                cm = cmask[p]
                if addr < 32:
                    ri = addr if full < B_SPACE else 32 + addr
                    sp = 0 if full < B_SPACE else 1
                    for i in range(16):
                        oldv[q, sp, i] = regs[q, ri, i]
                    if bm == 0xF and prog[k, C_CA + p] == isa.COND_ALWAYS:
                        for i in range(16):
                            regs[q, ri, i] = src[i]
                    elif bm == 0xF:
                        for i in range(16):
                            if cm[i]:
                                regs[q, ri, i] = src[i]
                    else:
                        keep = np.int64(0)
                        for b in range(4):
                            if not (bm >> b) & 1:
                                keep |= np.int64(255) << (8 * b)
                        for i in range(16):
                            if cm[i]:
                                regs[q, ri, i] = (np.int64(regs[q, ri, i]) & keep) | \
                                    (np.int64(src[i]) & ~keep & 0xFFFFFFFF)
                    if sp == 0:
                        n_written_a = addr
                    else:
                        n_written_b = addr
                elif addr <= 35 or addr == isa.ADDR_R5:
                    ai = addr - 32 if addr <= 35 else 5
                    if addr == isa.ADDR_R5:
                        # A space: element 0 of each quad to its quad; B space: element 0 to all.
                        # The source element's condition governs (VC4C's hardware tests).
                        for qd in range(4):
                            e0 = 4 * qd if full < B_SPACE else 0
                            if cm[e0]:
                                for e in range(4):
                                    acc[q, 5, 4 * qd + e] = src[e0]
                        qs[q, QS_R5W_INSTR] = n
                    else:
                        keep = np.int64(0)
                        for b in range(4):
                            if not (bm >> b) & 1:
                                keep |= np.int64(255) << (8 * b)
                        if keep == 0 and prog[k, C_CA + p] == isa.COND_ALWAYS:
                            for i in range(16):
                                acc[q, ai, i] = src[i]
                        else:
                            for i in range(16):
                                if cm[i]:
                                    acc[q, ai, i] = (np.int64(acc[q, ai, i]) & keep) | \
                                        (np.int64(src[i]) & ~keep & 0xFFFFFFFF)
                    accw |= 1 << ai
                else:
                    st = _io_write(q, n, pc, full, src, cm, bm, qs, gs, gt, stall, mem, membase,
                                   bounds, vpm8, vpm16, vpm32, sfu_val, tmu_data, tmu_ready, l1tag,
                                   l1data, l2tag, l2state, l2data, tp, nq, strict, err, fault)
                    if st == -2:
                        resched = True
                    elif st >= 0:
                        return st
            if masked:                      # restore the all-ones invariant
                for i in range(16):
                    cmask[0, i] = 1
                    cmask[1, i] = 1
            if accw != 0:
                qs[q, QS_ACCW_MASK] = accw
                qs[q, QS_ACCW_INSTR] = n
            qs[q, QS_LASTW_A] = n_written_a
            qs[q, QS_LASTW_B] = n_written_b
            qs[q, QS_LASTW_INSTR] = n

            # ---- r4: TMU data now, SFU data when its latency expires ----
            if r4_pop >= 0:
                h = qs[q, QS_TMU_HEAD0 + 2 * r4_pop]
                for i in range(16):
                    acc[q, 4, i] = tmu_data[q, r4_pop, h, i]
                qs[q, QS_TMU_HEAD0 + 2 * r4_pop] = (h + 1) % TMU_FIFO_DEPTH
                qs[q, QS_TMU_CNT0 + 2 * r4_pop] -= 1
            if qs[q, QS_SFU_AT] == n:
                for i in range(16):
                    acc[q, 4, i] = sfu_val[q, i]
                qs[q, QS_SFU_AT] = -1

            # ---- control flow and time ----
            next_pc = pc + 8
            if qs[q, QS_BR1_AT] == n:
                next_pc = qs[q, QS_BR1_TGT]
                qs[q, QS_BR1_AT] = qs[q, QS_BR2_AT]
                qs[q, QS_BR1_TGT] = qs[q, QS_BR2_TGT]
                qs[q, QS_BR2_AT] = -1
            qs[q, QS_PC] = next_pc
            qs[q, QS_INSTR] = n + 1
            qs[q, QS_CYCLE] = cyc + issue
            gs[GS_TOTAL_INSTR] += 1
            chunk_left -= 1
            if qs[q, QS_END_AT] == n:
                qs[q, QS_STATUS] = ST_ENDED
                qs[q, QS_END_CYCLE] = cyc + issue
                if strict and qs[q, QS_VPMR_LEFT] > 0:
                    return _undefined(err, UB_VPM_READS_AT_END, q, pc, qs[q, QS_VPMR_LEFT])
                if strict and (qs[q, QS_LD_DONE] > cyc + issue or qs[q, QS_ST_DONE] > cyc + issue):
                    return _undefined(err, UB_DMA_IN_FLIGHT_END, q, pc,
                                      max(qs[q, QS_LD_DONE], qs[q, QS_ST_DONE]) - cyc - issue)
                if (trace_mask >> q) & 1:
                    err[ERR_QPU] = q
                    err[ERR_PC] = pc
                    return EV_TRACE
                break
            if (trace_mask >> q) & 1:
                err[ERR_QPU] = q
                err[ERR_PC] = pc
                return EV_TRACE
            if resched:
                break
