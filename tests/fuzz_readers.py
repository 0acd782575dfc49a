"""Mutation fuzzing of every reader vc4infer has: TFLite, ONNX, TF GraphDef, torch.save (legacy
and zip) and images. `make fuzz` runs it with 10,000 mutants per format:

    python tests/fuzz_readers.py [--mutants 10000] [--formats tflite,onnx,...] [--seed 0]

Each mutant is a small valid file built here with 1-3 byte flips, a truncation or a 4-byte
overwrite. A reader may load it or refuse it with a vc4infer error; any other exception is a
crash, a case running past --seconds a hang, and the process runs under an address-space limit
(--memory-mb) so that a reader allocating a declared-but-absent tensor fails as a crash instead of
swapping. Prints per format: mutants tried, loaded, clean errors, crashes, hangs; exits 1 on any
crash or hang, showing the first traceback of each kind.
"""
from __future__ import annotations

import argparse
import collections
import io
import os
import resource
import signal
import sys
import tempfile
import traceback
import warnings
from typing import Callable, Dict, List, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "graph"), HERE]

from mutate import mutate  # noqa: E402 - found through the path above


class _Hang(Exception):
    pass


def _base_files(workdir: str) -> Dict[str, List[Tuple[str, bytes, Callable]]]:
    """format -> [(name, valid file bytes, reader of a path)]."""
    import vc4infer
    from vc4infer.graph.preprocess import load_rgb
    from vc4infer.graph.tf_import import import_tf_graphdef
    from vc4infer.graph.tflite_import import import_tflite
    from vc4infer.graph.torch_pickle import load_state_dict
    import test_tf_import as tf
    import test_tflite_malformed as tfl
    import test_torch_import as th
    from PIL import Image
    from test_onnx_helpers import load_build_onnx

    files: Dict[str, List[Tuple[str, bytes, Callable]]] = collections.defaultdict(list)
    w, x, y = tfl._small_model()
    files["tflite"].append(("conv.tflite", w.to_bytes([x], [y]), import_tflite))
    files["tflite"].append(("quant_relu.tflite", tfl._quantized_relu(), import_tflite))
    files["onnx"].append(("mobilenet_v1.onnx",
                          load_build_onnx().mobilenet_v1(0.25, 32, seed=1).SerializeToString(),
                          lambda p: vc4infer.load(p, backend="neon")))
    graph = b"".join([tf.placeholder("x", (1, 6, 6, 2)), tf.const("w", np.ones((3, 3, 2, 1))),
                      tf.node("y", "DepthwiseConv2dNative", ["x", "w"], strides=[1, 2, 2, 1],
                              padding=b"SAME"), tf.node("r", "Relu6", ["y"]),
                      tf.node("p", "AvgPool", ["r"], ksize=[1, 2, 2, 1], strides=[1, 1, 1, 1],
                              padding=b"VALID")])
    files["tf"].append(("graph.pb", graph, import_tf_graphdef))
    with th.fake_torch() as torch:
        tensors, storages, _ = th._sample_state(torch)
        for save in (th.save_legacy, th.save_zip):
            path = os.path.join(workdir, f"{save.__name__}.pth")
            save(path, tensors, storages)
            with open(path, "rb") as f:
                files["torch"].append((os.path.basename(path), f.read(), load_state_dict))
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        image.save(buf, fmt)
        files["image"].append((f"image.{fmt.lower()}", buf.getvalue(), load_rgb))
    return files


def fuzz(formats, mutants: int, seed: int, seconds: float, workdir: str) -> Dict[str, collections.Counter]:
    """Run the mutants; returns format -> Counter of outcomes (and prints first tracebacks)."""
    from vc4infer.errors import Vc4InferError

    def alarm(signum, frame):
        raise _Hang()

    signal.signal(signal.SIGALRM, alarm)
    bases = _base_files(workdir)
    rng = np.random.default_rng(seed)
    results: Dict[str, collections.Counter] = {}
    for fmt in formats:
        counts = collections.Counter()
        shown = set()
        for i in range(mutants):
            name, data, read = bases[fmt][i % len(bases[fmt])]
            path = os.path.join(workdir, "mutant-" + name)
            with open(path, "wb") as f:
                f.write(mutate(data, rng))
            counts["tried"] += 1
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    read(path)
                counts["loaded"] += 1
            except Vc4InferError:
                counts["clean errors"] += 1
            except _Hang:
                counts["hangs"] += 1
            except Exception as err:  # noqa: BLE001 - the point: any other exception is a crash
                counts["crashes"] += 1
                if type(err).__name__ not in shown:
                    shown.add(type(err).__name__)
                    print(f"{fmt} crash on a mutant of {name}:", file=sys.stderr)
                    traceback.print_exc(limit=-4)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        results[fmt] = counts
    return results


FORMATS = ("tflite", "onnx", "tf", "torch", "image")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mutants", type=int, default=10_000, help="per format")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=10.0, help="per case: longer is a hang")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space limit")
    args = parser.parse_args(argv)
    limit = args.memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with tempfile.TemporaryDirectory(prefix="vc4fuzz") as workdir:
        results = fuzz(args.formats.split(","), args.mutants, args.seed, args.seconds, workdir)
    print(f"{'format':<8} {'mutants':>8} {'loaded':>8} {'clean errors':>13} {'crashes':>8} "
          f"{'hangs':>6}   (per case <= {args.seconds:g} s, memory <= {args.memory_mb} MB)")
    bad = 0
    for fmt, c in results.items():
        print(f"{fmt:<8} {c['tried']:>8} {c['loaded']:>8} {c['clean errors']:>13} "
              f"{c['crashes']:>8} {c['hangs']:>6}")
        bad += c["crashes"] + c["hangs"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
