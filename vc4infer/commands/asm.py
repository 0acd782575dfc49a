"""`vc4infer asm module.py:kernel [ARGS]... [-o out.bin] [--hex] [--check]`: assemble a QPU kernel.

Without -o or --hex the listing (disassembly with addresses) is printed. ARGS are passed to the
kernel after `asm`, each read as a Python literal when it is one (16, 2.5, 'text') and as a
string otherwise.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from typing import Callable, Tuple

import click

from vc4infer.cli import fail
from vc4infer.errors import InputError


def _load_kernel(spec: str) -> Callable:
    """`path/to/file.py:name` or `package.module:name` -> the kernel function."""
    if ":" not in spec:
        raise click.BadParameter(f"{spec!r}: write MODULE:KERNEL, e.g. my_kernels.py:add_one",
                                 param_hint="KERNEL")
    module_ref, name = spec.rsplit(":", 1)
    dotted = _package_module(module_ref)
    if dotted is not None:                       # a file inside a package: import it as part
        root, module_name = dotted               # of it, so that its relative imports work
        module = _run_file(module_ref, root, lambda: importlib.import_module(module_name))
    elif module_ref.endswith(".py") or os.sep in module_ref:
        path = os.path.abspath(module_ref)
        if not os.path.isfile(path):
            raise click.BadParameter(f"no such file: {module_ref}", param_hint="KERNEL")
        module_name = "_vc4infer_kernel_" + os.path.splitext(os.path.basename(path))[0]
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        _run_file(module_ref, os.path.dirname(path), lambda: loader_spec.loader.exec_module(module))
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as err:
            raise click.BadParameter(f"cannot import {module_ref}: {err}", param_hint="KERNEL") from err
    kernel = getattr(module, name, None)
    if not callable(kernel):
        raise click.BadParameter(f"{module_ref} has no kernel function {name!r}", param_hint="KERNEL")
    try:
        takes_asm = "asm" in inspect.signature(kernel).parameters
    except (TypeError, ValueError):
        takes_asm = False
    if not takes_asm:
        raise click.BadParameter(f"{module_ref}:{name} is not a QPU kernel: a @qpu function takes "
                                 "`asm` first", param_hint="KERNEL")
    return kernel


def _run_file(module_ref: str, root: str, load: Callable):
    """`load()` (importing the kernel file `module_ref`) with `root` on the import path; the
    file's own error becomes one line naming where in it, then its fix."""
    sys.path.insert(0, root)
    try:
        return load()
    except Exception as err:
        fail(InputError(f"{module_ref} does not load: {_where(err, os.path.abspath(module_ref))}"))
    finally:
        sys.path.pop(0)


def _package_module(module_ref: str):
    """(directory to import from, dotted module name) of a .py file that lies in a package (its
    folder has an __init__.py), else None."""
    path = os.path.abspath(module_ref)
    if not module_ref.endswith(".py") or not os.path.isfile(path):
        return None
    folder, parts = os.path.dirname(path), [os.path.splitext(os.path.basename(path))[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        parts.insert(0, os.path.basename(folder))
        folder = os.path.dirname(folder)
    return (folder, ".".join(parts)) if len(parts) > 1 else None


def _where(err: BaseException, path: str) -> str:
    """`err` as one line, with the line of `path` it came from (a SyntaxError names its own)."""
    if isinstance(err, SyntaxError):
        return f"SyntaxError at line {err.lineno}: {err.msg}"
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == path]
    where = f" at line {frames[-1].lineno}" if frames else ""
    return f"{type(err).__name__}{where}: {err}"


def _parameters(function: Callable) -> str:
    """The kernel's parameters after `asm`, as ", a, b=2" (empty when it takes none)."""
    names = [str(p) for name, p in inspect.signature(function).parameters.items() if name != "asm"]
    return "".join(", " + n for n in names)


def _parse_args(args: Tuple[str, ...]) -> list:
    out = []
    for arg in args:
        try:
            out.append(ast.literal_eval(arg))
        except (ValueError, SyntaxError):
            out.append(arg)
    return out


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("kernel")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="write the code here (raw little-endian 64-bit words)")
@click.option("--hex", "as_hex", is_flag=True, help="print the words in hex, one per line")
@click.option("--check", is_flag=True, help="run the hazard checker; exit 1 if it finds errors")
def asm(kernel: str, args: Tuple[str, ...], output: str, as_hex: bool, check: bool) -> None:
    """Assemble KERNEL (MODULE.py:FUNCTION or package.module:FUNCTION), a @qpu function."""
    from vc4infer.qpu import AssembleError, assemble_program, disassemble
    from vc4infer.qpu.checking import format_finding, run_checker

    function = _load_kernel(kernel)
    values = _parse_args(args)
    try:
        inspect.signature(function).bind(None, *values)
    except TypeError as err:
        raise click.BadParameter(f"{kernel} takes (asm{_parameters(function)}): {err}",
                                 param_hint="ARGS") from None
    try:
        program = assemble_program(function, *values)
    except AssembleError as err:
        fail(err)
    except Exception as err:                     # the kernel's own code failed
        source = inspect.getsourcefile(inspect.unwrap(function)) or ''
        fail(InputError(f"kernel {kernel} raised {_where(err, source)}"))
    errors = 0
    if check:
        try:
            findings = run_checker(program)
        except AssembleError as err:
            fail(err, err.reason)
        for finding in findings:
            click.echo(format_finding(program, finding), err=True)
        errors = sum(1 for f in findings if f.severity == "error")
        click.echo(f"check: {errors} error(s), {len(findings) - errors} warning(s)", err=True)
    if output:
        try:
            with open(output, "wb") as f:
                f.write(program.code)
        except OSError as err:
            fail(InputError(f"cannot write {output}: {err.strerror}; give -o a path in an existing, "
                            "writable directory"))
        click.echo(f"{program.name}: {len(program)} instructions, {len(program.code)} bytes -> {output}",
                   err=True)
    if as_hex:
        for word in program.words:
            click.echo(f"0x{word:016X}")
    if not output and not as_hex:
        click.echo(disassemble(program), nl=False)
    if errors:
        sys.exit(1)
