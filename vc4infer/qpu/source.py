"""Where in a kernel's Python source an instruction or an error comes from, and the assembler's error.

A kernel is ordinary Python calling the DSL; the place that matters to its author is the first
stack frame outside this package (the kernel line, or the line that called a macro).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Dict, Optional

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True)
class SourceLocation:
    """A line of a kernel's source: file name, line number and enclosing function."""
    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} (in {self.function})"


UNKNOWN_LOCATION = SourceLocation("<unknown>", 0, "<unknown>")


_inside_package: Dict[str, bool] = {}


def _is_toolchain_file(filename: str) -> bool:
    inside = _inside_package.get(filename)
    if inside is None:
        inside = _inside_package[filename] = os.path.abspath(filename).startswith(_PACKAGE_DIR)
    return inside


def caller_location() -> SourceLocation:
    """The innermost stack frame that is not part of the QPU toolchain package."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_toolchain_file(filename):
            return SourceLocation(filename, frame.f_lineno, frame.f_code.co_name)
        frame = frame.f_back
    return UNKNOWN_LOCATION


class AssembleError(ValueError):
    """A kernel asks for something the QPU cannot encode. The message starts with the kernel's
    source file and line; `.location` and `.reason` hold them separately."""

    def __init__(self, reason: str, location: Optional[SourceLocation] = None):
        self.reason = reason
        self.location = location if location is not None else caller_location()
        super().__init__(f"{self.location}: {reason}")
