"""The two ALUs of a QPU: add-pipe and mul-pipe opcodes on 16 elements, with the QPU's float
behaviour and the C flag each opcode produces (spec §3).

Operands and results are uint32[16] arrays (bit patterns) with float32 views of the same memory.
Float behaviour modelled (spec §3.4):
- denormal inputs and outputs are flushed to +0 (VC4C's hardware tests: "+-0 and all subnormal
  numbers are flushed to +0" for fadd/fsub/fmul);
- fadd, fsub and itof round toward zero (VC4C `FlushDenormsAndRoundToZero`): the exact result
  rounded toward zero to float32, for every exponent gap. When the exponents differ by less than
  FADD_EXACT_GAP the float64 sum is exact and its mantissa is truncated to 24 bits; at larger gaps
  the smaller operand is below 1/32 of the larger one's last unit, so the result is the larger
  operand, one unit toward zero when the signs differ. A sum of magnitude 2**128 or more gives Inf
  of its sign (the hardware's overflow is not documented);
- fmul rounds toward zero too: the float64 product of two float32 values is exact, and its
  mantissa is truncated to 24 bits; a product below the smallest normal is flushed to +0. This
  settles spec U6: GPU_FFT's unmodified shaders on the emulator reproduce the relative rms errors
  Andrew Holme published for its hardware runs (hello_fft gpu_fft.txt: 0.33 / 0.52 / 0.78 /
  0.92 / 1.0 ppm at 2^8 .. 2^16 points) with a truncating fmul (0.327 / 0.519 / 0.776 / 0.917 /
  1.03) and not with a rounding one (0.22 / 0.34 / 0.52 / 0.60 / 0.66);
- NaN and Inf follow VC4C's tests: a NaN operand of fadd/fsub/fmul gives Inf with the NaN's sign
  (the second operand's NaN wins), Inf + -Inf gives -Inf, 0 * anything (NaN, Inf) gives 0;
- fmin/fmax/fminabs/fmaxabs compare like sign-magnitude integers (so -NaN < -Inf < ... < Inf < NaN),
  compare magnitudes when both operands are denormal, return the second operand on ties and pass
  the chosen operand's bits through unchanged;
- ftoi truncates; NaN, Inf and values outside int32 give 0, except +-FLT_MAX which give INT_MIN.

C flags (spec §3.3): where vc4asm and VC4C disagree (itof, mul24) we follow vc4asm, whose author
measured the hardware; `carry_alternative` gives VC4C's reading so strict mode can flag programs whose
flags would differ.
"""
import numpy as np

from vc4infer.emu.jit import jit, jit_inline

EXP_MASK = 0x7F800000
SIGN = 0x80000000
MAG = 0x7FFFFFFF
POS_INF = 0x7F800000
NEG_INF = 0xFF800000
FLT_MAX = 0x7F7FFFFF
TRUNC_TO_F32 = -0x20000000      # clears the 29 float64 mantissa bits that float32 does not have
#: exponent gap from which a float32 sum no longer fits float64's 53 bits (24 + gap + 1 > 53)
FADD_EXACT_GAP = 29
M32 = 0xFFFFFFFF
#: the smallest normal float32, 2**-126
FLT_MIN_NORMAL = 2.0 ** -126


@jit
def _special(x):
    """NaN or Inf bit pattern."""
    return (x & EXP_MASK) == EXP_MASK


@jit
def _is_nan(x):
    return (x & EXP_MASK) == EXP_MASK and (x & 0x7FFFFF) != 0


@jit_inline
def _fadd_lanes(a, b, r, negate_b):
    """r = a + b (or a - b) with the QPU's flush-to-zero, round-toward-zero and NaN/Inf rules."""
    af = a.view(np.float32)
    bf = b.view(np.float32)
    special = False
    sign_flip = 1.0 if negate_b == 0 else -1.0
    for i in range(16):
        x = np.int64(a[i])
        y = np.int64(b[i])
        fx = np.float64(af[i]) if (x & EXP_MASK) != 0 else 0.0
        fy = np.float64(bf[i]) if (y & EXP_MASK) != 0 else 0.0
        exact = np.float64(fx + sign_flip * fy)
        truncated = np.int64(exact.view(np.int64) & TRUNC_TO_F32)
        single = np.float32(truncated.view(np.float64))
        v = np.int64(single.view(np.uint32))
        r[i] = v if (v & EXP_MASK) != 0 else 0
        ex = (x >> 23) & 255
        ey = (y >> 23) & 255
        gap = ex - ey if ex > ey else ey - ex
        special |= (ex == 255) | (ey == 255) | (ex != 0) & (ey != 0) & (gap >= FADD_EXACT_GAP)
    if special:                                # rare: lanes the float64 sum does not serve
        for i in range(16):
            x = np.int64(a[i])
            y = np.int64(b[i])
            if negate_b != 0:
                y ^= SIGN
            if _is_nan(y):
                r[i] = NEG_INF if y & SIGN else POS_INF
            elif _is_nan(x):
                r[i] = NEG_INF if x & SIGN else POS_INF
            elif _special(x) and _special(y) and ((x ^ y) & SIGN) != 0:
                r[i] = NEG_INF
            elif _special(x):
                r[i] = x
            elif _special(y):
                r[i] = y
            else:
                r[i] = _fadd_far_apart(x, y, r[i])


