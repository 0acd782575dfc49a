"""The emulator's fast path: runs of plain ALU instructions (decode marks them C_FAST) executed by
a small loop of their own, away from the general loop in core.py.

Most instructions of a compute kernel are plain ALU instructions: no signal, pack or shared
peripheral, operands from registers, accumulators, small immediates, the uniform stream or the
DMA wait registers, results to registers, accumulators or the QPU's own VPM/DMA setup
registers. `run_burst` executes consecutive ones with none of the general loop's tests for
shared state or strict-mode rules (the caller uses it only outside strict mode and tracing), so
its few live values stay in CPU registers; its scratch arrays are on the stack
(jit.stack_array) so that the 16-element loops compile to SIMD code. The results are those of
the general path, which the emulator's tests hold to the reference guide.
"""
import numpy as np

from vc4infer.emu import alu, vpm
from vc4infer.emu.decode import (
    C_BCOND, C_BRA, C_BREG, C_BREL, C_CA, C_CM, C_DADD, C_DMUL, C_FAST, C_IMM, C_MUX_AA, C_MUX_AB,
    C_MUX_MA, C_MUX_MB, C_OPA, C_OPM, C_RA, C_RB, C_SF, C_SIG, FAST_IO, FAST_NO, FAST_UNIFORM)
from vc4infer.emu.jit import jit_inline, stack_f64, stack_u8, stack_u32
from vc4infer.emu.qic import fetch_stall as qic_fetch_stall
from vc4infer.emu.state import (
    GS_TOTAL_INSTR, QS_BR1_AT, QS_BR1_TGT, QS_BR2_AT, QS_BR2_TGT, QS_BRANCH_INSTR, QS_CYCLE,
    QS_END_AT, QS_INSTR, QS_LD_DONE, QS_LD_PENDING, QS_ST_DONE, QS_ST_PENDING, QS_UPTR_AT,
    QS_ILINE, QS_UPTR_NEXT, STALL_DMA_LOAD_WAIT, STALL_DMA_STORE_WAIT, STALL_FETCH, STALL_UNIFORM,
    QS_LASTW_A, QS_LASTW_B, QS_LASTW_INSTR, QS_PC, QS_SFU_AT, QS_ULINE, QS_UPTR)
from vc4infer.emu.timing import CACHE_LINE_BYTES
from vc4infer.emu.uniforms import pop_uniform, uniform_in_buffer, uniform_line_stall
from vc4infer.qpu import isa

B_SPACE = 64     # full destination = space * 64 + address
R3 = isa.ACCUMULATOR_WADDR["r3"]
NO_WRITE = -1    # a destination for a pipe that does not write
OP_V8MIN = isa.MUL_OP_BY_NAME["v8min"].code
OP_V8MAX = isa.MUL_OP_BY_NAME["v8max"].code


@jit_inline
def cond_mask(cond, fl, out):
    """out[i] = 1 where condition code `cond` holds on flags fl[3, 16] (Z, N, C)."""
    if cond <= 1:
        for i in range(16):
            out[i] = cond
        return
    f = (cond - 2) >> 1
    want = 1 if (cond & 1) == 0 else 0
    for i in range(16):
        out[i] = 1 if fl[f, i] == want else 0


@jit_inline
def branch_taken(bc, fl):
    """Whether branch condition `bc` holds on flags fl[3, 16] (Z, N, C): BRANCH_ALWAYS, or 0-11,
    all (bit 1 clear) or any (bit 1 set) element with flag bc >> 2 set (bit 0 clear) or clear."""
    if bc == isa.BRANCH_ALWAYS:
        return True
    want = 1 if (bc & 1) == 0 else 0
    f = bc >> 2
    count = 0
    for i in range(16):
        if fl[f, i] == want:
            count += 1
    return count > 0 if (bc & 2) != 0 else count == 16


@jit_inline
def _mux(m, q, acc, src_a, src_b):
    """The 16 elements input mux `m` selects (a view, no copy)."""
    if m == isa.MUX_A:
        return src_a
    if m == isa.MUX_B:
        return src_b
    return acc[q, m]


