"""The hazard checker on kernels written in the DSL: findings point at the kernel's source lines,
and `assemble_program(..., check=True)` runs the checker."""
# Kernel bodies use the names @qpu puts in scope (py-videocore style), and `L.name` places a label.
# ruff: noqa: F821, B018
import inspect
import warnings

import pytest

from vc4infer.qpu import KernelCheckError, QpuCheckWarning, assemble_program, qpu
from vc4infer.qpu.check import check_program


def line_of(kernel, marker):
    """Line number of the source line of `kernel` that carries the comment `# <marker>`."""
    lines, start = inspect.getsourcelines(kernel)
    hits = [start + i for i, text in enumerate(lines) if text.rstrip().endswith(f"# {marker}")]
    assert len(hits) == 1, marker
    return hits[0]


def found(kernel):
    return [(f.rule, f.severity, f.source.line) for f in check_program(assemble_program(kernel))]


# py-videocore's test boilerplate (spec Appendix A.2): it reads the VPM in the 2nd instruction
# after the read setup, earlier than the guide's 3.
@qpu
def boilerplate(asm):
    setup_dma_load(nrows=1)
    start_dma_load(uniform)
    wait_dma_load()
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    mov(r0, vpm)  # early read
    iadd(vpm, r0, 1)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


@qpu
def boilerplate_spaced(asm):
    setup_dma_load(nrows=1)
    start_dma_load(uniform)
    wait_dma_load()
    setup_vpm_read(nrows=1)
    setup_vpm_write()
    nop()
    mov(r0, vpm)
    iadd(vpm, r0, 1)
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


@qpu
def tmu_loop(asm):
    mov(ra0, uniform)
    ldi(r1, 64)
    mov(ra1, uniform)
    mov(tmu0_s, ra0)
    iadd(ra0, ra0, r1)
    nop()
    L.loop
    mov(tmu0_s, ra0)
    nop(sig='load tmu0')
    mov(sfu_recip, r4)
    iadd(ra0, ra0, r1)
    isub(ra1, ra1, 1)
    mov(r2, r4)
    jzc(L.loop)
    nop()
    nop()
    nop()
    nop(sig='load tmu0')
    exit()


@qpu
def hazards(asm):
    mov(ra1, uniform)
    iadd(r0, ra1, 1)  # H1
    mov(sfu_exp2, r0)
    fadd(r1, r4, r0)  # H2
    mov(uniforms_address, r0)
    nop()
    mov(r2, uniform)  # H6
    nop(sig='load tmu1')  # H27
    exit()


def test_boilerplate_warns_once_at_the_vpm_read_line():
    assert found(boilerplate) == [("H23", "warning", line_of(boilerplate, "early read"))]


def test_clean_kernels_have_no_findings():
    assert found(boilerplate_spaced) == []
    assert found(tmu_loop) == []


def test_findings_point_at_kernel_lines():
    assert found(hazards) == [("H1", "error", line_of(hazards, "H1")),
                              ("H2", "error", line_of(hazards, "H2")),
                              ("H6", "error", line_of(hazards, "H6")),
                              ("H27", "error", line_of(hazards, "H27"))]
    text = [str(f) for f in check_program(assemble_program(hazards))]
    assert text[0].startswith(f"{__file__}:{line_of(hazards, 'H1')}: error: [H1] reads ra1")


def test_assemble_with_check_raises_on_errors_and_warns_on_warnings():
    with pytest.raises(KernelCheckError) as info:
        assemble_program(hazards, check=True)
    assert [f.rule for f in info.value.findings] == ["H1", "H2", "H6", "H27"]
    with pytest.warns(QpuCheckWarning, match=r"\[H23\]"):
        assemble_program(boilerplate, check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assemble_program(tmu_loop, check=True)


def test_a_hazard_warning_fails_any_test_of_the_suite():
    """setup.cfg turns QpuCheckWarning into an error for every test: a kernel test whose kernel
    reads the VPM too soon (boilerplate's H23) fails instead of passing with a warning."""
    with pytest.raises(QpuCheckWarning, match=r"\[H23\]"):
        assemble_program(boilerplate, check=True)
