"""py-videocore's program file formats and its remaining assembler functions, same names, same
output, so that its scripts and tests run with only the import line changed:

- `print_qbin`: one line per instruction, its 8 bytes in binary, most significant byte first;
- `print_qhex`: one line per instruction, "0xLOWWORD, 0xHIGHWORD," (the words as little-endian
  memory holds them; `vc4infer disasm` reads it back);
- `save_bin`: the code bytes; `save_asm` / `restore_asm`: code and labels, pickled (restore only
  files you wrote: unpickling runs code);
- `sanity_check`: the hazard checker's findings for a kernel.

Each takes a kernel function (assembled with the given arguments) or assembled code (bytes or
anything exposing the buffer protocol).
"""
from __future__ import annotations

import pickle
import sys
from typing import Any, Callable, List, TextIO, Union

from .check import check_program
from .dsl import assemble, assemble_program

Code = Union[bytes, bytearray, memoryview, Callable]


def _code(program: Code, args: tuple, kwargs: dict) -> bytes:
    if callable(program):
        program = assemble(program, *args, **kwargs)
    code = memoryview(program).tobytes()
    if len(code) % 8:
        raise ValueError(f"{len(code)} bytes of code: QPU instructions are 8 bytes each")
    return code


def print_qbin(program: Code, file: TextIO = sys.stdout, *args, **kwargs) -> None:
    """Print the program as .qbin: per instruction its bytes in binary, high byte first."""
    code = _code(program, args, kwargs)
    for i in range(0, len(code), 8):
        print(" ".join(f"{byte:08b}" for byte in reversed(code[i:i + 8])), file=file)


def print_qhex(program: Code, file: TextIO = sys.stdout, *args, **kwargs) -> None:
    """Print the program as .qhex: per instruction its low and high 32-bit words in hex."""
    code = _code(program, args, kwargs)
    for i in range(0, len(code), 8):
        low = int.from_bytes(code[i:i + 4], "little")
        high = int.from_bytes(code[i + 4:i + 8], "little")
        print(f"0x{low:08X}, 0x{high:08X},", file=file)


def save_bin(program: Code, file: str, *args, **kwargs) -> None:
    """Write the program's code bytes to `file`."""
    code = _code(program, args, kwargs)
    with open(file, "wb") as f:
        f.write(code)


def save_asm(program: Callable, file: str, *args, **kwargs) -> None:
    """Write the kernel's code and labels to `file` (pickled, as py-videocore does)."""
    assembled = assemble_program(program, *args, **kwargs)
    with open(file, "wb") as f:
        pickle.dump(assembled.code, f)
        pickle.dump(dict(assembled.labels), f)


def restore_asm(file: str, *args, **kwargs) -> tuple:
    """(code, labels) from a file `save_asm` wrote. Unpickles: read only your own files."""
    with open(file, "rb") as f:
        return pickle.load(f), pickle.load(f)


def sanity_check(program: Callable, *args, **kwargs) -> List[Any]:
    """The hazard checker's findings (vc4infer.qpu.check.Finding) for the kernel; empty when it
    has none (py-videocore's sanity check reports the same kinds of hazard)."""
    return check_program(assemble_program(program, *args, **kwargs))
