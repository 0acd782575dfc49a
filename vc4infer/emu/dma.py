"""VCD (DMA load: memory -> VPM) and VDW (DMA store: VPM -> memory), spec §10.

Each transfer checks every memory row against the live buffers before it moves a byte; a row that
is not inside one buffer stops the launch with a MemoryFaultError naming that row. The data moves
when the transfer starts (the QPU cannot observe it earlier than its wait anyway); its completion
time comes from the timing model (`transfer_end`).

Modelled readings of the guide (spec §10): load pitch is start-to-start (8 << MPITCH, or MPITCHB
when MPITCH = 0); store STRIDE is end-to-start and 16 bits wide (vc4asm); VPITCH advances the VPM
row (carrying into Y[5:4], HW-verified `vertical_32bit_load`); a vertical store takes successive
memory rows from successive VPM columns. 8- and 16-bit DMA modes place elements at their byte or
half-word offset inside each 32-bit VPM word (vertical) or consecutively from word X (horizontal);
these narrow modes are not hardware-verified by any source.
"""
import numpy as np

from vc4infer.emu.jit import jit
from vc4infer.emu.memory import buffer_index, in_buffer, stray_read
from vc4infer.emu.timing import TP_DRAM_BPC, TP_VCD_BPC, TP_VCD_STARTUP, TP_VDW_BPC, TP_VDW_STARTUP
from vc4infer.emu.state import GT_DRAM_FREE, GT_VCD_FREE, GT_VDW_FREE

_ROWS = 64


@jit
def _nz(value, zero_means):
    """A count field where 0 encodes the maximum."""
    return value if value != 0 else zero_means


@jit
def _width(modew):
    """Element width in bytes and sub-word select of a MODEW field."""
    if modew >= 4:
        return 1, modew & 3
    if modew >= 2:
        return 2, modew & 1
    return 4, 0


@jit
def vcd_load(mem, membase, bounds, vpm8, setup, pitchb, addr, fault, strict):
    """Run a DMA load with basic setup `setup` to bus address `addr`. Returns bytes moved, or -1
    with fault[0] = row, fault[1] = row address, fault[2] = row bytes. When not `strict`, a row
    a Pi would read from the Driver's memory (memory.stray_read) is loaded, and the first such
    row + 1 left in fault[3] (0: none), with fault[0..2] describing it."""
    w, sel = _width((setup >> 28) & 7)
    mpitch = (setup >> 24) & 15
    rowlen = _nz((setup >> 20) & 15, 16)
    nrows = _nz((setup >> 16) & 15, 16)
    vpitch = _nz((setup >> 12) & 15, 16)
    vertical = (setup >> 11) & 1
    y = (setup >> 4) & 63
    x = setup & 15
    pitch = (8 << mpitch) if mpitch != 0 else pitchb
    rowbytes = rowlen * w
    fault[3] = 0
    for r in range(nrows):
        a = addr + r * pitch
        if not in_buffer(bounds, a, rowbytes):
            if not strict and stray_read(bounds, a, rowbytes, membase + mem.shape[0]):
                if fault[3] == 0:                # the first stray row, described as a fault
                    fault[0] = r
                    fault[1] = a
                    fault[2] = rowbytes
                    fault[3] = r + 1
                continue
            fault[0] = r
            fault[1] = a
            fault[2] = rowbytes
            return -1
    if w == 4 and (addr - membase) % 4 == 0 and pitch % 4 == 0:
        mem32 = mem.view(np.uint32)              # whole words: the common case, copied as words
        vpm32 = vpm8.view(np.uint32)
        for r in range(nrows):
            src = (addr + r * pitch - membase) >> 2
            for j in range(rowlen):
                if vertical:
                    word = ((y + r * vpitch + j) % _ROWS) * 16 + x
                else:
                    word = (((y + r * vpitch) % _ROWS) * 16 + x + j) % (_ROWS * 16)
                vpm32[word] = mem32[src + j]
        return nrows * rowbytes
    for r in range(nrows):
        src = addr + r * pitch - membase
        for j in range(rowlen):
            if vertical:
                row = (y + r * vpitch + j) % _ROWS
                dst = (row * 16 + x) * 4 + sel * w
            else:
                row = (y + r * vpitch) % _ROWS
                dst = ((row * 16 + x) * 4 + sel * w + j * w) % (_ROWS * 64)
            for k in range(w):
                vpm8[dst + k] = mem[src + j * w + k]
    return nrows * rowbytes


