"""`vc4infer emu` and `vc4infer bench --emulator` from the command line."""
from click.testing import CliRunner

from vc4infer.cli import main
from vc4infer.qpu import assemble, qpu


@qpu
def fill_row(asm):
    mov(ra0, uniform)
    ldi(r0, 0x1234)
    setup_vpm_write()
    iadd(vpm, r0, element_number)
    setup_dma_store(nrows=1)
    start_dma_store(ra0)
    wait_dma_store()
    exit()


def test_emu_command_runs_dumps_and_traces(tmp_path):
    kernel = tmp_path / "fill.bin"
    kernel.write_bytes(assemble(fill_row))
    result = CliRunner().invoke(main, ["emu", str(kernel), "--alloc", "64", "--uniforms", "buf0",
                                       "--dump", "0", "--trace", "--clock", "400"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "1 QPU(s) ended; modelled time" in out and "at 400 MHz" in out
    dumped = [line for line in out.splitlines() if line.startswith("  +0x")]
    values = [int(w, 16) for line in dumped for w in line.split(":")[1].split()]
    assert values == [0x1234 + i for i in range(16)]
    assert "qpu0" in out and "iadd(vpm, r0, element_number)" in out


def test_emu_command_reports_a_fault(tmp_path):
    kernel = tmp_path / "fill.bin"
    kernel.write_bytes(assemble(fill_row))
    result = CliRunner().invoke(main, ["emu", str(kernel), "--uniforms", "0x100"])
    assert result.exit_code == 6                       # a QPU program failed
    assert "MemoryFaultError" in result.output and "DMA store" in result.output


def test_emu_command_rejects_a_partial_word(tmp_path):
    kernel = tmp_path / "bad.bin"
    kernel.write_bytes(b"\0" * 12)
    result = CliRunner().invoke(main, ["emu", str(kernel)])
    assert result.exit_code != 0 and "whole number of 64-bit instructions" in result.output


def test_bench_needs_a_choice_and_runs_quick():
    assert "--emulator" in CliRunner().invoke(main, ["bench"]).output
    result = CliRunner().invoke(main, ["bench", "--emulator", "--quick"])
    assert result.exit_code == 0, result.output
    assert "emulated instructions/s" in result.output and "sgemm" in result.output
    assert "dma vector add" in result.output and "modelled Pi time" in result.output
    errors = [float(line.rsplit(" ", 1)[1]) for line in result.output.splitlines() if "max |error|" in line]
    assert len(errors) == 2 and max(errors) < 1e-3


def test_emu_command_names_a_bad_uniform_and_too_much_memory(tmp_path):
    kernel = tmp_path / "fill.bin"
    kernel.write_bytes(assemble(fill_row))
    result = CliRunner().invoke(main, ["emu", str(kernel), "--alloc", "64", "--uniforms", "bufx"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'bufx' is not a uniform: give a number" in result.output
    result = CliRunner().invoke(main, ["emu", str(kernel), "--alloc", "100000000000"])
    assert result.exit_code == 6 and "Traceback" not in result.output
    assert "cannot allocate 100000000000 bytes (alloc0)" in result.output
