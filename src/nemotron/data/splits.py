"""Deterministic train/valid/test assignment of documents, by a seeded hash of their position."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class SplitFractions:
    """Fractions of documents sent to valid and test; the rest go to train."""

    valid: float
    test: float
    seed: int

    def __post_init__(self) -> None:
        if not (0 <= self.valid < 1 and 0 <= self.test < 1 and self.valid + self.test < 1):
            raise ValueError(
                f"split fractions must be in [0, 1) with valid + test < 1; got valid={self.valid}, test={self.test}"
            )

    def assign(self, dataset: str, key: str | int) -> str:
        """The split of the document `key` (its stable record key) of `dataset`, for this seed."""
        digest = hashlib.blake2b(f"{self.seed}:{dataset}:{key}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2**64
        if u < self.test:
            return "test"
        if u < self.test + self.valid:
            return "valid"
        return "train"
