"""`vc4infer selftest` and the vc4infer.selftest registry: the suite passes on the emulator, says
which backend auto chose, and fails (exit 1) when a kernel computes something wrong."""
import importlib
import pkgutil
import re

import numpy as np
import pytest
from click.testing import CliRunner

import qpu_kernels
from qpu_kernels import conv_depthwise, conv_pointwise, sgemm
from qpu_kernels.launch import KernelShapeError
from vc4infer import selftest as suite
from vc4infer.commands.selftest import selftest
from vc4infer.selftest.compare import compare
from vc4infer.selftest.registry import Case, Outcome, SelftestError, register, select

ROW = re.compile(r"^(\S+)\s+(.+?)\s+(\S+)\s+(\S+)\s+(PASS|FAIL|ERROR)\s+")


def invoke(*args):
    return CliRunner().invoke(selftest, list(args))


def rows(output):
    """(group, shape, verdict) of every table row."""
    return [(m.group(1), m.group(2), m.group(5)) for m in map(ROW.match, output.splitlines()) if m]


def test_quick_suite_passes_on_the_emulator():
    result = invoke("--backend", "emu", "--quick")
    assert result.exit_code == 0, result.output
    table = rows(result.output)
    groups = {g for g, _, _ in table}
    assert {"program", "sgemm", "conv_pointwise", "conv_depthwise", "pooling"} <= groups
    assert all(v == "PASS" for _, _, v in table)
    assert len(table) == len(suite.cases(quick=True))
    assert "modelled" in result.output.splitlines()[1]          # the column exists on emu
    assert re.search(rf"{len(table)} passed, 0 failed .*modelled QPU time", result.output)


@pytest.mark.not_on_pi
def test_auto_without_a_pi_runs_the_emulator_and_says_so():
    result = invoke("--backend", "auto", "-k", "program")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("backend: emu (auto: hw not usable")
    assert "modelled" in first
    assert [g for g, _, _ in rows(result.output)] == ["program"] * 4


@pytest.mark.not_on_pi
def test_hw_backend_without_a_pi_is_a_clear_error():
    result = invoke("--backend", "hw", "-k", "add-one")
    assert result.exit_code == 5                    # this machine cannot run the backend
    assert result.output.startswith("Error: cannot open the hw backend") and \
        result.output.count("\n") == 1


def test_a_wrong_kernel_fails_the_run(monkeypatch):
    """One packed weight off by 1.0: the sgemm cases that read it must FAIL, exit status 1."""
    original = sgemm.pack_weights

    def corrupted(b, bias, m):
        packed = original(b, bias, m)
        packed[0] += 1.0
        return packed
    monkeypatch.setattr(sgemm, "pack_weights", corrupted)
    result = invoke("--backend", "emu", "-k", "sgemm[17x5x33")
    assert result.exit_code == 1, result.output
    assert rows(result.output) == [("sgemm", "17x5x33 relu6", "FAIL")]
    assert "FAILED sgemm[17x5x33 relu6]: worst at" in result.output
    assert "0 passed, 1 failed" in result.output


def test_a_kernel_that_raises_is_an_error_row(monkeypatch):
    def refuse(*args, **kwargs):
        raise KernelShapeError("refused for the test")
    monkeypatch.setattr(conv_depthwise, "build", refuse)
    result = invoke("--backend", "emu", "-k", "conv_depthwise[3x3x1")
    assert result.exit_code == 1
    assert rows(result.output)[0][2] == "ERROR"
    assert "KernelShapeError: refused for the test" in result.output


def test_a_write_outside_the_output_fails(monkeypatch):
    """An output address one row early: the kernel writes into the guard frame."""
    original = conv_pointwise.build

    def shifted(drv, pixels, cin, cout, in_address, weights_address, out_address, *args, **kw):
        stride = kw["out_pixel_stride"]
        return original(drv, pixels, cin, cout, in_address, weights_address,
                        out_address - stride, *args, **kw)
    monkeypatch.setattr(conv_pointwise, "build", shifted)
    result = invoke("--backend", "emu", "-k", "conv_pointwise[2x3x17")
    assert result.exit_code == 1
    assert "wrote outside its output" in result.output


def test_patterns_quick_and_list():
    names = invoke("--list").output.splitlines()
    assert names == [c.name for c in suite.cases()]
    quick = invoke("--list", "--quick").output.splitlines()
    assert set(quick) < set(names)
    assert invoke("--list", "-k", "BARRIER").output.splitlines() == [
        "program[semaphore barrier, 12 QPUs]"]
    both = invoke("--list", "-k", "sgemm[1x2x1*", "-k", "tmu").output.splitlines()
    assert both == ["program[TMU lookups, 2x16 words]", "sgemm[1x2x1 linear]"]
    missing = invoke("-k", "no-such-case")
    assert missing.exit_code == 2 and "no selftest case matches" in missing.output


