"""Write Megatron's indexed dataset format (.bin + .idx) without importing megatron-core.

Importing megatron-core costs seconds per worker process (it pulls in torch and its model code),
more than tokenizing a shard takes; the format itself is small (see indexed_format.py).
tests/data/test_indexed_writer.py checks the bytes against megatron-core's own builder.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from nemotron.data.indexed_format import DTYPE_CODES, HEADER, VERSION


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 for vocabularies under 65,500 tokens, int32 otherwise (megatron-core's choice)."""
    return np.dtype(np.uint16 if vocab_size < 65500 else np.int32)


class IndexedWriter:
    """Append documents (one sequence each) to a .bin file; `finalize` writes the .idx."""

    def __init__(self, bin_path: str | Path, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in DTYPE_CODES:
            raise ValueError(f"unsupported token dtype {self.dtype}")
        self._bin = open(bin_path, "wb")
        self._lengths: list[int] = []

    def add_document(self, ids: np.ndarray) -> None:
        self._bin.write(np.asarray(ids, dtype=self.dtype).tobytes(order="C"))
        self._lengths.append(len(ids))

    def finalize(self, idx_path: str | Path) -> None:
        self._bin.close()
        lengths = np.array(self._lengths, dtype=np.int32)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        document_index = np.arange(len(lengths) + 1, dtype=np.int64)
        with open(idx_path, "wb") as idx:
            idx.write(HEADER)
            idx.write(struct.pack("<Q", VERSION))
            idx.write(struct.pack("<B", DTYPE_CODES[self.dtype.name]))
            idx.write(struct.pack("<Q", len(lengths)))
            idx.write(struct.pack("<Q", len(document_index)))
            idx.write(lengths.tobytes(order="C"))
            idx.write(pointers.tobytes(order="C"))
            idx.write(document_index.tobytes(order="C"))
