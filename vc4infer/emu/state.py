"""Layout of the emulator's state arrays (indices into plain numpy arrays, so that the compiled loop
keeps all machine state in arrays and Python can read and reset it between calls).

Per-QPU scalars live in `qs[qpu, QS_*]` (int64); machine-wide scalars in `gs[GS_*]` (int64) and
`gt[GT_*]` (float64 modelled times in cycles); a stopped run leaves its reason in `err[ERR_*]`.
"""
from vc4infer.qpu import isa

NQ = isa.NUM_QPUS
QPUS_PER_SLICE = 4
NSLICES = NQ // QPUS_PER_SLICE
TMUS_PER_SLICE = 2

# --- qs: per-QPU scalars ---------------------------------------------------------------------
(QS_PC, QS_CYCLE, QS_STATUS, QS_INSTR, QS_UPTR, QS_UPTR_NEXT, QS_UPTR_AT,
 QS_BR1_AT, QS_BR1_TGT, QS_BR2_AT, QS_BR2_TGT, QS_END_AT, QS_SFU_AT,
 QS_NOSWAP, QS_NOSWAP_NEXT, QS_NOSWAP_AT,
 QS_LASTW_A, QS_LASTW_B, QS_LASTW_INSTR,
 QS_TMU_HEAD0, QS_TMU_CNT0, QS_TMU_HEAD1, QS_TMU_CNT1,
 QS_VPMR_ADDR, QS_VPMR_STRIDE, QS_VPMR_LEFT, QS_VPMR_SIZE, QS_VPMR_HORIZ, QS_VPMR_LANED, QS_VPMR_READY,
 QS_VPMW_ADDR, QS_VPMW_STRIDE, QS_VPMW_SIZE, QS_VPMW_HORIZ, QS_VPMW_LANED,
 QS_VCD_SETUP, QS_VCD_PITCHB, QS_VDW_SETUP, QS_VDW_STRIDE, QS_LD_DONE, QS_ST_DONE,
 QS_LD_PENDING, QS_ST_PENDING,
 QS_HOSTINT, QS_R5W_INSTR, QS_ACCW_MASK, QS_ACCW_INSTR, QS_BRANCH_INSTR, QS_BLOCK_ON,
 QS_MUTEX_HELD, QS_END_CYCLE, QS_UNIF_READS, QS_UBUF_LO, QS_UBUF_HI, QS_ULINE,
 QS_UROW_LO, QS_UROW_HI,
 QS_ILINE,                        # the 64-byte code line of the QPU's last instruction fetch
 QS_N) = range(59)

# QS_STATUS values
ST_IDLE, ST_RUN, ST_BLOCKED, ST_ENDED = 0, 1, 2, 3
# QS_BLOCK_ON values (what a blocked QPU waits for): a semaphore number, or these
BLOCK_MUTEX = 100

# --- stall causes: stall[qpu, STALL_*] in cycles ---------------------------------------------
(STALL_TMU, STALL_VPM_READ, STALL_DMA_LOAD_WAIT, STALL_DMA_STORE_WAIT, STALL_DMA_QUEUE,
 STALL_SEMAPHORE, STALL_MUTEX, STALL_UNIFORM, STALL_FETCH, STALL_N) = range(10)
STALL_NAMES = ("tmu", "vpm_read", "dma_load_wait", "dma_store_wait", "dma_queue", "semaphore", "mutex",
               "uniforms", "instruction_fetch")

