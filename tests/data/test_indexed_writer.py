"""Our bin/idx writer produces exactly the bytes of megatron-core's IndexedDatasetBuilder."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from nemotron.data.indexed_writer import IndexedWriter, token_dtype

warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")


def documents(seed: int, count: int, high: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, high, size=int(rng.integers(1, 300))) for _ in range(count)]


@pytest.mark.parametrize(("vocab", "count"), [(8192, 50), (65499, 7), (65500, 20), (200_000, 13), (8192, 1), (8192, 0)])
def test_same_bytes_as_megatron_builder(tmp_path, vocab, count):
    import torch
    from megatron.core.datasets.indexed_dataset import DType, IndexedDataset, IndexedDatasetBuilder

    docs = documents(vocab + count, count, vocab)
    dtype = token_dtype(vocab)
    assert dtype == np.dtype(DType.optimal_dtype(vocab))

    ours = IndexedWriter(tmp_path / "ours.bin", dtype)
    theirs = IndexedDatasetBuilder(str(tmp_path / "theirs.bin"), dtype=DType.optimal_dtype(vocab))
    for doc in docs:
        ours.add_document(doc)
        theirs.add_item(torch.from_numpy(doc))
        theirs.end_document()
    ours.finalize(tmp_path / "ours.idx")
    theirs.finalize(str(tmp_path / "theirs.idx"))

    for suffix in (".bin", ".idx"):
        assert (tmp_path / f"ours{suffix}").read_bytes() == (tmp_path / f"theirs{suffix}").read_bytes(), suffix
    if count:
        read = IndexedDataset(str(tmp_path / "ours"))
        assert len(read) == count
        assert [read[i].tolist() for i in range(count)] == [d.tolist() for d in docs]


def test_unsupported_dtype_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unsupported token dtype"):
        IndexedWriter(tmp_path / "x.bin", np.dtype(np.uint32))
