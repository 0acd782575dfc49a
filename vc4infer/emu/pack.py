"""Pack and unpack (spec §7): regfile-A unpack and r4 unpack of operands, regfile-A pack and the
mul-pipe colour pack of results. Partial-width packs return a byte mask; the bytes outside it keep
the destination's previous value (VC4C `Pack::getOutputMask`, vc4asm's byte masks).

Readings chosen where sources are silent or disagree:
- float32 -> float16 packing rounds to nearest even (rounding not documented, spec U6); +-0 -> +0,
  NaN -> Inf with its sign, values below the half range -> +0, above -> Inf (VC4C's hardware tests);
- float16 -> float32 unpacking of half denormals keeps the mantissa without exponent fix-up, which
  gives a float32 denormal that float ops then read as 0 (VC4C: "converted wrong");
- 8-bit packs of float results use the bit pattern (the guide defines float conversion only for
  16-bit packs and for the mul colour pack);
- colour pack: round(f * 255) to nearest even, clamped to [0, 255]; NaN gives 0.
"""
import math

import numpy as np

from vc4infer.emu.jit import jit
from vc4infer.qpu import isa

PACK_BYTE_MASK = np.array(isa.PACK_BYTE_MASK, dtype=np.int64)


@jit
def f16_to_f32(h):
    """Bits of the float32 a float16 pattern unpacks to."""
    sign = (h & 0x8000) << 16
    e = (h >> 10) & 31
    m = h & 0x3FF
    if e == 31:
        return sign | 0x7F800000 | (m << 13)
    if e == 0:
        return sign | (m << 13)
    return sign | ((e - 15 + 127) << 23) | (m << 13)


@jit
def f32_to_f16(x):
    """float16 pattern of float32 bits `x` (round to nearest even, QPU special cases)."""
    sign = (x >> 16) & 0x8000
    e = (x >> 23) & 255
    m = x & 0x7FFFFF
    if e == 255:
        return sign | 0x7C00
    if e == 0:
        return 0
    he = e - 127 + 15
    if he >= 31:
        return sign | 0x7C00
    if he <= 0:
        return 0
    hm = m >> 13
    rest = m & 0x1FFF
    if rest > 0x1000 or (rest == 0x1000 and (hm & 1) == 1):
        hm += 1
        if hm == 0x400:
            hm = 0
            he += 1
            if he >= 31:
                return sign | 0x7C00
    return sign | (he << 10) | hm


@jit
def _byte_as_float(b):
    return np.int64(np.float32(b / 255.0).view(np.uint32))


@jit
def unpack(code, x, as_float):
    """Regfile-A unpack (or, with as_float, the float variants shared with the r4 unpack)."""
    if code == 0:
        return x
    if code == 3:
        b = (x >> 24) & 255
        return b | (b << 8) | (b << 16) | (b << 24)
    if code == 1 or code == 2:
        h = (x >> 16) & 0xFFFF if code == 2 else x & 0xFFFF
        if as_float:
            return f16_to_f32(h)
        return (h - ((h & 0x8000) << 1)) & 0xFFFFFFFF
    b = (x >> (8 * (code - 4))) & 255
    return _byte_as_float(b) if as_float else b


@jit
def _signed(v):
    return v - ((v & 0x80000000) << 1)


@jit
def _clamp(v, lo, hi):
    return lo if v < lo else (hi if v > hi else v)


@jit
def pack_a(code, v, float_result):
    """Regfile-A pack of one element: the packed 32-bit value (bytes outside PACK_BYTE_MASK[code]
    are don't-care). `v` is the result after 32-bit saturation where the op saturates."""
    if code == 0 or code == 8:
        return v
    base = code & 7
    sat = code >= 8
    if base == 1 or base == 2:
        if float_result:
            h = f32_to_f16(v)
        elif sat:
            h = _clamp(_signed(v), -32768, 32767) & 0xFFFF
        else:
            h = v & 0xFFFF
        return h << 16 if base == 2 else h
    b = _clamp(_signed(v), 0, 255) if sat else v & 255
    if base == 3:
        return b | (b << 8) | (b << 16) | (b << 24)
    return b << (8 * (base - 4))


@jit
def colour_pack(code, v):
    """Mul-pipe colour pack (pm = 1) of float bits `v`: (value, byte mask); reserved codes return
    the value unchanged with mask 0xF."""
    if code < 3 or code > 7:
        return v, 0xF
    f = np.float64(np.uint32(v).view(np.float32))
    if math.isnan(f):
        c = 0
    else:
        c = np.int64(_clamp(np.rint(min(max(f * 255.0, -1.0), 256.0)), 0.0, 255.0))
    if code == 3:
        return c | (c << 8) | (c << 16) | (c << 24), 0xF
    k = code - 4
    return c << (8 * k), 1 << k