@jit
def vdw_store(mem, membase, bounds, vpm8, setup, stride_setup, addr, fault):
    """Run a DMA store with basic setup `setup` and stride setup `stride_setup` to bus address
    `addr`. Returns bytes moved, or -1 (fault filled as for vcd_load)."""
    units = _nz((setup >> 23) & 127, 128)
    depth = _nz((setup >> 16) & 127, 128)
    horizontal = (setup >> 14) & 1
    y = (setup >> 7) & 127
    x = (setup >> 3) & 15
    w, sel = _width(setup & 7)
    stride = stride_setup & 0xFFFF
    blockmode = (stride_setup >> 16) & 1
    rowbytes = depth * w
    # every row inside the buffer of the first: a strided store whose later rows land in another
    # live buffer would overwrite it (on a board: another allocation's data)
    first = buffer_index(bounds, addr)
    for r in range(units):
        a = addr + r * (rowbytes + stride)
        if first < 0 or rowbytes <= 0 or a < bounds[first, 0] or a + rowbytes > bounds[first, 1]:
            fault[0] = r
            fault[1] = a
            fault[2] = rowbytes
            return -1
    if w == 4 and (addr - membase) % 4 == 0 and stride % 4 == 0:
        mem32 = mem.view(np.uint32)
        vpm32 = vpm8.view(np.uint32)
        for r in range(units):
            dst = (addr + r * (rowbytes + stride) - membase) >> 2
            for j in range(depth):
                if horizontal:
                    if blockmode:
                        word = (y * 16 + x + r * depth + j) % (_ROWS * 16)
                    else:
                        word = (((y + r) % _ROWS) * 16 + x + j) % (_ROWS * 16)
                else:
                    col = x + r
                    word = ((y + j + 16 * (col >> 4)) % _ROWS) * 16 + (col & 15)
                mem32[dst + j] = vpm32[word]
        return units * rowbytes
    for r in range(units):
        dst = addr + r * (rowbytes + stride) - membase
        for j in range(depth):
            if horizontal:
                if blockmode:
                    src = ((y * 16 + x) * 4 + (r * depth + j) * w + sel * w) % (_ROWS * 64)
                else:
                    src = (((y + r) % _ROWS * 16 + x) * 4 + j * w + sel * w) % (_ROWS * 64)
            else:
                col = x + r
                row = (y + j + 16 * (col >> 4)) % _ROWS
                src = (row * 16 + (col & 15)) * 4 + sel * w
            for k in range(w):
                mem[dst + j * w + k] = vpm8[src + k]
    return units * rowbytes


@jit
def transfer_end(gt, tp, is_store, now, nbytes):
    """Modelled completion cycle of a DMA of `nbytes` requested at cycle `now`: the engine serves
    one transfer at a time (start-up + bytes / engine rate), and the bytes also occupy the shared
    SDRAM. Returns (start cycle, end cycle)."""
    engine = GT_VDW_FREE if is_store else GT_VCD_FREE
    startup = tp[TP_VDW_STARTUP] if is_store else tp[TP_VCD_STARTUP]
    rate = tp[TP_VDW_BPC] if is_store else tp[TP_VCD_BPC]
    start = max(float(now), gt[engine])
    data_start = max(start + startup, gt[GT_DRAM_FREE])
    dram_rate = tp[TP_DRAM_BPC]
    end = data_start + nbytes / min(rate, dram_rate)
    gt[GT_DRAM_FREE] = data_start + nbytes / dram_rate
    gt[engine] = end
    return start, end
