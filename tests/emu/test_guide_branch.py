"""Branches: every condition of guide Table 11 against all / some / no elements with the flag set,
the link value (branch address + 32), relative, register, register + immediate and absolute
targets, and the 3 delay slots.

Expected values: guide p.34-35 (conditions, target and link rules), HW-verified by py-videocore's
tests/test_branch.py; the flag patterns are produced by isub/iadd with results worked out by hand.
"""
# ruff: noqa: F821, B018 - py-videocore style: a @qpu function finds the DSL names in its
# globals while it runs; `L.name` statements define labels
import numpy as np

from guide_support import run_store
from vc4infer.qpu import qpu

OK, NG = 1, -1
JUMPS = ["jzs", "jzc", "jzs_any", "jzc_any", "jns", "jnc", "jns_any", "jnc_any",
         "jcs", "jcc", "jcs_any", "jcc_any"]


def expected_taken(z, n, c):
    """Which jumps are taken for per-element flags z, n, c (lists of 16 bools)."""
    out = {}
    for name, flags in (("z", z), ("n", n), ("c", c)):
        out[f"j{name}s"] = all(flags)
        out[f"j{name}c"] = not any(flags)
        out[f"j{name}s_any"] = any(flags)
        out[f"j{name}c_any"] = not all(flags)
    return out


@qpu
def check_jump(asm, jump, taken, label):
    """Writes OK to the VPM when the jump went where `taken` says, NG otherwise."""
    mov(ra0, [NG, OK][taken], set_flags=False)
    getattr(asm, jump)(L[label])
    nop()
    nop()
    nop()
    mov(ra0, [OK, NG][taken], set_flags=False)
    nop()
    L[label]
    mov(vpm, ra0)


@qpu
def jump_table(asm, cases):
    """cases: list of (setup, [(jump, taken)]). setup is one of the flag patterns below."""
    ldi(r0, [1] * 16)
    ldi(r1, [0] * 16)
    ldi(r2, [1, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1])
    ldi(r3, [1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1])
    check_jump(asm, "jmp", True, "always")
    index = 0
    for setup, checks in cases:
        if setup == "r0-r1":
            isub(null, r0, r1, set_flags=True)
        elif setup == "r0-r0":
            isub(null, r0, r0, set_flags=True)
        elif setup == "r1-r0":
            isub(null, r1, r0, set_flags=True)
        elif setup == "r0-r2":
            isub(null, r0, r2, set_flags=True)
        elif setup == "r2-r3":
            isub(null, r2, r3, set_flags=True)
        elif setup == "-1+1":
            ldi(ra1, 0xFFFFFFFF)
            nop()
            iadd(null, ra1, 1, set_flags=True)
        elif setup == "-1+r2":
            ldi(ra1, 0xFFFFFFFF)
            nop()
            iadd(null, ra1, r2, set_flags=True)
        for jump, taken in checks:
            check_jump(asm, jump, taken, f"l{index}")
            index += 1


R0 = [1] * 16
R1 = [0] * 16
R2 = [1, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1]
R3 = [1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1]


def flags_of_sub(a, b):
    d = [(x - y) & 0xFFFFFFFF for x, y in zip(a, b)]
    return [v == 0 for v in d], [v >> 31 == 1 for v in d], [x < y for x, y in zip(a, b)]


def flags_of_add(a, b):
    s = [x + y for x, y in zip(a, b)]
    return [v & 0xFFFFFFFF == 0 for v in s], [(v >> 31) & 1 == 1 for v in s], [v > 0xFFFFFFFF for v in s]


PATTERNS = {
    "r0-r1": flags_of_sub(R0, R1),           # no Z, no N, no C
    "r0-r0": flags_of_sub(R0, R0),           # all Z
    "r1-r0": flags_of_sub(R1, R0),           # all N, all C
    "r0-r2": flags_of_sub(R0, R2),           # some Z
    "r2-r3": flags_of_sub(R2, R3),           # some Z, some N, some C
    "-1+1": flags_of_add([0xFFFFFFFF] * 16, [1] * 16),     # all Z, all C
    "-1+r2": flags_of_add([0xFFFFFFFF] * 16, R2),          # some of each
}


def test_every_branch_condition_on_all_some_none_patterns(drv):
    cases = []
    for setup, (z, n, c) in PATTERNS.items():
        taken = expected_taken(z, n, c)
        cases.append((setup, [(j, taken[j]) for j in JUMPS]))
    # the patterns cover all / some / none for every flag
    for flag in range(3):
        kinds = {("all" if all(p[flag]) else "none" if not any(p[flag]) else "some")
                 for p in PATTERNS.values()}
        assert kinds == {"all", "some", "none"}
    n_checks = 1 + sum(len(c) for _, c in cases)
    y = run_store_many(drv, cases)      # one 16-element row per check
    assert y.shape[0] == n_checks
    assert np.all(y.view(np.int32) == OK), np.argwhere(y.view(np.int32) != OK)[:5]


