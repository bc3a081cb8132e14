"""A batch of encoded documents as one flat uint32 id array plus document offsets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ID_DTYPE = np.uint32


@dataclass(frozen=True)
class EncodedBatch:
    """Document `i` is `ids[offsets[i]:offsets[i + 1]]`; `offsets` has one entry more than documents."""

    ids: np.ndarray  # uint32, all documents back to back
    offsets: np.ndarray  # int64, starts at 0, ends at len(ids)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per document (int64)."""
        return np.diff(self.offsets)

    def arrays(self) -> list[np.ndarray]:
        """One uint32 array per document (views into `ids`, no copy)."""
        return np.split(self.ids, self.offsets[1:-1]) if len(self) else []

    def lists(self) -> list[list[int]]:
        """One fresh Python list of ints per document."""
        return [part.tolist() for part in self.arrays()]

    def with_suffix(self, token_id: int) -> EncodedBatch:
        """The same documents with `token_id` appended to each (e.g. the end-of-document id)."""
        n = len(self)
        ids = np.insert(self.ids, self.offsets[1:], ID_DTYPE(token_id))
        return EncodedBatch(ids, self.offsets + np.arange(n + 1, dtype=np.int64))

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> EncodedBatch:
        """Pack Python lists of ids (the Hugging Face backend's output)."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter((i for r in rows for i in r), dtype=ID_DTYPE, count=int(offsets[-1]))
        return cls(ids, offsets)
