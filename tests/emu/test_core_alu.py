"""Integer ops, C flags per opcode (spec §3.3), conditions, load immediates, small immediates,
vector rotation, r5 replication, element and QPU numbers. Expected values from numpy."""
import numpy as np
import pytest

from emu_rig import both_paths, Rig, run_body, words
from vc4infer.qpu import qpu

RNG = np.random.default_rng(11)
U32 = np.uint32


@pytest.fixture(autouse=True, params=["strict", "fast"])
def _path(request, monkeypatch):
    both_paths(request, monkeypatch)


def rand_u32(n=16):
    return RNG.integers(0, 2**32, n, dtype=np.uint64).astype(U32)


@qpu
def int_op_and_carry(asm, op):
    mov(r0, vpm)
    mov(r1, vpm)
    ldi(r3, 0)
    {"iadd": iadd, "isub": isub, "shr": shr, "asr": asr, "shl": shl, "imin": imin, "imax": imax,
     "ror": ror, "band": band}[op](r2, r0, r1, set_flags=True)
    mov(vpm, r2)
    ldi(r3, 1, cond="cs")          # C flag made visible
    mov(vpm, r3)


def s32(x):
    return x.astype(np.int64) - ((x.astype(np.int64) & 0x80000000) << 1)


@pytest.mark.parametrize("op", ["iadd", "isub", "shr", "asr", "shl", "imin", "imax", "ror", "band"])
def test_integer_ops_and_their_c_flag(op):
    a, b = rand_u32(), rand_u32()
    b[:4] = [0, 1, 31, 32]                          # shifts use the low 5 bits
    a64, b64, s = a.astype(np.int64), b.astype(np.int64), b.astype(np.int64) & 31
    res, carry = {
        "iadd": ((a64 + b64) & 0xFFFFFFFF, a64 + b64 > 0xFFFFFFFF),
        "isub": ((a64 - b64) & 0xFFFFFFFF, a64 < b64),
        "shr": (a64 >> s, np.where(s > 0, (a64 >> np.maximum(s - 1, 0)) & 1, 0)),
        "asr": ((s32(a) >> s) & 0xFFFFFFFF, np.where(s > 0, (a64 >> np.maximum(s - 1, 0)) & 1, 0)),
        "shl": ((a64 << s) & 0xFFFFFFFF, np.where(s > 0, (a64 >> (32 - s)) & 1, 0)),
        "imin": (np.where(s32(a) < s32(b), a64, b64), s32(a) > s32(b)),
        "imax": (np.where(s32(a) > s32(b), a64, b64), s32(a) > s32(b)),
        "ror": (((a64 >> s) | (a64 << (32 - s))) & 0xFFFFFFFF, np.zeros(16, bool)),
        "band": (a64 & b64, np.zeros(16, bool)),
    }[op]
    out = run_body(int_op_and_carry, np.stack([a, b]), 2, op)
    assert np.array_equal(out[0], res.astype(U32))
    assert np.array_equal(out[1], carry.astype(U32))


@qpu
def unary_and_mul(asm):
    mov(r0, vpm)
    mov(r1, vpm)
    bnot(vpm, r0)
    clz(vpm, r0)
    imul24(vpm, r0, r1)
    v8adds(vpm, r0, r1)
    v8subs(vpm, r0, r1)
    v8min(vpm, r0, r1)
    v8max(vpm, r0, r1)
    v8muld(vpm, r0, r1)