def run_store_many(drv, cases):
    """Split the cases so that each program writes at most 48 VPM rows."""
    results = []
    chunk, size = [], 1
    for case in cases:
        if size + len(case[1]) > 48:
            results.append(run_store(drv, jump_table, size, chunk))
            chunk, size = [], 1
        chunk.append(case)
        size += len(case[1])
    results.append(run_store(drv, jump_table, size, chunk))
    # drop the extra "jmp" row of every program but the first
    return np.concatenate([results[0]] + [r[1:] for r in results[1:]])


# ----------------------------------------------------------------------- link and targets

@qpu
def link_register(asm):
    setup_vpm_write()          # 0x00
    jmp(L.target, link=r1)     # 0x08: link = 0x08 + 32 = 0x28
    nop()                      # 0x10
    nop()                      # 0x18
    nop()                      # 0x20
    L.target
    mov(vpm, r1)               # 0x28
    setup_dma_store(nrows=1)
    start_dma_store(uniform)
    wait_dma_store()
    exit()


def test_link_value_is_branch_address_plus_32(drv):
    out = drv.alloc((1, 16), "uint32")
    program = drv.program(link_register)
    drv.execute(n_threads=1, program=program, uniforms=[out.address])
    assert np.all(np.array(out) == program.address + 0x28)


@qpu
def relative_immediate(asm):
    mov(r1, 0)
    jmp(2 * 8)                 # skips two instructions after the delay slots
    nop()
    nop()
    nop()
    iadd(r1, r1, 1)
    iadd(r1, r1, 1)
    iadd(r1, r1, 1)            # target
    iadd(r1, r1, 1)
    mov(vpm, r1)


@qpu
def register_target(asm):
    ldi(ra0, 2 * 8)
    mov(r1, 0)
    jmp(reg=ra0)
    nop()
    nop()
    nop()
    iadd(r1, r1, 1)
    iadd(r1, r1, 1)
    iadd(r1, r1, 1)            # target: relative base + ra0
    iadd(r1, r1, 1)
    mov(vpm, r1)


@qpu
def register_plus_label(asm):
    ldi(ra0, 3 * 8)
    mov(r1, 0)
    jmp(L.base, reg=ra0)
    nop()
    nop()
    nop()
    L.base
    iadd(r1, r1, 1)
    iadd(r1, r1, 1)
    iadd(r1, r1, 1)
    iadd(r1, r1, 1)            # target: label + ra0
    iadd(r1, r1, 1)
    mov(vpm, r1)


def test_relative_register_and_register_plus_immediate_targets(drv):
    assert np.all(run_store(drv, relative_immediate, 1) == 2)
    assert np.all(run_store(drv, register_target, 1) == 2)
    assert np.all(run_store(drv, register_plus_label, 1) == 2)


@qpu
def absolute_call_and_return(asm):
    setup_vpm_write()
    jmp(L.subroutine, link=ra0)
    nop()
    nop()
    nop()
    setup_dma_store(nrows=1)   # the return lands here
    start_dma_store(uniform)
    wait_dma_store()
    exit()
    L.subroutine
    ldi(vpm, OK)
    jmp(reg=ra0, absolute=True)
    nop()
    nop()
    nop()


def test_absolute_register_jump_returns_through_link(drv):
    out = drv.alloc((1, 16), "int32")
    drv.execute(n_threads=1, program=drv.program(absolute_call_and_return), uniforms=[out.address])
    assert np.all(np.array(out) == OK)


@qpu
def delay_slots(asm):
    mov(r1, 0)
    jmp(L.after)
    iadd(r1, r1, 1)            # delay slot 1: runs
    iadd(r1, r1, 2)            # delay slot 2: runs
    iadd(r1, r1, 4)            # delay slot 3: runs
    iadd(r1, r1, 8)            # skipped
    L.after
    mov(vpm, r1)


def test_three_delay_slots_always_execute(drv):
    assert np.all(run_store(drv, delay_slots, 1) == 7)


@qpu
def counted_loop(asm, count):
    ldi(r1, 0)
    ldi(r2, count)
    L.loop
    isub(r2, r2, 1, set_flags=True)
    jzc(L.loop)
    iadd(r1, r1, 3)            # delay slots run on every pass, taken or not
    nop()
    nop()
    mov(vpm, r1)


def test_counted_loop(drv):
    assert np.all(run_store(drv, counted_loop, 1, 37) == 3 * 37)


@qpu
def branch_not_taken_writes_no_link(asm):
    ldi(r1, 0x1234)
    isub(null, r1, r1, set_flags=True)   # all Z
    jzc(L.never, link=r1)                # not taken
    nop()
    nop()
    nop()
    L.never
    mov(vpm, r1)


def test_untaken_branch_leaves_link_register(drv):
    """vc4asm measured that the link registers are assigned only when the branch is taken."""
    assert np.all(run_store(drv, branch_not_taken_writes_no_link, 1) == 0x1234)
