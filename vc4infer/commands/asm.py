"""`vc4infer asm module.py:kernel [ARGS]... [-o out.bin] [--hex] [--check]`: assemble a QPU kernel.

Without -o or --hex the listing (disassembly with addresses) is printed. ARGS are passed to the
kernel after `asm`, each read as a Python literal when it is one (16, 2.5, 'text') and as a
string otherwise.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from typing import Callable, Tuple

import click


def _load_kernel(spec: str) -> Callable:
    """`path/to/file.py:name` or `package.module:name` -> the kernel function."""
    if ":" not in spec:
        raise click.BadParameter(f"{spec!r}: write MODULE:KERNEL, e.g. my_kernels.py:add_one",
                                 param_hint="KERNEL")
    module_ref, name = spec.rsplit(":", 1)
    if module_ref.endswith(".py") or os.sep in module_ref:
        path = os.path.abspath(module_ref)
        if not os.path.isfile(path):
            raise click.BadParameter(f"no such file: {module_ref}", param_hint="KERNEL")
        module_name = "_vc4infer_kernel_" + os.path.splitext(os.path.basename(path))[0]
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        sys.path.insert(0, os.path.dirname(path))
        try:
            loader_spec.loader.exec_module(module)
        finally:
            sys.path.pop(0)
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as err:
            raise click.BadParameter(f"cannot import {module_ref}: {err}", param_hint="KERNEL") from err
    kernel = getattr(module, name, None)
    if not callable(kernel):
        raise click.BadParameter(f"{module_ref} has no kernel function {name!r}", param_hint="KERNEL")
    return kernel


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
    try:
        program = assemble_program(function, *_parse_args(args))
    except AssembleError as err:
        raise click.ClickException(str(err)) from err
    errors = 0
    if check:
        try:
            findings = run_checker(program)
        except AssembleError as err:
            raise click.ClickException(err.reason) from err
        for finding in findings:
            click.echo(format_finding(program, finding), err=True)
        errors = sum(1 for f in findings if f.severity == "error")
        click.echo(f"check: {errors} error(s), {len(findings) - errors} warning(s)", err=True)
    if output:
        with open(output, "wb") as f:
            f.write(program.code)
        click.echo(f"{program.name}: {len(program)} instructions, {len(program.code)} bytes -> {output}",
                   err=True)
    if as_hex:
        for word in program.words:
            click.echo(f"0x{word:016X}")
    if not output and not as_hex:
        click.echo(disassemble(program), nl=False)
    if errors:
        sys.exit(1)
