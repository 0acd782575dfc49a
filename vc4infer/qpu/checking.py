"""Runs the hazard checker (`vc4infer.qpu.check`) on an assembled Program and reports its findings
against the kernel's source lines."""
from __future__ import annotations

import warnings
from typing import List, Sequence

from .check import HazardError, check_program
from .program import Program
from .source import AssembleError, SourceLocation


class QpuCheckWarning(UserWarning):
    """A hazard-checker warning about an assembled kernel."""


class KernelCheckError(HazardError):
    """The hazard checker found errors in an assembled kernel: HazardError with the kernel's name
    and source lines in the message; `.findings` lists everything it found."""

    def __init__(self, program: Program, findings: Sequence):
        self.findings = list(findings)
        errors = [f for f in self.findings if f.severity == "error"]
        lines = "\n".join(format_finding(program, f) for f in errors)
        AssembleError.__init__(self, f"kernel {program.name} has {len(errors)} hazard error(s):\n{lines}",
                               finding_location(program, errors[0]))


def finding_location(program: Program, finding) -> SourceLocation:
    """The kernel source line of a finding (its own location if it carries one)."""
    for name in ("source", "location"):
        location = getattr(finding, name, None)
        if isinstance(location, SourceLocation) and location.line:
            return location
    if 0 <= finding.index < len(program.locations):
        return program.locations[finding.index]
    return SourceLocation("<unknown>", 0, "<unknown>")


def format_finding(program: Program, finding) -> str:
    """`file:line: severity: [rule] instruction N (0xOFFSET): message`."""
    loc = finding_location(program, finding)
    return (f"{loc.file}:{loc.line}: {finding.severity}: [{finding.rule}] instruction {finding.index} "
            f"(0x{finding.index * 8:04x}): {finding.message}")


def run_checker(program: Program) -> List:
    """The checker's findings for `program`."""
    return list(check_program(program))


def check_or_raise(program: Program) -> List:
    """Run the checker: raise KernelCheckError on errors, issue QpuCheckWarning for warnings."""
    findings = run_checker(program)
    if any(f.severity == "error" for f in findings):
        raise KernelCheckError(program, findings)
    for finding in findings:
        warnings.warn(format_finding(program, finding), QpuCheckWarning, stacklevel=3)
    return findings
