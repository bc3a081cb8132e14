"""Packed SFT rows (parquet from `data prep sft`) as fixed-length training samples, labels shifted per document."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nemotron.data.packing import PackedRow, read_packed_parquet
from nemotron.training.datasets.gpt import TrainingDataError

PACKED_BATCH_KEYS = ("tokens", "labels", "loss_mask", "position_ids", "document_ids")
PAD_DOCUMENT = -1  # document id of the padding after a row's last document


@dataclass(frozen=True)
class PackedSample:
    """One row laid out for the model: every array has `seq_length` entries.

    Within each document [s, e) of the row, position t < e-1 reads token t and predicts token t+1
    (`labels[t]`), counted when `loss_mask[t]` (the predicted token is an assistant token); the last
    position of a document predicts nothing, so no label crosses a boundary. `document_ids` numbers
    the documents 0, 1, ... (padding: -1) for the block-diagonal attention mask; `position_ids`
    restart at 0 in each document.
    """

    tokens: np.ndarray
    labels: np.ndarray
    loss_mask: np.ndarray
    position_ids: np.ndarray
    document_ids: np.ndarray


def layout_row(row: PackedRow, seq_length: int, pad_id: int = 0) -> PackedSample:
    """`row` as a `PackedSample` of `seq_length` positions (padded; a longer row is refused)."""
    length = len(row.input_ids)
    if length > seq_length:
        raise TrainingDataError(
            f"a packed row holds {length} tokens but the model's sequence is {seq_length}; prepare the data with "
            f"pack_size <= {seq_length} (nemotron nano3 data prep sft pack_size={seq_length})"
        )
    ids = np.asarray(row.input_ids, dtype=np.int64)
    mask = np.asarray(row.loss_mask, dtype=np.float32)
    tokens = np.full(seq_length, pad_id, dtype=np.int64)
    labels = np.full(seq_length, pad_id, dtype=np.int64)
    loss_mask = np.zeros(seq_length, dtype=np.float32)
    position_ids = np.arange(seq_length, dtype=np.int64)
    document_ids = np.full(seq_length, PAD_DOCUMENT, dtype=np.int64)
    tokens[:length] = ids
    for index, (start, end) in enumerate(row.documents()):
        labels[start : end - 1] = ids[start + 1 : end]
        loss_mask[start : end - 1] = mask[start + 1 : end]
        position_ids[start:end] = np.arange(end - start)
        document_ids[start:end] = index
    position_ids[length:] = np.arange(seq_length - length)  # padding: one document of its own, never counted
    return PackedSample(tokens, labels, loss_mask, position_ids, document_ids)


class PackedSftDataset:
    """`num_samples` samples drawn epoch by epoch from the rows of one packed parquet file.

    Sample k is row `order[k % rows]` of epoch k // rows, each epoch a fresh seeded permutation,
    so the sequence of samples depends only on (file, seed) and a run resumes at any position.
    """

    def __init__(self, path: Path, seq_length: int, num_samples: int, seed: int, *, shuffle: bool = True) -> None:
        self.path = path
        self.rows = read_packed_parquet(path)
        if not self.rows:
            raise TrainingDataError(f"{path} holds no packed rows; prepare the SFT data with more conversations")
        longest = max(len(row.input_ids) for row in self.rows)
        if longest > seq_length:
            layout_row(next(r for r in self.rows if len(r.input_ids) == longest), seq_length)  # raises the message
        self.seq_length, self.num_samples, self.seed, self.shuffle = seq_length, num_samples, seed, shuffle
        self._orders: dict[int, np.ndarray] = {}

    @property
    def epochs(self) -> float:
        """Passes over the rows that `num_samples` makes."""
        return self.num_samples / len(self.rows)

    def __len__(self) -> int:
        return self.num_samples

    def row_index(self, sample: int) -> int:
        epoch, within = divmod(sample, len(self.rows))
        if not self.shuffle:
            return within
        order = self._orders.get(epoch)
        if order is None:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(self.rows))
            self._orders = {epoch: order}  # samples are read in order: one epoch's permutation at a time
        return int(order[within])

    def __getitem__(self, sample: int) -> dict[str, Any]:
        import torch

        if not 0 <= sample < self.num_samples:
            raise IndexError(sample)
        laid = layout_row(self.rows[self.row_index(sample)], self.seq_length)
        return {key: torch.from_numpy(getattr(laid, key)) for key in PACKED_BATCH_KEYS}
