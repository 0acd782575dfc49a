"""`vc4infer asm` and `vc4infer disasm` through the click application."""
import textwrap

import pytest
from click.testing import CliRunner

from vc4infer.cli import main
from vc4infer.commands.disasm import CodeFormatError, parse_hex_text, read_code

from spec_words import APPENDIX_A2_WORDS

KERNEL = textwrap.dedent("""\
    from vc4infer.qpu import qpu

    @qpu
    def add_n(asm, n=1):
        setup_dma_load(nrows=1)
        start_dma_load(uniform)
        wait_dma_load()
        setup_vpm_read(nrows=1)
        setup_vpm_write()
        mov(r0, vpm)
        iadd(vpm, r0, n)
        setup_dma_store(nrows=1)
        start_dma_store(uniform)
        wait_dma_store()
        exit()

    @qpu
    def hazard(asm):
        mov(ra0, uniform)
        mov(r1, ra0)
        exit()
    """)


@pytest.fixture
def kernel_file(tmp_path):
    path = tmp_path / "kernels.py"
    path.write_text(KERNEL)
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_asm_prints_listing_by_default(kernel_file):
    result = run("asm", f"{kernel_file}:add_n")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 14 and lines[5].startswith("mov(r0, vpm)  # 0028: 1002082715c27d80")


def test_asm_writes_binary_and_hex(kernel_file, tmp_path):
    out = tmp_path / "k.bin"
    result = run("asm", f"{kernel_file}:add_n", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"".join(w.to_bytes(8, "little") for w in APPENDIX_A2_WORDS)
    result = run("asm", f"{kernel_file}:add_n", "--hex")
    assert result.output.split() == [f"0x{w:016X}" for w in APPENDIX_A2_WORDS]


def test_asm_passes_kernel_arguments(kernel_file):
    result = run("asm", f"{kernel_file}:add_n", "3", "--hex")
    assert result.output.split()[6] == "0xD0022C270C9C31C0"        # small immediate 3


def test_asm_error_names_source_line(kernel_file):
    result = run("asm", f"{kernel_file}:add_n", "99")
    assert result.exit_code == 3
    assert f"{kernel_file}:11 (in add_n): 99 is not a small immediate" in result.output


def test_asm_check_prints_findings_and_fails_on_errors(kernel_file):
    result = run("asm", f"{kernel_file}:hazard", "--check", "--hex")
    assert result.exit_code == 1
    assert f"{kernel_file}:20: error:" in result.output
    clean = run("asm", f"{kernel_file}:add_n", "--check", "--hex")
    assert clean.exit_code == 0 and "check: 0 error(s)" in clean.output


def test_asm_bad_kernel_reference(kernel_file):
    assert run("asm", "no_colon").exit_code == 2
    result = run("asm", f"{kernel_file}:missing")
    assert result.exit_code == 2 and "no kernel function 'missing'" in result.output


def test_disasm_binary_and_hex_files(tmp_path):
    code = b"".join(w.to_bytes(8, "little") for w in APPENDIX_A2_WORDS)
    (tmp_path / "k.bin").write_bytes(code)
    (tmp_path / "k.hex").write_text("\n".join(f"0x{w:016X}  # comment" for w in APPENDIX_A2_WORDS))
    (tmp_path / "k.qhex").write_text("\n".join(f"0x{w & 0xFFFFFFFF:08X}, 0x{w >> 32:08X},"
                                               for w in APPENDIX_A2_WORDS))
    outputs = [run("disasm", tmp_path / name, "--no-addresses") for name in ("k.bin", "k.hex", "k.qhex")]
    for result in outputs:
        assert result.exit_code == 0, result.output
    assert outputs[0].output == outputs[1].output == outputs[2].output
    assert outputs[0].output.splitlines()[-3] == "mov(r0, r0, sig='thread end').mov(r0, r0)"


def test_disasm_rejects_malformed_input(tmp_path):
    (tmp_path / "bad.hex").write_text("0x1234 zz")
    result = run("disasm", tmp_path / "bad.hex")
    assert result.exit_code == 3 and "'zz' is not a hex number" in result.output
    (tmp_path / "odd.bin").write_bytes(b"\x00\x81" * 5)
    assert "not a whole number of 8-byte instructions" in run("disasm", tmp_path / "odd.bin").output


def test_hex_parsing_rules():
    assert parse_hex_text("10020827009E7000\n0x0000000000000001") == [0x10020827009E7000, 1]
    assert parse_hex_text("0x009E7000, 0x10020827,") == [0x10020827009E7000]
    with pytest.raises(CodeFormatError, match="odd count"):
        parse_hex_text("0x1 0x2 0x3")
    assert read_code(b"0x1 0x0", "auto") == [1]
    assert read_code(bytes(8), "auto") == [0]
