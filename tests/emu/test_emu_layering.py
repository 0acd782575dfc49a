"""The emulator sits below the driver and the toolchain (issue 25, item 5): vc4infer.emu imports
only itself, the ISA tables (vc4infer.qpu.isa), the types it shares with the driver
(vc4infer.device), the standard library, numpy and numba."""
import ast
import pathlib
import sys

import vc4infer.emu

ALLOWED_PROJECT = {"vc4infer.qpu.isa", "vc4infer.device"}
ALLOWED_THIRD_PARTY = {"numpy", "numba"}


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            yield from (node.module if node.module != "vc4infer.qpu" else n for n in names)


def test_the_emulator_imports_only_what_lies_below_it():
    package = pathlib.Path(vc4infer.emu.__file__).parent
    wrong = {}
    for path in sorted(package.glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if (name.startswith("vc4infer.emu") or name in ALLOWED_PROJECT
                    or top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names or top == "__future__"):
                continue
            wrong.setdefault(path.name, []).append(name)
    assert not wrong, wrong
