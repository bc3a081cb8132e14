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
    """Append documents (one sequence each) to a .bin file; `finalize` writes the .idx.

    `add_document(ids)` writes a whole document; a long one can be written in parts instead:
    `start_document()`, `extend(ids)` any number of times, `end_document()`.
    """

    def __init__(self, bin_path: str | Path, dtype: np.dtype) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in DTYPE_CODES:
            raise ValueError(f"unsupported token dtype {self.dtype}")
        self._bin = open(bin_path, "wb")
        self._lengths: list[int] = []
        self._open: int | None = None  # tokens of the document being written in parts

    def add_document(self, ids: np.ndarray) -> None:
        self.start_document()
        self.extend(ids)
        self.end_document()

    def start_document(self) -> None:
        if self._open is not None:
            raise RuntimeError("start_document(): the previous document was not ended")
        self._open = 0

    def extend(self, ids: np.ndarray) -> None:
        """Append `ids` to the document started last."""
        if self._open is None:
            raise RuntimeError("extend() outside a document: call start_document() first")
        self._bin.write(np.asarray(ids, dtype=self.dtype).tobytes(order="C"))
        self._open += len(ids)

    def end_document(self) -> int:
        """End the document started last; returns its length in tokens."""
        if self._open is None:
            raise RuntimeError("end_document() without start_document()")
        length, self._open = self._open, None
        self._lengths.append(length)
        return length

    def finalize(self, idx_path: str | Path) -> None:
        if self._open is not None:
            raise RuntimeError("finalize(): a document was started and not ended")
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