@jit_inline
def _fast_write(full, cond, mask, q, n, src, regs, acc, oldv, qs, tmp, wa, wb):
    """Write src to register-file or accumulator destination `full` (space * 64 + address), in
    the elements where `mask` is set unless `cond` is "always" (other destinations: nothing);
    returns the regfile A and B addresses written so far (-1: none). `tmp`: 16 elements of
    stack scratch."""
    addr = full & 63
    if addr < 32:
        sp = 0 if full < B_SPACE else 1
        ri = addr + 32 * sp
        for i in range(16):                 # via the stack: regs and oldv might overlap for all
            tmp[i] = regs[q, ri, i]         # the compiler knows, which would keep this scalar
        for i in range(16):
            oldv[q, sp, i] = tmp[i]
        if cond == isa.COND_ALWAYS:
            for i in range(16):
                regs[q, ri, i] = src[i]
        else:
            for i in range(16):
                if mask[i]:
                    regs[q, ri, i] = src[i]
        if sp == 0:
            wa = addr
        else:
            wb = addr
    elif full == isa.ADDR_UNIFORMS_ADDRESS:   # element 0, whatever the condition (as core)
        qs[q, QS_UPTR_NEXT] = np.int64(src[0])
        qs[q, QS_UPTR_AT] = n + isa.UNIFORMS_ADDRESS_INSTRUCTIONS
    elif addr <= R3:
        ai = addr - 32
        if cond == isa.COND_ALWAYS:
            for i in range(16):
                acc[q, ai, i] = src[i]
        else:
            for i in range(16):
                if mask[i]:
                    acc[q, ai, i] = src[i]
    return wa, wb


@jit_inline
def fast_alu(q, n, k, prog, regs, acc, oldv, fl, qs, mem32, membase, simm_rows, va, vb, res0, res1,
             car0, car1, d64, mask0, mask1):
    """Compute an ALU instruction that decode marked FAST_RUN with none of the general path's
    tests: operands are read in place; the results go to res0 (add pipe) and res1 (mul pipe),
    the write masks of their conditions to mask0 and mask1, and the flags are updated (conditions
    use the flags from before). Returns what `write_results` takes: the add and mul destinations
    (NO_WRITE for a pipe that does not run) and conditions. The scratch arrays (va ... mask1) are
    `stack_array`s, so that the element loops writing them compile to SIMD code."""
    sig = prog[k, C_SIG]
    ra = prog[k, C_RA]
    rb = prog[k, C_RB]
    raw = qs[q, QS_LASTW_INSTR] == n - 1        # a read of last instruction's write: old value
    if ra < 32:
        src_a = oldv[q, 0] if raw and ra == qs[q, QS_LASTW_A] else regs[q, ra]
    else:
        src_a = va
        if ra == isa.ADDR_UNIFORM:
            v = pop_uniform(qs, q, mem32, membase)
            for i in range(16):
                va[i] = v
        elif ra == isa.ADDR_VPM_DMA:            # the DMA load wait (its stall came before issue)
            qs[q, QS_LD_PENDING] = 0
            for i in range(16):
                va[i] = 0
    if sig == isa.SIG_SMALL_IMM:
        src_b = simm_rows[rb]
    elif rb < 32:
        src_b = oldv[q, 1] if raw and rb == qs[q, QS_LASTW_B] else regs[q, 32 + rb]
    elif rb == isa.ADDR_UNIFORM and ra != isa.ADDR_UNIFORM:
        v = pop_uniform(qs, q, mem32, membase)
        for i in range(16):
            vb[i] = v
        src_b = vb
    elif rb == isa.ADDR_VPM_DMA:                # the DMA store wait
        qs[q, QS_ST_PENDING] = 0
        for i in range(16):
            vb[i] = 0
        src_b = vb
    else:                                       # raddr_b nop, or one uniform read for both fields
        src_b = va
    opa = prog[k, C_OPA]
    opm = prog[k, C_OPM]
    sf = prog[k, C_SF] != 0                     # the C flags are needed
    if opa != 0:
        alu.add_pipe(opa, _mux(prog[k, C_MUX_AA], q, acc, src_a, src_b),
                     _mux(prog[k, C_MUX_AB], q, acc, src_a, src_b), res0, car0, d64, sf)
    if opm != 0:
        mma = prog[k, C_MUX_MA]
        if (opm == OP_V8MIN or opm == OP_V8MAX) and mma == prog[k, C_MUX_MB]:
            src = _mux(mma, q, acc, src_a, src_b)      # the mul pipe's mov: v8min x, x = x
            for i in range(16):
                res1[i] = src[i]
                car1[i] = 0
        else:
            alu.mul_pipe(opm, _mux(mma, q, acc, src_a, src_b),
                         _mux(prog[k, C_MUX_MB], q, acc, src_a, src_b), res1, car1, sf)
    ca = prog[k, C_CA] if opa != 0 else isa.COND_ALWAYS     # a pipe that does not run: no mask
    cm = prog[k, C_CM] if opm != 0 else isa.COND_ALWAYS
    if ca != isa.COND_ALWAYS:
        cond_mask(ca, fl, mask0)
    if cm != isa.COND_ALWAYS:
        cond_mask(cm, fl, mask1)
    if sf and (opa != 0 or opm != 0):           # flags of the add pipe if it runs
        if opa != 0:
            _set_flags(fl, res0, car0, mask0)
        else:
            _set_flags(fl, res1, car1, mask1)
    return prog[k, C_DADD] if opa != 0 else NO_WRITE, prog[k, C_DMUL] if opm != 0 else NO_WRITE, ca, cm