@jit
def _fadd_far_apart(x, y, sum_bits):
    """The round-toward-zero sum of finite float32 patterns x and y whose exponents are at least
    FADD_EXACT_GAP apart (the smaller is then below 1/32 of the larger's last unit, so the exact
    sum lies within that unit of the larger operand): the larger, or the larger one unit toward
    zero when the signs differ, flushed if that is a denormal. Other pairs: sum_bits."""
    ex = (x >> 23) & 255
    ey = (y >> 23) & 255
    if ex == 0 or ey == 0 or abs(ex - ey) < FADD_EXACT_GAP:
        return sum_bits
    big = x if ex > ey else y
    if ((x ^ y) & SIGN) != 0:
        big -= 1                               # the magnitude's next float32 toward zero
    return big if (big & EXP_MASK) != 0 else 0


@jit_inline
def _fmul_lanes(a, b, r):
    af = a.view(np.float32)
    bf = b.view(np.float32)
    rf = r.view(np.float32)
    special = False
    for i in range(16):
        x = np.int64(a[i])
        y = np.int64(b[i])
        zero = ((x & EXP_MASK) == 0) | ((y & EXP_MASK) == 0)
        exact = np.float64(0.0 if zero else np.float64(af[i]) * np.float64(bf[i]))
        truncated = np.int64(exact.view(np.int64) & TRUNC_TO_F32).view(np.float64)
        # below the smallest normal: flushed here, before float32 conversion could round it up
        rf[i] = np.float32(truncated if abs(truncated) >= FLT_MIN_NORMAL else 0.0)
        special |= ((x & EXP_MASK) == EXP_MASK) | ((y & EXP_MASK) == EXP_MASK)
    for i in range(16):
        v = np.int64(r[i])
        if (v & EXP_MASK) == 0:
            r[i] = 0
    if special:
        for i in range(16):
            x = np.int64(a[i])
            y = np.int64(b[i])
            if (x & EXP_MASK) == 0 or (y & EXP_MASK) == 0:
                r[i] = 0
            elif _special(x) or _special(y):
                r[i] = ((x ^ y) & SIGN) | POS_INF


@jit
def _minmax_key(x, both_denormal):
    m = x & MAG
    if both_denormal:
        return m
    return -m if x & SIGN else m


@jit
def _to_signed(x):
    return x - ((x & SIGN) << 1)


@jit
def _sat_u8(v):
    return 0 if v < 0 else (255 if v > 255 else v)


@jit
def v8_op(kind, x, y):
    """Per-byte unsigned ops: 0 adds, 1 subs, 2 min, 3 max, 4 muld."""
    out = 0
    for k in range(4):
        p = (x >> (8 * k)) & 255
        q = (y >> (8 * k)) & 255
        if kind == 0:
            v = _sat_u8(p + q)
        elif kind == 1:
            v = _sat_u8(p - q)
        elif kind == 2:
            v = p if p < q else q
        elif kind == 3:
            v = p if p > q else q
        else:
            v = (p * q + 127) // 255
        out |= v << (8 * k)
    return out


@jit
def _clz(x):
    n = 0
    while n < 32 and ((x >> (31 - n)) & 1) == 0:
        n += 1
    return n


