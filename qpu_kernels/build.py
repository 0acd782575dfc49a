"""`python -m qpu_kernels.build OUT_DIR` (`make kernels`): assemble every variant of the project's
QPU kernels with the hazard checker (its warnings count as errors here) and write each as
OUT_DIR/<variant>.bin (little-endian 64-bit words, what Driver.program and `vc4infer emu` take)
and OUT_DIR/<variant>.txt (the listing, which reassembles to the same words)."""
from __future__ import annotations

import argparse
import os
import warnings
from typing import Callable, Iterator, List, Optional, Tuple

from vc4infer.qpu import QpuCheckWarning, assemble_program, disassemble

from . import bench_dma, bench_sgemm, bench_sgemm64, conv_depthwise, gemv, sgemm


def _act_name(act: Optional[str]) -> str:
    return act or "linear"


def variants() -> Iterator[Tuple[str, Callable, tuple]]:
    """(file stem, kernel, arguments) of every variant the scheduler and the benchmarks launch."""
    for nt in sgemm.PANEL_WIDTHS:
        for act in sgemm.ACTIVATIONS:
            for residual in (False, True):
                for depth in range(2, sgemm.MAX_TMU_DEPTH + 1):
                    stem = f"sgemm_nt{nt}_{_act_name(act)}{'_residual' if residual else ''}_depth{depth}"
                    yield stem, sgemm.sgemm_kernel, (nt, act, residual, depth)
                    yield stem + "_ordered", sgemm.sgemm_kernel, (nt, act, residual, depth,
                                                                  False, True)
    for nt in sgemm.PANEL_WIDTHS:
        for act in sgemm.ACTIVATIONS:
            stem = f"sgemm_gather_nt{nt}_{_act_name(act)}_depth{sgemm.MAX_TMU_DEPTH}"
            yield stem, sgemm.sgemm_kernel, (nt, act, False, sgemm.MAX_TMU_DEPTH, True)
    for act in conv_depthwise.ACTIVATIONS:
        for pixels in range(1, conv_depthwise.MAX_PIXELS + 1):
            yield (f"conv_depthwise_{_act_name(act)}_px{pixels}", conv_depthwise.depthwise_kernel,
                   (act, pixels))
    for act in gemv.ACTIVATIONS:
        yield f"gemv_{_act_name(act)}", gemv.gemv_kernel, (act,)
    yield "bench_sgemm", bench_sgemm.sgemm_kernel, ()
    yield "bench_sgemm64", bench_sgemm64.sgemm64_kernel, ()
    yield "bench_dma_vector_add", bench_dma.vector_add_kernel, ()


def write_all(out_dir: str) -> List[Tuple[str, int]]:
    """Assemble and write every variant; returns (stem, instructions) per variant. Raises
    KernelCheckError or QpuCheckWarning on any hazard finding."""
    os.makedirs(out_dir, exist_ok=True)
    built = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", QpuCheckWarning)
        for stem, kernel, args in variants():
            program = assemble_program(kernel, *args, check=True)
            with open(os.path.join(out_dir, stem + ".bin"), "wb") as f:
                f.write(program.code)
            with open(os.path.join(out_dir, stem + ".txt"), "w") as f:
                f.write(disassemble(program) + "\n")
            built.append((stem, len(program)))
    return built


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="folder for the .bin and .txt files")
    args = parser.parse_args(argv)
    built = write_all(args.out_dir)
    for stem, n in built:
        print(f"{stem:48} {n:6d} instructions")
    print(f"{len(built)} kernels in {args.out_dir}")


if __name__ == "__main__":
    main()