def test_sweeps_cover_the_edges():
    """Every kernel sweep has a size that is not a multiple of 16, one channel and 1000."""
    shapes = {}
    for c in suite.cases():
        shapes.setdefault(c.group, []).append(c.shape)
    assert any("s2" in s for s in shapes["conv_depthwise"])
    for group, pattern_1, pattern_1000 in [
            ("sgemm", r"x1 ", r"x1000"), ("conv_pointwise", r"->1 ", r"->1000"),
            ("conv_depthwise", r"x1 s", r"x1000 ")]:
        assert any(re.search(pattern_1, s) for s in shapes[group]), group
        assert any(re.search(pattern_1000, s) for s in shapes[group]), group
        dims = [int(d) for s in shapes[group] for d in re.findall(r"\d+", s.split()[0])]
        assert any(d % 16 and d > 16 for d in dims), group


def test_duplicate_case_names_are_refused():
    c = suite.cases()[0]
    with pytest.raises(SelftestError, match="declared twice"):
        register(Case(c.group, c.shape, c.check))


def test_select_quick_flag():
    a = Case("g", "a", lambda ctx: Outcome(0, 0, True), quick=True)
    b = Case("g", "b", lambda ctx: Outcome(0, 0, True))
    assert select([a, b], quick=True) == [a]
    assert select([a, b], patterns=["G[B"]) == [b]


@pytest.mark.parametrize("got, want, bound, passed, err", [
    ([1.0, 2.0], [1.0, 2.5], 0.5, True, 0.5),
    ([1.0, 2.0], [1.0, 2.5], 0.4, False, 0.5),
    ([np.inf, 1.0], [np.inf, 1.0], 0.0, True, 0.0),         # 1/0 = +inf matched exactly
    ([3.0, 1.0], [np.inf, 1.0], 1e9, False, np.inf),        # a finite value where inf is due
    ([np.nan, 1.0], [2.0, 1.0], 1e9, False, np.inf),        # NaN never passes
])
def test_compare(got, want, bound, passed, err):
    outcome = compare(np.array(got), np.array(want), bound)
    assert outcome.passed is passed
    assert outcome.max_abs_error == err


def test_compare_reports_the_element_nearest_its_bound():
    """Per-element bounds: the big absolute error within a big bound is not the worst element."""
    outcome = compare(np.array([100.5, 1.3]), np.array([100.0, 1.0]), np.array([1.0, 0.2]))
    assert not outcome.passed
    assert (outcome.max_abs_error, outcome.tolerance) == (pytest.approx(0.3), 0.2)
    assert "worst at (1,)" in outcome.detail


def test_full_suite_passes_on_the_emulator():
    result = invoke("--backend", "emu")
    assert result.exit_code == 0, result.output
    assert len(rows(result.output)) == len(suite.cases())


def test_every_kernel_module_has_a_sweep():
    """A kernel module (one with a build... function) without selftest cases would go untested
    on the users' boards: declare its sweep in vc4infer/selftest/kernels.py."""
    kernels = {m.name for m in pkgutil.iter_modules(qpu_kernels.__path__)
               if any(name.startswith("build") and callable(value) for name, value in
                      vars(importlib.import_module(f"qpu_kernels.{m.name}")).items())}
    assert {"sgemm", "conv_pointwise", "conv_depthwise", "pooling"} <= kernels
    assert kernels <= {c.group for c in suite.cases()}


@pytest.mark.hw
def test_quick_suite_passes_on_this_pi():
    result = invoke("--backend", "hw", "--quick")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("backend: hw")


def test_registered_under_the_cli(monkeypatch):
    """The entry vc4infer/cli.py needs in COMMANDS resolves to this command."""
    from vc4infer import cli
    monkeypatch.setitem(cli.COMMANDS, "selftest", "vc4infer.commands.selftest:selftest")
    result = CliRunner().invoke(cli.main, ["selftest", "--list", "-k", "add-one", "--clock", "400"])
    assert result.exit_code == 0 and result.output == "program[add-one A.2, 1x16 int32]\n"


def test_the_selftest_program_is_the_spec_program():
    from spec_words import APPENDIX_A2_WORDS
    from vc4infer.selftest import programs
    assert list(programs.APPENDIX_A2_WORDS) == APPENDIX_A2_WORDS


def test_a_wrong_program_fails(monkeypatch):
    """The A.2 program with small immediate 2 instead of 1 (raddr_b, bits 17:12, of word 6; spec
    section 4.2: small immediates 0..15 encode themselves) adds 2: the case must fail."""
    from vc4infer.selftest import programs
    words = list(programs.APPENDIX_A2_WORDS)
    assert (words[6] >> 12) & 0x3F == 1
    words[6] += 1 << 12
    monkeypatch.setattr(programs, "APPENDIX_A2_WORDS", tuple(words))
    result = invoke("--backend", "emu", "-k", "add-one")
    assert result.exit_code == 1
    assert rows(result.output) == [("program", "add-one A.2, 1x16 int32", "FAIL")]


def test_table_on_hardware_shows_the_measured_qpu_time():
    from vc4infer.commands.selftest import _Table
    from vc4infer.selftest.registry import Result
    c = Case("sgemm", "17x5x33 relu6", lambda ctx: Outcome(0, 0, True))
    table = _Table([c], modelled=False)
    assert table.header().split()[-2:] == ["QPU", "time"]
    row = table.row(Result(c, Outcome(1.5e-6, 1e-5, True), 0.25, None, launch_seconds=0.0031))
    assert row.split()[3:] == ["1.5e-06", "1e-05", "PASS", "250.0", "ms", "3.1", "ms"]
