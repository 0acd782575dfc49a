"""What every kernel builder shares: the Launch record, the program cache, the split of work items
over QPUs and launches, the VDW setup words and the QPU code that joins the instances at the end.

A builder (sgemm.build, conv_depthwise.build, ...) runs once at model load. It cuts its work into
items (tiles), estimates each item's modelled cycles, groups items into launches that stay well
under the backend's per-launch limit, deals each launch's items to up to 12 QPUs and writes one
uniforms row per QPU. The host then calls `launch.run(drv)` for every Launch, every inference.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vc4infer.qpu import isa

#: wall-clock timeout handed to execute(); the hw backend caps it at its own mailbox limit, the
#: emulator (which can be slow on big launches) uses it as is
LAUNCH_TIMEOUT_SECONDS = 600.0
#: per-launch budget when the backend has none (the emulator): the Pi's mailbox limit, so that a
#: model plans the same launches on every backend
DEFAULT_MAX_LAUNCH_SECONDS = 1.0
#: plan launches to at most this fraction of the limit: the cycle estimates are approximate
LAUNCH_BUDGET_FRACTION = 0.25
#: the slowest V3D clock of any VideoCore IV board: launch budgets are computed at it
PLANNING_CLOCK_HZ = 250e6
#: semaphore the instances raise when they are done; instance 0 takes it once per instance
DONE_SEMAPHORE = 0
#: the guide gives the VDW store stride field 13 bits (vc4asm measured 16): stay within 13
MAX_STORE_GAP_BYTES = (1 << 13) - 1


class KernelShapeError(ValueError):
    """The shapes or strides given to a kernel builder cannot be run by that kernel."""


@dataclass
class Launch:
    """One execute: `n_threads` instances of `program`, row i of `uniforms` for instance i."""
    program: object
    uniforms: np.ndarray
    n_threads: int

    def run(self, drv) -> None:
        """Execute this launch on `drv` (blocks until the QPUs are done)."""
        drv.execute(self.n_threads, self.program, self.uniforms, timeout=LAUNCH_TIMEOUT_SECONDS)


_programs: "weakref.WeakKeyDictionary[object, Dict[tuple, object]]" = weakref.WeakKeyDictionary()


def cached_program(drv, kernel: Callable, *args) -> object:
    """`kernel` assembled with `args` (hazard-checked: errors raise) and loaded into `drv`, once per
    Driver and argument tuple; later calls return the same Program."""
    per_driver = _programs.setdefault(drv, {})
    key = (kernel.__module__, kernel.__name__) + tuple(args)
    if key not in per_driver:
        per_driver[key] = drv.program(kernel, *args, check=True)
    return per_driver[key]


def launch_budget_cycles(drv) -> float:
    """Modelled cycles one launch may plan for on `drv` (a fraction of its per-launch limit)."""
    limit = getattr(drv, "max_launch_seconds", None) or DEFAULT_MAX_LAUNCH_SECONDS
    return LAUNCH_BUDGET_FRACTION * limit * PLANNING_CLOCK_HZ


def split_items(item_cycles: Sequence[float], budget_cycles: float,
                n_qpus: int = isa.NUM_QPUS) -> List[List[List[int]]]:
    """Group item indices into launches and deal each launch's items round-robin to up to
    `n_qpus` instances (neighbouring items share input rows, so the QPUs working at the same
    time share the lines they fetch through the L2 cache). A launch is cut when its busiest
    instance would exceed `budget_cycles`. Returns launches -> instances -> item indices."""
    n = len(item_cycles)
    if n == 0:
        return []
    per_item = max(float(max(item_cycles)), 1.0)
    per_instance = max(1, int(budget_cycles // per_item))
    per_launch = per_instance * n_qpus
    launches = []
    for start in range(0, n, per_launch):
        items = list(range(start, min(n, start + per_launch)))
        k = min(n_qpus, len(items))
        launches.append([items[t::k] for t in range(k)])
    return launches


def uniforms_array(drv, rows: Sequence[Sequence[int]]) -> np.ndarray:
    """A uint32 Driver array with one row per instance, padded with zeros to equal width."""
    width = max(len(r) for r in rows)
    out = drv.alloc((len(rows), width), "uint32")
    for i, row in enumerate(rows):
        out[i, :len(row)] = np.asarray(row, dtype=np.int64) & 0xFFFFFFFF
    return out


def vdw_store_setup(rows: int, cols: int, vpm_y: int, vertical: bool = False) -> int:
    """VDW basic setup: `rows` (1..16) memory rows of `cols` 32-bit words. Horizontal: memory row
    r is VPM row vpm_y + r (cols <= 16). Vertical: memory row r is VPM column r read down VPM rows
    vpm_y .. vpm_y + cols - 1 (cols up to the user VPM's 64 rows), so a tile written one C column
    per VPM row leaves in one transfer."""
    max_cols = isa.VPM_USER_ROWS - vpm_y if vertical else 16
    if not (1 <= rows <= 16 and 1 <= cols <= max_cols and 0 <= vpm_y < isa.VPM_USER_ROWS):
        raise KernelShapeError(f"VDW store of {rows}x{cols} words at VPM row {vpm_y} is out of range")
    return isa.encode_fields(isa.VDW_STORE_FIELDS, id=isa.VDW_STORE_ID, units=rows, depth=cols,
                             laned=0, horizontal=int(not vertical), vpmbase=vpm_y << 4, modew=0)


def vdw_setup_at_row(setup: int, vpm_y: int) -> int:
    """A horizontal VDW basic setup word written for VPM row 0 (`vdw_store_setup`), reading from
    row `vpm_y` instead (another bank, or an instance's own rows)."""
    return setup + vdw_store_setup(1, 1, vpm_y) - vdw_store_setup(1, 1, 0)


def vdw_stride_setup(gap_bytes: int) -> int:
    """VDW stride setup: bytes from the end of one stored row to the start of the next."""
    if not 0 <= gap_bytes <= MAX_STORE_GAP_BYTES:
        raise KernelShapeError(f"a DMA store gap of {gap_bytes} bytes between rows exceeds the "
                               f"{MAX_STORE_GAP_BYTES}-byte stride field: the row stride is too large")
    return isa.encode_fields(isa.VDW_STRIDE_FIELDS, id=isa.VDW_STRIDE_ID, blockmode=0, stride=gap_bytes)


def emit_bank_locks_init(asm, thread, locks: Sequence[int]) -> None:
    """QPU code: instance 0 raises each semaphore of `locks` once, making it a free lock (a lock is
    taken with sema_down and given back with sema_up; the others wait in sema_down until then)."""
    with asm.namespace("locks_init"):
        asm.mov(asm.null, thread, set_flags=True)
        asm.jzc(asm.L.done)
        asm.nop()
        asm.nop()
        asm.nop()
        for sem in locks:
            asm.sema_up(sem)
        asm.L.done


def emit_banked_store(asm, bank, write_rows: Callable[[], None], vdw_stride, vdw_setup,
                      out_address, locks: Sequence[int], bank_rows: int = 16) -> None:
    """QPU code: store rows through one of two shared VPM banks of `bank_rows` rows, each guarded
    by a semaphore of `locks` used as a lock: bit 0 of register `bank` picks the bank (even
    instances one, odd ones the other, so one bank is filled while the other's DMA runs).
    `write_rows()` emits the VPM writes; `vdw_stride`, `vdw_setup` (its VPM row in bank 0: the
    host adds `bank_rows` rows for bank 1) and `out_address` are registers or `uniform`."""
    with asm.namespace("banked_store"):
        asm.band(asm.null, bank, 1, set_flags=True)
        asm.jzc(asm.L.bank1)
        asm.nop()
        asm.nop()
        asm.nop()
        for b in range(len(locks)):
            if b == 1:
                asm.L.bank1
            asm.sema_down(locks[b])
            asm.setup_vpm_write(mode="32bit horizontal", Y=bank_rows * b)
            write_rows()
            asm.mov(asm.vpmvcd_wr_setup, vdw_stride)
            asm.mov(asm.vpmvcd_wr_setup, vdw_setup)
            asm.mov(asm.vpm_st_addr, out_address)
            asm.wait_dma_store()
            asm.sema_up(locks[b])
            if b == 0:
                asm.jmp(asm.L.stored)
                asm.nop()
                asm.nop()
                asm.nop()
        asm.L.stored


def emit_tmu_row_loads(asm, targets: Sequence, depth: int) -> None:
    """QPU code: consecutive 16-lane rows into the registers `targets` through TMU0, `depth`
    requests in flight: row i from r1 + i x r2 (r1 holds each lane's address of row 0, r2 the
    row step; r1 ends past the last row requested)."""
    for _ in range(min(depth, len(targets))):
        asm.iadd(asm.r1, asm.r1, asm.r2, set_flags=False).mov(asm.tmu0_s, asm.r1)
    for q, target in enumerate(targets):
        asm.nop(sig="load tmu0")
        asm.mov(target, asm.r4)
        if q + depth < len(targets):
            asm.iadd(asm.r1, asm.r1, asm.r2, set_flags=False).mov(asm.tmu0_s, asm.r1)


#: semaphores of `emit_barrier`: instances arrive on the first, instance 0 releases the second
BARRIER_SEMAPHORES = (3, 4)


def emit_barrier(asm, thread, n_threads, rounds) -> None:
    """QPU code: while register `rounds` is not 0, decrement it and wait until every instance of
    the launch got here (instance 0 collects `n_threads` arrivals, then releases the others).
    Instances that start each work item together stream the same weights side by side, so
    one instance's SDRAM fetch is the others' L2 hit; `rounds` is the number of items every
    instance has (the host's minimum), so no instance waits for one that has finished."""
    arrive, release = BARRIER_SEMAPHORES
    with asm.namespace("barrier"):
        asm.mov(asm.r0, rounds)
        asm.isub(asm.r0, asm.r0, 1, set_flags=True)     # negative: no barrier rounds left
        asm.jns(asm.L.done)
        asm.nop()
        asm.nop()
        asm.nop()
        asm.mov(rounds, asm.r0)
        asm.sema_up(arrive)
        asm.mov(asm.null, thread, set_flags=True)
        asm.jzc(asm.L.wait)
        asm.mov(asm.r0, n_threads)                   # delay slots: instance 0's arrival count
        asm.nop()
        asm.nop()
        _emit_repeat_r0(asm, "collect", lambda: asm.sema_down(arrive))
        asm.isub(asm.r0, n_threads, 1, set_flags=True)   # release the n - 1 others
        asm.jzs(asm.L.done)
        asm.nop()
        asm.nop()
        asm.nop()
        _emit_repeat_r0(asm, "release", lambda: asm.sema_up(release))
        asm.jmp(asm.L.done)
        asm.nop()
        asm.nop()
        asm.nop()
        asm.L.wait
        asm.sema_down(release)
        asm.L.done


def _emit_repeat_r0(asm, name: str, body) -> None:
    """QPU code: run `body()` r0 times (r0 >= 1), counting r0 down to 0."""
    asm.L[name]
    body()
    asm.isub(asm.r0, asm.r0, 1, set_flags=True)
    asm.jzc(asm.L[name])
    asm.nop()
    asm.nop()
    asm.nop()


def emit_join_and_exit(asm, thread, n_threads, locks: Sequence[int] = ()) -> None:
    """QPU code: every instance raises DONE_SEMAPHORE; instance 0 (register `thread` == 0) takes it
    `n_threads` times, so that all stores have finished, takes back the `locks` it raised (every
    semaphore ends at 0, as it started), then raises the host interrupt."""
    with asm.namespace("join"):
        asm.sema_up(DONE_SEMAPHORE)
        asm.mov(asm.null, thread, set_flags=True)
        asm.jzc(asm.L.others)
        asm.nop()
        asm.nop()
        asm.nop()
        asm.mov(asm.r0, n_threads)
        _emit_repeat_r0(asm, "wait", lambda: asm.sema_down(DONE_SEMAPHORE))
        for sem in locks:
            asm.sema_down(sem)
        asm.exit(interrupt=True)
        asm.L.others
        asm.exit(interrupt=False)


def launch_rows(drv, program, rows_per_launch: List[List[List[int]]],
                record_pointer_words: Optional[int] = None) -> List[Launch]:
    """Launches from uniform rows (launches -> instances -> words).

    With record_pointer_words = H, each row's word 0 is overwritten with the bus address of
    its word H: kernels whose rows hold an H-word header and then records read that pointer
    and move the uniform stream (uniforms_address) to each record in turn.
    """
    launches = [Launch(program=program, uniforms=uniforms_array(drv, rows), n_threads=len(rows))
                for rows in rows_per_launch]
    if record_pointer_words is not None:
        for lc in launches:
            lc.uniforms[:, 0] = lc.uniforms.addresses()[:, 0] + 4 * record_pointer_words
    return launches


def nhwc_pitches(w: int, wo: int, c_in: int, c_out: int, in_pixel_stride: Optional[int],
                 in_row_stride: Optional[int], out_pixel_stride: Optional[int],
                 out_row_stride: Optional[int]) -> Tuple[int, int, int, int]:
    """(input pixel, input row, output pixel, output row) strides in bytes of a convolution's
    NHWC float32 input (rows of W pixels of c_in) and output (Wo pixels of c_out): the given
    ones, dense NHWC where None; pixel strides checked (`check_row_span`)."""
    in_pix = 4 * c_in if in_pixel_stride is None else in_pixel_stride
    out_pix = 4 * c_out if out_pixel_stride is None else out_pixel_stride
    check_row_span("input pixels", w, 4 * c_in, in_pix)
    check_row_span("output pixels", wo, 4 * c_out, out_pix)
    return (in_pix, w * in_pix if in_row_stride is None else in_row_stride,
            out_pix, wo * out_pix if out_row_stride is None else out_row_stride)


def check_row_span(name: str, rows: int, row_bytes: int, stride_bytes: int) -> Tuple[int, int]:
    """Validate a strided operand; return (stride, bytes spanned) for overlap checks."""
    if stride_bytes % 4 or stride_bytes < row_bytes:
        raise KernelShapeError(f"{name}: row stride of {stride_bytes} bytes must be a multiple of 4 "
                               f"and at least the row's {row_bytes} bytes")
    return stride_bytes, (rows - 1) * stride_bytes + row_bytes
