"""`vc4infer disasm FILE`: QPU code -> a listing in the assembler DSL's syntax.

FILE is raw code (little-endian 64-bit words, e.g. from `vc4infer asm -o`) or hex text: one
64-bit word per token (`0x10020827009E7000`), or py-videocore's .qhex pairs of 32-bit halves
(`0x009E7000, 0x10020827,`, low half first). `#` starts a comment in hex text.
"""
from __future__ import annotations

import re
import struct
from typing import List

import click

from vc4infer.errors import InputError

_HEX_TOKEN = re.compile(r"^(0[xX])?([0-9a-fA-F]+)$")


class CodeFormatError(InputError):
    """A file is neither raw QPU code nor hex text of QPU words."""


def parse_hex_text(text: str) -> List[int]:
    """64-bit words from hex text (64-bit tokens, or pairs of 32-bit halves, low half first)."""
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        for token in re.split(r"[\s,;]+", line.split("#", 1)[0].strip()):
            if not token:
                continue
            match = _HEX_TOKEN.match(token)
            if not match:
                raise CodeFormatError(f"line {number}: {token!r} is not a hex number")
            tokens.append(match.group(2))
    if not tokens:
        raise CodeFormatError("no hex words found")
    if all(len(t) <= 8 for t in tokens):
        if len(tokens) % 2:
            raise CodeFormatError(f"{len(tokens)} 32-bit values: an odd count cannot be whole instructions")
        return [int(hi, 16) << 32 | int(lo, 16) for lo, hi in zip(tokens[::2], tokens[1::2])]
    if any(len(t) > 16 for t in tokens):
        raise CodeFormatError("a hex token longer than 16 digits does not fit a 64-bit word")
    return [int(t, 16) for t in tokens]


def read_code(data: bytes, fmt: str = "auto") -> List[int]:
    """Words of a code file given as raw bytes ('bin'), hex text ('hex') or either ('auto':
    text is printable ASCII, anything else is raw code)."""
    if fmt == "auto":
        printable = all(32 <= b < 127 or b in b"\t\r\n" for b in data)
        fmt = "hex" if data and printable else "bin"
    if fmt == "hex":
        return parse_hex_text(data.decode("ascii", errors="replace"))
    if len(data) % 8:
        raise CodeFormatError(f"{len(data)} bytes is not a whole number of 8-byte instructions")
    return [w for (w,) in struct.iter_unpack("<Q", data)]


@click.command()
@click.argument("file", type=click.File("rb"))
@click.option("--format", "fmt", type=click.Choice(["auto", "bin", "hex"]), default="auto",
              show_default=True, help="how FILE holds the code")
@click.option("--no-addresses", is_flag=True, help="leave out the `# offset: word` comments")
def disasm(file, fmt: str, no_addresses: bool) -> None:
    """Disassemble FILE (raw .bin or hex text) into DSL text that reassembles to the same words."""
    from vc4infer.qpu import disassemble

    from vc4infer.cli import fail

    try:
        words = read_code(file.read(), fmt)
    except CodeFormatError as err:
        fail(err, f"{file.name}: {err}")
    click.echo(disassemble(words, addresses=not no_addresses), nl=False)