@jit_inline
def add_pipe(op, a, b, r, c, d64, carry):
    """Run add-pipe opcode `op` on 16 elements of uint32 arrays a, b: r = result bits, c = C flag
    per element (for fadd/fsub only when `carry`: the flags are set); d64 is float64 scratch. One
    loop per opcode keeps the element loops branch-free for the compiler."""
    if op == 1 or op == 2:                     # fadd, fsub
        _fadd_lanes(a, b, r, op - 1)
        if carry:                              # a loop of its own: most fadds set no flags
            for i in range(16):
                v = np.int64(r[i])
                c[i] = 1 if (v & SIGN) == 0 and (v & MAG) != 0 else 0
    elif op == 12:                             # iadd: C = unsigned carry
        for i in range(16):
            t = np.int64(a[i]) + np.int64(b[i])
            r[i] = t & M32
            c[i] = (t >> 32) & 1
    elif op == 13:                             # isub: C = unsigned borrow
        for i in range(16):
            t = np.int64(a[i]) - np.int64(b[i])
            r[i] = t & M32
            c[i] = (t >> 63) & 1
    elif op == 21:                             # bor (also the add pipe's mov); C = 0
        for i in range(16):
            r[i] = a[i] | b[i]
            c[i] = 0
    elif op == 20:                             # band
        for i in range(16):
            r[i] = a[i] & b[i]
            c[i] = 0
    elif op == 22:                             # bxor
        for i in range(16):
            r[i] = a[i] ^ b[i]
            c[i] = 0
    elif op == 23:                             # bnot
        for i in range(16):
            r[i] = ~a[i]
            c[i] = 0
    elif op >= 14 and op <= 17:                # shr asr ror shl (shift by the low 5 bits)
        for i in range(16):
            x = np.int64(a[i])
            s = np.int64(b[i]) & 31
            cf = 0
            if op == 14:
                res = x >> s
                cf = (x >> (s - 1)) & 1 if s > 0 else 0
            elif op == 15:
                res = (_to_signed(x) >> s) & M32
                cf = (x >> (s - 1)) & 1 if s > 0 else 0
            elif op == 16:
                res = ((x >> s) | (x << (32 - s))) & M32 if s > 0 else x
            else:
                res = (x << s) & M32
                cf = (x >> (32 - s)) & 1 if s > 0 else 0
            r[i] = res
            c[i] = cf
    elif op == 18 or op == 19:                 # imin, imax: C = a > b (signed)
        for i in range(16):
            x = np.int64(a[i])
            y = np.int64(b[i])
            sx = _to_signed(x)
            sy = _to_signed(y)
            if op == 18:
                r[i] = x if sx < sy else y
            else:
                r[i] = x if sx > sy else y
            c[i] = 1 if sx > sy else 0
    elif op >= 3 and op <= 6:                  # fmin fmax fminabs fmaxabs: C = a > b
        for i in range(16):
            x = np.int64(a[i])
            y = np.int64(b[i])
            both_den = (x & EXP_MASK) == 0 and (y & EXP_MASK) == 0
            if op <= 4:
                kx = _minmax_key(x, both_den)
                ky = _minmax_key(y, both_den)
                if op == 3:
                    r[i] = x if kx < ky else y
                else:
                    r[i] = x if kx > ky else y
            else:
                kx = x & MAG
                ky = y & MAG
                if op == 5:
                    r[i] = kx if kx < ky else ky
                else:
                    r[i] = kx if kx > ky else ky
            c[i] = 1 if kx > ky else 0
    elif op == 7:                              # ftoi: C = 0
        af = a.view(np.float32)
        for i in range(16):
            x = np.int64(a[i])
            res = 0
            if (x & EXP_MASK) != 0 and not _special(x):
                if (x & MAG) == FLT_MAX:
                    res = SIGN
                else:
                    d = np.float64(af[i])
                    if -2147483648.0 <= d < 2147483648.0:
                        res = np.int64(d) & M32
            r[i] = res
            c[i] = 0
    elif op == 8:                              # itof, rounded toward zero; C = 0 (vc4asm)
        for i in range(16):
            d64[i] = np.float64(_to_signed(np.int64(a[i])))
        di = d64.view(np.int64)
        rf = r.view(np.float32)
        for i in range(16):
            di[i] &= TRUNC_TO_F32
        for i in range(16):
            rf[i] = np.float32(d64[i])
            c[i] = 0
    elif op == 24:                             # clz
        for i in range(16):
            r[i] = _clz(np.int64(a[i]))
            c[i] = 0
    elif op == 30 or op == 31:                 # v8adds, v8subs
        for i in range(16):
            r[i] = v8_op(op - 30, np.int64(a[i]), np.int64(b[i]))
            c[i] = 0
    else:                                      # nop and reserved codes produce nothing
        for i in range(16):
            r[i] = 0
            c[i] = 0


@jit_inline
def mul_pipe(op, a, b, r, c, carry):
    """Run mul-pipe opcode `op` on 16 elements (as add_pipe; fmul's C flag only when `carry`)."""
    if op == 1:
        _fmul_lanes(a, b, r)
        if carry:
            for i in range(16):
                c[i] = 0
    elif op == 2:                              # mul24: C = product > 0xFFFFFF (vc4asm)
        for i in range(16):
            p = (np.int64(a[i]) & 0xFFFFFF) * (np.int64(b[i]) & 0xFFFFFF)
            r[i] = p & M32
            c[i] = 1 if p > 0xFFFFFF else 0
    elif op >= 3:
        kind = 4 if op == 3 else (2 if op == 4 else (3 if op == 5 else op - 6))
        for i in range(16):
            x = np.int64(a[i])
            y = np.int64(b[i])
            if x == y and (op == 4 or op == 5):    # v8min/v8max x, x: the mul pipe's mov
                r[i] = x
            else:
                r[i] = v8_op(kind, x, y)
            c[i] = 0
    else:
        for i in range(16):
            r[i] = 0
            c[i] = 0


@jit
def carry_alternative(pipe, op, a, b, r, i):
    """VC4C's reading of the C flag where it differs from vc4asm's (spec §3.3 DISAGREE rows), or -1
    where both agree: itof -> result > 0; mul24 -> 48-bit product > 0xFFFFFFFF."""
    if pipe == 0 and op == 8:
        v = np.int64(r[i])
        return 1 if (v & SIGN) == 0 and (v & MAG) != 0 else 0
    if pipe == 1 and op == 2:
        p = (np.int64(a[i]) & 0xFFFFFF) * (np.int64(b[i]) & 0xFFFFFF)
        return 1 if p > M32 else 0
    return -1
