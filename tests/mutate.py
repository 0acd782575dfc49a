"""The one mutation of the reader fuzz tests and of `make fuzz` (tests/fuzz_readers.py): 1-3
byte flips, a truncation, or a 4-byte overwrite, chosen by `rng`."""
import numpy as np


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    bad = bytearray(data)
    kind = rng.integers(0, 3)
    if kind == 0:
        for _ in range(rng.integers(1, 4)):
            bad[rng.integers(0, len(bad))] = rng.integers(0, 256)
    elif kind == 1:
        bad = bad[:rng.integers(1, len(bad))]
    else:
        pos = rng.integers(0, max(1, len(bad) - 4))
        bad[pos:pos + 4] = rng.integers(0, 256, 4).astype(np.uint8).tobytes()
    return bytes(bad)
