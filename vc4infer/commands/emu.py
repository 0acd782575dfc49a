"""`vc4infer emu`: run a QPU program file on the emulator.

    vc4infer emu kernel.bin --alloc 4096 --load input.bin --uniforms buf1,buf0,16 --qpus 4 --trace

The program file holds little-endian 64-bit instruction words (what `vc4infer asm` writes). Buffers
are numbered in the order of --load / --alloc options (buf0, buf1, ...); a uniform is a number
(decimal, 0x hex, or a float like 1.5f for its float32 bits) or bufN / bufN+OFFSET for a buffer's
bus address. One --uniforms list serves every QPU, or give one per QPU. Times are modelled.
"""
from __future__ import annotations

import struct
from typing import List

import click
import numpy as np


def _uniform(token: str, buffers: List) -> int:
    token = token.strip()
    try:
        if token.startswith("buf"):
            name, _, offset = token.partition("+")
            index = int(name[3:])
            if not 0 <= index < len(buffers):
                raise click.BadParameter(f"{token}: there are {len(buffers)} buffers (buf0..)",
                                         param_hint="--uniforms")
            return buffers[index].bus_address + (int(offset, 0) if offset else 0)
        if token.endswith("f"):
            return struct.unpack("<I", struct.pack("<f", float(token[:-1])))[0]
        return int(token, 0) & 0xFFFFFFFF
    except ValueError:
        raise click.BadParameter(f"{token!r} is not a uniform: give a number (42, 0x10), a float "
                                 "(1.5f) or a buffer (buf0, buf1+64)", param_hint="--uniforms") from None


def _qpu_list(text: str, qpus: int) -> List[int]:
    """The QPU numbers of --trace-qpus (each one of the launched 0..qpus-1)."""
    try:
        numbers = [int(t, 0) for t in text.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give QPU numbers separated by commas, e.g. 0,3",
                                 param_hint="--trace-qpus") from None
    for q in numbers:
        if not 0 <= q < qpus:
            raise click.BadParameter(f"QPU {q} is not launched: --qpus {qpus} runs QPUs 0..{qpus - 1}",
                                     param_hint="--trace-qpus")
    return numbers


def _buffers(backend, loads, allocs, code: bytes, name: str) -> tuple:
    """(the --load / --alloc buffers in order, the program's block) allocated on `backend`."""
    buffers = []
    for f in loads:
        data = f.read()
        alloc = backend.alloc(max(len(data), 1), 4096, f"load:{f.name}")
        alloc.buffer[:len(data)] = np.frombuffer(data, dtype=np.uint8)
        buffers.append(alloc)
    for i, n in enumerate(allocs):
        alloc = backend.alloc(n, 4096, f"alloc{i}")
        alloc.buffer[:] = 0
        buffers.append(alloc)
    code_alloc = backend.alloc(len(code), 4096, f"program:{name}")
    code_alloc.buffer[:] = np.frombuffer(code, dtype=np.uint8)
    return buffers, code_alloc


@click.command()
@click.argument("program", type=click.File("rb"))
@click.option("--uniforms", "uniform_lists", multiple=True,
              help="Comma-separated uniforms (numbers, 1.5f, bufN[+off]); once for all QPUs or once per QPU.")
@click.option("--qpus", type=click.IntRange(1, 12), default=1, show_default=True, help="Program instances.")
@click.option("--load", "loads", multiple=True, type=click.File("rb"),
              help="A buffer initialised from a file.")
@click.option("--alloc", "allocs", multiple=True, type=click.IntRange(1), help="A zeroed buffer of N bytes.")
@click.option("--dump", "dumps", multiple=True, type=int, help="Print buffer N (32-bit words) after the run.")
@click.option("--trace", is_flag=True, help="Print every instruction of the traced QPUs.")
@click.option("--trace-qpus", default="0", show_default=True, help="Comma-separated QPUs --trace follows.")
@click.option("--strict", is_flag=True, help="Raise on behaviour the hardware leaves undefined.")
@click.option("--clock", "clock_mhz", type=click.Choice(["250", "300", "400"]), default="250",
              show_default=True, help="V3D clock (MHz) of the modelled times.")
@click.option("--max-instructions", type=click.IntRange(1), default=None, help="Instruction budget.")
def emu(program, uniform_lists, qpus, loads, allocs, dumps, trace, trace_qpus, strict, clock_mhz,
        max_instructions) -> None:
    """Run PROGRAM (a file of QPU instruction words) on the VideoCore IV emulator."""
    from hostside.driver import DriverError
    from hostside.driver.emu import EmuBackend
    from vc4infer.cli import fail

    traced = _qpu_list(trace_qpus, qpus) if trace else []
    n_buffers = len(loads) + len(allocs)
    for index in dumps:
        if not 0 <= index < n_buffers:
            raise click.BadParameter(f"--dump {index}: there are {n_buffers} buffers (--load and "
                                     "--alloc, numbered from 0)", param_hint="--dump")
    backend = EmuBackend(clock_hz=int(clock_mhz) * 1e6, strict=strict, trace=traced,
                         max_instructions=max_instructions,
                         trace_callback=lambda record: click.echo(record.format()))
    code = program.read()
    if not code or len(code) % 8:
        raise click.BadParameter(f"{program.name}: {len(code)} bytes is not a whole number of "
                                 "64-bit instructions", param_hint="PROGRAM")
    try:
        buffers, code_alloc = _buffers(backend, loads, allocs, code, program.name)
    except DriverError as exc:                   # more memory asked for than the emulator has
        fail(exc)
    lists = list(uniform_lists) or [""]
    if len(lists) not in (1, qpus):
        raise click.BadParameter(f"{len(lists)} --uniforms lists for {qpus} QPUs: give one, or one per QPU")
    control = []
    for q in range(qpus):
        text = lists[0] if len(lists) == 1 else lists[q]
        values = [_uniform(t, buffers) for t in text.split(",") if t.strip()] or [0]
        u = backend.alloc(4 * len(values), 4096, f"uniforms{q}")
        u.buffer[:] = np.array(values, dtype=np.uint32).view(np.uint8)
        control.append((u.bus_address, code_alloc.bus_address))
    try:
        stats = backend.execute(control, timeout_s=3600.0)
    except DriverError as exc:                   # the program faulted, hung or did the undefined
        fail(exc, f"{program.name}: {type(exc).__name__}: {exc}")
    click.echo(f"{qpus} QPU(s) ended; modelled time {stats.modelled_seconds * 1e6:.3f} us at "
               f"{clock_mhz} MHz")
    for q in range(qpus):
        click.echo(f"  QPU {q}: {stats.instructions[q]} instructions, {stats.cycles[q]} cycles (modelled), "
                   f"{stats.extra['host_interrupts'][q]} host interrupt(s)")
    stalls = ", ".join(f"{k} {v}" for k, v in stats.stalls.items() if v)
    click.echo(f"  stalls (cycles, all QPUs): {stalls or 'none'}")
    click.echo(f"  bytes: DMA load {stats.dma_load_bytes}, DMA store {stats.dma_store_bytes}, "
               f"TMU {stats.tmu_bytes}")
    for index in dumps:
        data = np.array(buffers[index].buffer)
        usable = len(data) // 4 * 4
        click.echo(f"buf{index} @ 0x{buffers[index].bus_address:08X}:")
        for row in range(0, usable // 4, 8):
            chunk = data[:usable].view("<u4")[row:row + 8]
            click.echo(f"  +0x{row * 4:05X}: " + " ".join(f"{w:08X}" for w in chunk))
