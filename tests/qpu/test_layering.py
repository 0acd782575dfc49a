"""vc4infer.qpu reads one way (issue 24, item 6): every module imports only modules below it
(tables, encoding, program, assembler, macros, DSL; disassembler, checker and file formats beside
them), at module level, so that no import runs in a circle."""
import ast
import pathlib

import vc4infer.qpu

PACKAGE = pathlib.Path(vc4infer.qpu.__file__).parent


def _imports():
    """module -> [(imported sibling, at module level?)] for the package's relative imports."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                found += [(name.split(".")[0], id(node) in top) for name in names]
        graph[path.stem] = found
    return graph


def test_no_import_inside_a_function():
    late = {m: [n for n, top in deps if not top] for m, deps in _imports().items()}
    assert not {m: d for m, d in late.items() if d}, late


def test_the_modules_import_in_one_direction():
    graph = {m: {n for n, _ in deps if n != m} for m, deps in _imports().items()}
    order, done, active = [], set(), set()

    def visit(m, path):
        assert m not in active, f"import cycle: {' -> '.join(path + [m])}"
        if m in done:
            return
        active.add(m)
        for n in sorted(graph.get(m, ())):
            visit(n, path + [m])
        active.discard(m)
        done.add(m)
        order.append(m)

    for m in sorted(graph):
        visit(m, [])
    position = {m: i for i, m in enumerate(order)}
    # the layers of the issue, bottom up
    for low, high in [("isa", "encode"), ("encode", "asm"), ("program", "asm"), ("asm", "macros"),
                      ("macros", "dsl"), ("dsl", "disasm"), ("check", "checking")]:
        assert position[low] < position[high], order