@jit_inline
def write_results(q, n, cycle, io, dadd, dmul, ca, cm, res0, res1, mask0, mask1, regs, acc, oldv, qs,
                  tp, tmp):
    """Write the add pipe's result res0 to destination dadd, then the mul pipe's res1 to dmul
    (NO_WRITE: none), where their conditions hold; with `io` (decode's FAST_IO) a destination may
    be a setup register. Returns the regfile A and B addresses written (-1: none). `tmp`: 16
    elements of stack scratch."""
    wa = -1
    wb = -1
    if dadd != NO_WRITE:
        wa, wb = _fast_write(dadd, ca, mask0, q, n, res0, regs, acc, oldv, qs, tmp, wa, wb)
    if dmul != NO_WRITE:
        wa, wb = _fast_write(dmul, cm, mask1, q, n, res1, regs, acc, oldv, qs, tmp, wa, wb)
    if io:
        for p in range(2):                      # element 0, whatever the condition (as core)
            full = dadd if p == 0 else dmul
            if full != NO_WRITE and (full & 63) == isa.ADDR_VPM_SETUP:
                v = np.int64(res0[0]) if p == 0 else np.int64(res1[0])
                vpm.setup_write(q, 0 if full < B_SPACE else 1, v, cycle, qs, tp)
    if ca != isa.COND_ALWAYS or cm != isa.COND_ALWAYS:     # restore the all-ones invariant
        for i in range(16):
            mask0[i] = 1
            mask1[i] = 1
    return wa, wb


@jit_inline
def queue_branch(qs, q, n, target):
    """A taken branch at instruction n: the PC becomes `target` after its delay slots (a second
    one may be pending when a branch sits in the delay slots of another)."""
    if qs[q, QS_BR1_AT] < 0:
        qs[q, QS_BR1_AT] = n + isa.BRANCH_DELAY_SLOTS
        qs[q, QS_BR1_TGT] = target
    else:
        qs[q, QS_BR2_AT] = n + isa.BRANCH_DELAY_SLOTS
        qs[q, QS_BR2_TGT] = target


@jit_inline
def fast_branch(q, n, pc, k, prog, regs, fl, qs, res0, res1):
    """Run a branch that decode marked FAST_RUN (no flag update; link, when taken, to registers,
    accumulators or nowhere): queue its target BRANCH_DELAY_SLOTS instructions ahead and put the
    link address in res0 and res1. Returns the link destinations (NO_WRITE: not taken)."""
    qs[q, QS_BRANCH_INSTR] = n
    if branch_taken(prog[k, C_BCOND], fl):     # decode admits only conditions branch_taken knows
        target = prog[k, C_IMM]
        if prog[k, C_BREL] != 0:
            target += pc + isa.BRANCH_LINK_OFFSET_BYTES
        if prog[k, C_BREG] != 0:
            target += np.int64(regs[q, prog[k, C_BRA], 15])   # element 15 (see core)
        queue_branch(qs, q, n, target & 0xFFFFFFFF & ~7)
        link = (pc + isa.BRANCH_LINK_OFFSET_BYTES) & 0xFFFFFFFF
        for i in range(16):
            res0[i] = link
            res1[i] = link
        return prog[k, C_DADD], prog[k, C_DMUL]
    return NO_WRITE, NO_WRITE


@jit_inline
def dma_wait_ready(q, k, prog, qs, cycle):
    """The cycle at which instruction k's reads of the DMA load wait (raddr A) and store wait
    (raddr B) let it issue, and the stall cause that delays it most (-1: none)."""
    ready = cycle
    cause = -1
    if prog[k, C_RA] == isa.ADDR_VPM_DMA and qs[q, QS_LD_DONE] > ready:
        ready = qs[q, QS_LD_DONE]
        cause = STALL_DMA_LOAD_WAIT
    if prog[k, C_SIG] < isa.SIG_SMALL_IMM and prog[k, C_RB] == isa.ADDR_VPM_DMA and \
            qs[q, QS_ST_DONE] > ready:
        ready = qs[q, QS_ST_DONE]
        cause = STALL_DMA_STORE_WAIT
    return ready, cause


@jit_inline
def _set_flags(fl, r, c, mask):
    """Z, N and C from result r and carry c where mask is set (fl[3]: no disagreement)."""
    for i in range(16):
        if mask[i]:
            v = np.int64(r[i])
            fl[0, i] = 1 if v == 0 else 0
            fl[1, i] = (v >> 31) & 1
            fl[2, i] = c[i]
            fl[3, i] = 0


