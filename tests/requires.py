"""What a test needs from its host. Optional test references (onnx, onnxruntime, the TFLite
interpreter, numba): a test skips only when the package is not installed at all; an installed
package that fails to import fails the test, where pytest.importorskip would hide the broken
install as a skip. And whether this host is a Raspberry Pi that the hw backend can use."""
import functools
import importlib
import importlib.util

import pytest

#: module -> what installs it
PIP = {
    "onnx": "pip install onnx",
    "onnxruntime": "pip install onnxruntime",
    "ai_edge_litert": "pip install ai-edge-litert",
    "numba": "pip install numba",
}


def require(module: str):
    """Import and return `module`; skip the test (with the pip command) when it is not installed."""
    top = module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        pytest.skip(f"{top} is not installed ({PIP.get(top, 'pip install -e .[dev]')})")
    return importlib.import_module(module)


@functools.lru_cache(maxsize=None)
def host_facts():
    """(this host is a Raspberry Pi, why the hw backend cannot run here or None)."""
    from hostside.driver.board import detect_board, hw_blocker

    info = detect_board("/")
    blocker = hw_blocker(info)
    return info.is_raspberry_pi, None if blocker is None else str(blocker)