def test_unary_mul24_and_byte_ops():
    a, b = rand_u32(), rand_u32()
    a[0], a[1] = 0, 1
    out = run_body(unary_and_mul, np.stack([a, b]), 8)
    ab = a.view(np.uint8).reshape(16, 4).astype(np.int64)
    bb = b.view(np.uint8).reshape(16, 4).astype(np.int64)

    def bytes_to_u32(x):
        return x.astype(np.uint8).reshape(16, 4).copy().view(U32).reshape(16)
    clz = np.array([32 - int(v).bit_length() for v in a], dtype=U32)
    assert np.array_equal(out[0], ~a)
    assert np.array_equal(out[1], clz) and out[1][0] == 32
    assert np.array_equal(out[2], ((a.astype(np.uint64) & 0xFFFFFF) * (b.astype(np.uint64) & 0xFFFFFF)
                                   & 0xFFFFFFFF).astype(U32))
    assert np.array_equal(out[3], bytes_to_u32(np.minimum(ab + bb, 255)))
    assert np.array_equal(out[4], bytes_to_u32(np.maximum(ab - bb, 0)))
    assert np.array_equal(out[5], bytes_to_u32(np.minimum(ab, bb)))
    assert np.array_equal(out[6], bytes_to_u32(np.maximum(ab, bb)))
    assert np.all(np.abs(out[7].view(np.uint8).astype(int) - (ab * bb // 255).reshape(-1)) <= 1)


@qpu
def conditions(asm):
    mov(r0, vpm)
    isub(null, r0, 5, set_flags=True)               # Z: r0 == 5; N: r0 < 5; C: r0 < 5 unsigned
    for cond in ("zs", "zc", "ns", "nc", "cs", "cc"):
        ldi(r1, 0)
        mov(r1, 1, cond=cond)
        mov(vpm, r1)


def test_conditions_per_element():
    x = np.array([5, 4, 6, 0, 0xFFFFFFFF, 5, 100, 3] * 2, dtype=U32)
    out = run_body(conditions, x[None], 6)
    d = x.astype(np.int64) - 5
    z, n, c = d == 0, (d & 0xFFFFFFFF) >> 31 == 1, x.astype(np.int64) < 5
    for row, expect in enumerate([z, ~z, n, ~n, c, ~c]):
        assert np.array_equal(out[row], expect.astype(U32)), row


@qpu
def mul_sets_flags_when_add_is_nop(asm):
    mov(r0, vpm)
    nop()
    fmul(null, r0, 1.0, set_flags=True)          # add pipe nop: flags come from the mul result
    ldi(r1, 0)
    mov(r1, 1, cond="zs")
    mov(vpm, r1)
    ldi(r1, 0)
    mov(r1, 1, cond="ns")
    mov(vpm, r1)


def test_mul_pipe_sets_flags_when_the_add_pipe_is_nop():
    x = np.array([0.0, -1.0, 2.0, -0.5] * 4, dtype=np.float32)
    out = run_body(mul_sets_flags_when_add_is_nop, x.view(U32)[None], 2)
    assert np.array_equal(out[0], (x == 0).astype(U32))
    assert np.array_equal(out[1], (x < 0).astype(U32))


@qpu
def immediates(asm):
    ldi(r0, 0x12345678)
    mov(vpm, r0)
    ldi(r0, [-2, -1, 0, 1] * 4)
    mov(vpm, r0)
    ldi(r0, [0, 1, 2, 3, 3, 2, 1, 0] * 2)
    mov(vpm, r0)
    for imm in (-16, 15, 0.5, 128.0):
        mov(vpm, imm)


def test_load_and_small_immediates():
    out = run_body(immediates, None, 7)
    assert np.all(out[0] == 0x12345678)
    assert np.array_equal(out[1].view(np.int32), [-2, -1, 0, 1] * 4)
    assert np.array_equal(out[2], [0, 1, 2, 3, 3, 2, 1, 0] * 2)
    assert np.all(out[3].view(np.int32) == -16) and np.all(out[4] == 15)
    assert np.all(out[5].view(np.float32) == 0.5) and np.all(out[6].view(np.float32) == 128.0)


@qpu
def rotations(asm):
    mov(r0, vpm)
    mov(ra0, r0)
    mov(broadcast, 3)
    nop()
    rotate(r1, r0, 5)              # accumulator: full 16-element rotation
    mov(vpm, r1)
    rotate(r1, ra0, 5)             # regfile: within each quad, by 5 mod 4
    mov(vpm, r1)
    rotate(r1, r0, r5)             # by r5 element 0 (3)
    mov(vpm, r1)


def test_rotation_full_per_quad_and_by_r5():
    x = np.arange(100, 116, dtype=U32)
    out = run_body(rotations, x[None], 3)
    assert np.array_equal(out[0], np.roll(x, 5))
    quad = x.reshape(4, 4)
    assert np.array_equal(out[1], np.roll(quad, 1, axis=1).reshape(16))
    assert np.array_equal(out[2], np.roll(x, 3))


@qpu
def r5_and_numbers(asm):
    mov(r0, vpm)
    mov(r5_pix0, r0)               # A space: element 0 of each quad to its quad
    mov(vpm, r5)
    mov(broadcast, r0)             # B space: element 0 to all
    mov(vpm, r5)
    mov(vpm, element_number)
    mov(vpm, qpu_number)


def test_r5_replication_element_and_qpu_number():
    x = np.arange(16, dtype=U32) * 7 + 1
    out = run_body(r5_and_numbers, x[None], 4)
    assert np.array_equal(out[0], np.repeat(x[::4], 4))
    assert np.all(out[1] == x[0])
    assert np.array_equal(out[2], np.arange(16))
    assert np.all(out[3] == 0)


@qpu
def qpu_number_to_memory(asm):
    mov(ra0, uniform)
    mutex_acquire()
    setup_vpm_write()
    mov(vpm, qpu_number)
    setup_dma_store(nrows=1)
    start_dma_store(ra0)
    wait_dma_store()
    mutex_release()
    exit()


def test_each_instance_sees_its_qpu_number():
    rig = Rig()
    outs = [rig.buffer(64, f"out{q}") for q in range(12)]
    rig.run(rig.program(qpu_number_to_memory), [[o] for o in outs])
    for q in range(12):
        assert np.all(words(outs[q]) == q)


@qpu
def branches(asm):
    mov(r0, vpm)
    isub(null, r0, 1, set_flags=True)
    ldi(r1, 0)
    jzs_any(L.some_zero)               # taken: some elements are 1
    ldi(r2, 1)                         # three delay slots always run
    ldi(r2, 2)
    ldi(r2, 3)
    ldi(r1, 99)                        # skipped
    L.some_zero
    jzs(L.all_zero, link=ra3)          # not taken: not all are 1
    nop()
    nop()
    nop()
    ldi(r1, 7)
    L.all_zero
    mov(vpm, r1)
    mov(vpm, r2)


def test_branch_any_all_and_delay_slots():
    x = np.array([1, 0] * 8, dtype=U32)
    out = run_body(branches, x[None], 2)
    assert np.all(out[0] == 7) and np.all(out[1] == 3)