# --- gs: machine-wide integers -----------------------------------------------------------------
GS_SEM = 0                       # 16 semaphore counters at GS_SEM .. GS_SEM+15
(GS_MUTEX_OWNER, GS_TOTAL_INSTR, GS_DMA_LOAD_BYTES, GS_DMA_STORE_BYTES, GS_TMU_BYTES,
 GS_TMU_REQUESTS, GS_TMU_L1_MISSES, GS_TMU_L2_MISSES, GS_DRAM_BYTES, GS_STALE_READS,
 GS_UNIFORM_LINES, GS_UNIFORM_L2_MISSES,
 # the L2C's LRU clock: one tick per line access, TMU and uniforms alike
 GS_L2_CLOCK,
 # stray reads (outside every live buffer, served as a Pi would; not strict): how many, and the
 # first one's fault kind, QPU, PC, address, bytes and row (in ERR_KIND..ERR_ROW's order)
 GS_STRAY_READS, GS_STRAY_KIND, GS_STRAY_QPU, GS_STRAY_PC, GS_STRAY_ADDR, GS_STRAY_NBYTES,
 GS_STRAY_ROW,
 # instruction fetches that missed their slice's QIC, and those that missed the L2C too; the
 # QICs' LRU clock
 GS_QIC_MISSES, GS_QIC_L2_MISSES, GS_QIC_CLOCK, GS_N) = range(16, 40)

# --- gt: machine-wide modelled times (float cycles) --------------------------------------------
GT_DRAM_FREE, GT_VCD_FREE, GT_VDW_FREE = 0, 1, 2
GT_TMU_FREE = 3                  # one per TMU: GT_TMU_FREE + 2 * slice + tmu
GT_TMU_DONE = GT_TMU_FREE + NSLICES * TMUS_PER_SLICE    # when each TMU's last request completes
GT_N = GT_TMU_DONE + NSLICES * TMUS_PER_SLICE

# --- ip: integer run options -------------------------------------------------------------------
(IP_NQ, IP_STRICT, IP_MAX_INSTR, IP_MAX_CYCLES, IP_CHUNK, IP_TRACE_MASK, IP_MEMBASE, IP_FAST_PATH,
 IP_N) = range(9)

# --- events the compiled loop returns with -------------------------------------------------------
(EV_DONE, EV_FAULT, EV_DEADLOCK, EV_BUDGET, EV_UNDEFINED, EV_NEED_DECODE, EV_TRACE, EV_CHUNK) = range(8)

# --- err: what stopped the run ---------------------------------------------------------------------
(ERR_KIND, ERR_QPU, ERR_PC, ERR_ADDR, ERR_NBYTES, ERR_ROW, ERR_X, ERR_N) = range(8)

# memory-fault kinds (ERR_KIND with EV_FAULT)
(FAULT_FETCH, FAULT_UNIFORM, FAULT_TMU, FAULT_DMA_LOAD, FAULT_DMA_STORE,
 FAULT_UNIFORM_ROW) = range(6)
FAULT_NAMES = ("instruction fetch", "uniform read", "TMU read", "DMA load (VCD) read",
               "DMA store (VDW) write", "uniform read")

# undefined-behaviour kinds (ERR_KIND with EV_UNDEFINED); text in machine.UNDEFINED_MESSAGES
(UB_REGFILE_RAW, UB_R4_SFU, UB_VPM_READ_BEYOND_NUM, UB_COND_PERIPHERAL, UB_SEMAPHORE_END,
 UB_DMA_IN_FLIGHT_END, UB_STALE_TMU, UB_TMU_FIFO_OVERFLOW, UB_TMU_FIFO_DEPTH, UB_LDTMU_EMPTY,
 UB_UNIFORM_AFTER_ADDR, UB_NOSWAP_LATE, UB_BRANCH_IN_DELAY, UB_ROTATE_HAZARD, UB_ROTATE_MIXED,
 UB_BOTH_WRITE_SAME, UB_PARTIAL_PACK_PERIPHERAL, UB_RESERVED_SETUP, UB_VPM_SETUP_REPLACED,
 UB_VPM_READS_AT_END, UB_FRAGMENT_ONLY, UB_TEXTURE, UB_UNIFORM_TWICE,
 UB_BRANCH_ELEMENT, UB_UNPACK_MIXED, UB_FLAG_DISAGREE, UB_MUTEX_NOT_OWNER, UB_RESERVED_OP,
 UB_MISALIGNED, UB_UNIF_ADDR_REL, UB_SETUP_AND_VPM, UB_SF_COND_NEVER, UB_PITCHB_BEYOND_GUIDE,
 UB_N) = range(34)