@jit_inline
def run_burst(q, lo, hi, off, limit, issue, max_instr, max_cycles, other_cycle, other_q, prog,
              regs, acc, oldv, flags, sfu_val, qs, gs, gt, stall, mem, mem32, membase, l2tag, l2state,
              l2data, qic, tp, simm_rows):
    """Run QPU q's instructions from its PC while they are fast-path instructions in the code
    region [lo, hi) (its first decoded row: off), at most `limit` of them, and no budget or
    thread end is due; a uniform read or an instruction fetch that enters a new cache line runs
    only while q is ahead of (other_cycle, other_q), the earliest other runnable QPU, as in the
    general loop. Returns
    how many ran (0: the general loop must run the next instruction, after rereading q's cycle:
    a DMA wait may have moved it)."""
    va, vb, res0, res1, tmp = stack_u32(16), stack_u32(16), stack_u32(16), stack_u32(16), stack_u32(16)
    car0, car1, mask0, mask1 = stack_u8(16), stack_u8(16), stack_u8(16), stack_u8(16)
    d64 = stack_f64(16)
    for i in range(16):
        mask0[i] = 1
        mask1[i] = 1
    fl = flags[q]
    # the QPU's PC, instruction count and cycle live in locals while the burst runs
    pc = qs[q, QS_PC]
    n = qs[q, QS_INSTR]
    cycle = qs[q, QS_CYCLE]
    total = gs[GS_TOTAL_INSTR]
    end_at = qs[q, QS_END_AT]
    count = 0
    while count < limit:
        if pc < lo or pc >= hi or ((pc - lo) & 7) != 0 or end_at == n:
            break
        if total >= max_instr or cycle >= max_cycles:
            break
        k = off + ((pc - lo) >> 3)
        fast = prog[k, C_FAST]
        if fast == FAST_NO:
            break
        line = pc // CACHE_LINE_BYTES
        if line != qs[q, QS_ILINE]:             # the fetch enters another code line (qic.py)
            if not (cycle < other_cycle or cycle == other_cycle and q < other_q):
                break
            qs[q, QS_ILINE] = line
            wait = qic_fetch_stall(q, line, cycle, gs, gt, qic, mem, membase, l2tag, l2state, l2data, tp)
            if wait > 0:
                stall[q, STALL_FETCH] += wait
                cycle += wait
                continue                        # the budget again
        new_line = False
        if fast & FAST_UNIFORM:
            if not uniform_in_buffer(qs, q):
                break
            new_line = qs[q, QS_UPTR] // CACHE_LINE_BYTES != qs[q, QS_ULINE]
            if new_line and not (cycle < other_cycle or cycle == other_cycle and q < other_q):
                break
        if fast & FAST_IO:                      # a DMA wait stalls before issue (as in core)
            ready, cause = dma_wait_ready(q, k, prog, qs, cycle)
            if ready > cycle:
                stall[q, cause] += ready - cycle
                cycle = ready
                continue                        # the budget and the uniform's turn again
        if new_line:                            # the instruction issues once its uniform is in
            qs[q, QS_CYCLE] = cycle
            ustall = uniform_line_stall(q, qs[q, QS_UPTR], qs, gs, gt, mem, membase, l2tag, l2state,
                                        l2data, tp)
            stall[q, STALL_UNIFORM] += ustall
            cycle += ustall
        if prog[k, C_SIG] == isa.SIG_BRANCH:
            dadd, dmul = fast_branch(q, n, pc, k, prog, regs, fl, qs, res0, res1)
            ca = isa.COND_ALWAYS
            cm = isa.COND_ALWAYS
        else:
            dadd, dmul, ca, cm = fast_alu(q, n, k, prog, regs, acc, oldv, fl, qs, mem32, membase,
                                          simm_rows, va, vb, res0, res1, car0, car1, d64, mask0, mask1)
        wa, wb = write_results(q, n, cycle, (fast & FAST_IO) != 0, dadd, dmul, ca, cm, res0, res1,
                               mask0, mask1, regs, acc, oldv, qs, tp, tmp)
        qs[q, QS_LASTW_A] = wa
        qs[q, QS_LASTW_B] = wb
        qs[q, QS_LASTW_INSTR] = n
        if qs[q, QS_SFU_AT] == n:               # an SFU result reaches r4 after this instruction
            for i in range(16):
                acc[q, 4, i] = sfu_val[q, i]
            qs[q, QS_SFU_AT] = -1
        if qs[q, QS_BR1_AT] == n:               # the last delay slot of a taken branch
            pc = qs[q, QS_BR1_TGT]
            qs[q, QS_BR1_AT] = qs[q, QS_BR2_AT]
            qs[q, QS_BR1_TGT] = qs[q, QS_BR2_TGT]
            qs[q, QS_BR2_AT] = -1
        else:
            pc += 8
        n += 1
        cycle += issue
        total += 1
        count += 1
    qs[q, QS_PC] = pc
    qs[q, QS_INSTR] = n
    qs[q, QS_CYCLE] = cycle
    gs[GS_TOTAL_INSTR] = total
    return count
