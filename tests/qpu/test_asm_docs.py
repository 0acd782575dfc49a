"""The "Writing a QPU kernel" example of README.md runs as written (assembles with
check=True without findings, disassembles, and adds 5 on the emulator)."""
import os
import re
import warnings

import pytest

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


@pytest.mark.slow      # runs the emulator (numba compilation on first use)
def test_docs_example_runs(capsys):
    with open(DOC, encoding="utf-8") as f:
        section = f.read().split("## Writing a QPU kernel", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # a hazard warning in the example would fail here
        exec(compile(code, DOC, "exec"), {"__name__": "docs_example"})
    assert "iadd(vpm, r0, 5)" in capsys.readouterr().out
