"""An assembled QPU program: its 64-bit words, where each came from, and its labels."""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from .source import UNKNOWN_LOCATION, SourceLocation

WORD_BYTES = 8


def words_to_bytes(words: Sequence[int]) -> bytes:
    """Little-endian 64-bit words as the QPU fetches them (low 32 bits first)."""
    return struct.pack(f"<{len(words)}Q", *words)


def bytes_to_words(code: bytes) -> List[int]:
    if len(code) % WORD_BYTES:
        raise ValueError(f"QPU code is {len(code)} bytes, not a multiple of {WORD_BYTES}")
    return list(struct.unpack(f"<{len(code) // WORD_BYTES}Q", code))


@dataclass
class Program:
    """`words` (ints), `code` (bytes), per-instruction source `locations`, `labels` (name -> byte
    offset of the instruction that follows the label) and the kernel's `name`."""
    words: List[int]
    locations: List[SourceLocation] = field(default_factory=list)
    labels: Dict[str, int] = field(default_factory=dict)
    name: str = "program"

    def __post_init__(self):
        if not self.locations:
            self.locations = [UNKNOWN_LOCATION] * len(self.words)

    @property
    def code(self) -> bytes:
        return words_to_bytes(self.words)

    def __len__(self) -> int:
        return len(self.words)

    def location(self, index: int) -> SourceLocation:
        """Source location of instruction `index`."""
        return self.locations[index]

    @classmethod
    def from_bytes(cls, code: bytes, name: str = "program",
                   labels: Optional[Dict[str, int]] = None) -> "Program":
        return cls(bytes_to_words(code), labels=dict(labels or {}), name=name)
