"""The special function unit: recip, recipsqrt, exp2, log2 on 16 elements (spec §6.1).

Values: RECIP(x) = 1/x, RECIPSQRT(x) = 1/sqrt(|x|), EXP(x) = 2^x, LOG(x) = log2(|x|), with RECIP(0)
= RECIPSQRT(0) = +Inf and LOG(0) = -Inf (py-videocore's hardware tests). Denormal inputs count as 0.

Precision, modelled honestly: the hardware is not exact. py-videocore's hardware tests accept a
relative error of 1e-4 (recip, recipsqrt, exp2) and 1e-2 (log2); VC4C measured 10-12 good bits in
compositions. The emulator computes the exact value, rounds it to float32 and then keeps only
SFU_MANTISSA_BITS significant bits (truncating the rest), so a kernel that needs more precision
than the hardware gives shows it here too. The hardware's exact error pattern is not reproduced.
"""
import math

import numpy as np

from vc4infer.emu.jit import jit
from vc4infer.qpu import isa

#: significant bits kept (implicit 1 + 14 fraction bits: relative error below 2^-14 = 6.1e-5,
#: inside the 1e-4 the hardware tests allow, and coarser than a float32)
SFU_MANTISSA_BITS = 15
_DROP_MASK = (1 << (24 - SFU_MANTISSA_BITS)) - 1


@jit
def sfu_value(addr, x):
    """Result bits of SFU register `addr` (isa.ADDR_SFU_*) applied to float bits `x`."""
    if (x & 0x7F800000) == 0:
        f = 0.0
    else:
        f = np.float64(np.uint32(x).view(np.float32))
    if math.isnan(f):
        return x
    if addr == isa.ADDR_SFU_RECIP:
        r = math.inf if f == 0.0 else 1.0 / f
    elif addr == isa.ADDR_SFU_RECIPSQRT:
        a = abs(f)
        r = math.inf if a == 0.0 else 1.0 / math.sqrt(a)
    elif addr == isa.ADDR_SFU_EXP2:
        r = math.inf if f > 128.0 else 2.0 ** f
    else:
        a = abs(f)
        r = -math.inf if a == 0.0 else math.log2(a)
    bits = np.int64(np.float32(r).view(np.uint32))
    if (bits & 0x7F800000) == 0:
        return 0
    if (bits & 0x7F800000) != 0x7F800000:
        bits &= ~_DROP_MASK
    return bits
