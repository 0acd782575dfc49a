"""The kernel-writing surface: `@qpu`, `assemble`, `assemble_program`, and module-level
instruction names for `from vc4infer.qpu import *`.

Like py-videocore, a `@qpu` function finds the instruction names, registers, `L` and `namespace`
in its module's globals while it runs (they are put there for the call and the previous values
put back afterwards), so py-videocore kernels assemble unchanged.
"""
from __future__ import annotations

import ast
import functools
import inspect
from typing import Callable, Dict, List, Tuple

from .asm import INSTRUCTION_NAMES, Assembler, Label
from .checking import check_or_raise
from .macros import MACRO_NAMES
from .program import Program
from .registers import REGISTERS, ra, rb
from .source import UNKNOWN_LOCATION, AssembleError

#: every instruction and macro name a kernel can call
DSL_FUNCTION_NAMES: List[str] = list(INSTRUCTION_NAMES) + list(MACRO_NAMES)

_active: List[Assembler] = []
_MISSING = object()


def dsl_namespace(asm: Assembler) -> Dict[str, object]:
    """Names a kernel sees: registers, ra/rb, instructions and macros bound to `asm`, L, namespace."""
    names: Dict[str, object] = dict(REGISTERS)
    names["ra"], names["rb"] = ra, rb
    for name in DSL_FUNCTION_NAMES:
        names[name] = getattr(asm, name)
    names["L"] = asm.L
    names["namespace"] = asm.namespace
    return names


def qpu(function: Callable) -> Callable:
    """Decorator for a kernel `def kernel(asm, ...)`: the DSL names are available in its body."""
    if "asm" not in inspect.signature(function).parameters:
        raise AssembleError(f"QPU kernel {function.__name__} needs a parameter named 'asm'")

    @functools.wraps(function)
    def kernel(asm, *args, **kwargs):
        names = dsl_namespace(asm)
        module_globals = function.__globals__
        saved = {name: module_globals.get(name, _MISSING) for name in names}
        module_globals.update(names)
        _active.append(asm)
        try:
            return function(asm, *args, **kwargs)
        finally:
            _active.pop()
            for name, value in saved.items():
                if value is _MISSING:
                    module_globals.pop(name, None)
                else:
                    module_globals[name] = value

    kernel.is_qpu_kernel = True
    return kernel


#: py-videocore's older name of the decorator
qpucode = qpu


def assemble_program(kernel: Callable, *args, check: bool = False, **kwargs) -> Program:
    """Run `kernel(asm, *args, **kwargs)` and return the Program (words, code, source locations,
    labels). With check=True the hazard checker runs: errors raise KernelCheckError, warnings
    are issued as QpuCheckWarning. py-videocore's `sanity_check=True` means check=True."""
    check = bool(kwargs.pop("sanity_check", False)) or check
    if not getattr(kernel, "is_qpu_kernel", False):
        kernel = qpu(kernel)
    asm = Assembler()
    kernel(asm, *args, **kwargs)
    program = asm.program(name=getattr(kernel, "__name__", "kernel"))
    if check:
        check_or_raise(program)
    return program


def assemble(kernel: Callable, *args, **kwargs) -> bytes:
    """Assemble a kernel to its code: little-endian 64-bit words (py-videocore's `assemble`)."""
    return assemble_program(kernel, *args, **kwargs).code


def get_label_positions(kernel: Callable, *args, **kwargs) -> List[Tuple[Label, int]]:
    """py-videocore's label export: (label, byte offset) for every label the kernel defines;
    `label.name` is the namespaced name. `assemble_program(...).labels` gives the same as a dict."""
    program = assemble_program(kernel, *args, **kwargs)
    return [(Label(name, offset, UNKNOWN_LOCATION), offset) for name, offset in program.labels.items()]


def assemble_text(text: str, name: str = "listing") -> Program:
    """Assemble DSL text (e.g. a disassembler listing) as the body of a kernel."""
    body = "\n".join("    " + line for line in text.splitlines()) or "    pass"
    source = f"def {name}(asm):\n{body}\n    return None\n"
    scope: Dict[str, object] = {}
    tree = ast.parse(source)
    ast.increment_lineno(tree, -1)           # line numbers of errors count lines of `text`
    exec(compile(tree, f"<{name}>", "exec"), scope)
    return assemble_program(qpu(scope[name]))


def _active_assembler(name: str) -> Assembler:
    if not _active:
        raise AssembleError(f"{name}() was called outside a QPU kernel being assembled; call it inside "
                            "a @qpu function passed to assemble()")
    return _active[-1]


def _forwarder(name: str) -> Callable:
    def instruction(*args, **kwargs):
        return getattr(_active_assembler(name), name)(*args, **kwargs)
    instruction.__name__ = name
    instruction.__doc__ = getattr(Assembler, name).__doc__
    return instruction


class _ActiveLabels:
    """`L` for kernels that import the DSL names instead of relying on @qpu's injection."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(_active_assembler("L").L, name)

    def __getitem__(self, name: str):
        return _active_assembler("L").L[name]


L = _ActiveLabels()


def namespace(name: str):
    """Label namespace of the kernel being assembled (`with namespace('inner'): ...`)."""
    return _active_assembler("namespace").namespace(name)


FORWARDERS: Dict[str, Callable] = {name: _forwarder(name) for name in DSL_FUNCTION_NAMES}

