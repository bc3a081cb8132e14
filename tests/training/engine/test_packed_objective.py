"""Packed SFT rows on a real megatron-core GPTModel: a packed batch's loss is the sum of its documents' own losses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nemotron.data.packing import PackedRow
from nemotron.training.datasets.gpt import TrainingDataError
from nemotron.training.datasets.packed_sft import PAD_DOCUMENT, layout_row
from nemotron.training.engine.objective import NextTokenObjective
from nemotron.training.engine.packed_objective import (
    PackedSequenceObjective,
    block_causal_mask,
    document_boundaries,
)
from nemotron.training.model.build import build_model
from nemotron.training.model.config import ModelConfig, ParallelConfig

MODEL = ModelConfig(
    num_layers=2,
    hidden_size=64,
    num_attention_heads=4,
    num_query_groups=2,
    ffn_hidden_size=128,
    vocab_size=256,
    seq_length=24,
    make_vocab_size_divisible_by=128,
)


def row(*documents: tuple[list[int], list[int]]) -> PackedRow:
    ids = np.concatenate([np.asarray(d[0], dtype=np.int32) for d in documents])
    mask = np.concatenate([np.asarray(d[1], dtype=np.uint8) for d in documents])
    starts = np.cumsum([0] + [len(d[0]) for d in documents[:-1]]).astype(np.int32)
    return PackedRow(ids, mask, starts)


def test_labels_and_mask_shift_within_each_document_only():
    laid = layout_row(row(([5, 6, 7], [0, 1, 1]), ([8, 9], [0, 1])), seq_length=8)
    assert laid.tokens.tolist() == [5, 6, 7, 8, 9, 0, 0, 0]
    assert laid.labels[:5].tolist() == [6, 7, 0, 9, 0]  # the last token of a document predicts nothing
    assert laid.loss_mask.tolist() == [1, 1, 0, 1, 0, 0, 0, 0]  # label 8 (next document) is never a target
    assert laid.position_ids[:5].tolist() == [0, 1, 2, 0, 1]
    assert laid.document_ids.tolist() == [0, 0, 0, 1, 1, PAD_DOCUMENT, PAD_DOCUMENT, PAD_DOCUMENT]


def test_a_row_longer_than_the_model_sequence_is_refused_with_the_fix():
    with pytest.raises(TrainingDataError, match=r"pack_size <= 4"):
        layout_row(row(([1, 2, 3, 4, 5], [1, 1, 1, 1, 1])), seq_length=4)


def test_block_causal_mask_keeps_documents_apart():
    mask = block_causal_mask(torch.tensor([[0, 0, 1, 1, -1]]))
    allowed = (~mask[0, 0]).int().tolist()
    assert allowed == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1],
    ]


def test_thd_boundaries_end_every_document_and_every_row():
    ids = torch.tensor([[0, 0, 1, -1], [0, 0, 0, 0]])
    assert document_boundaries(ids).tolist() == [0, 2, 3, 4, 8]
    same_ids_across_rows = torch.tensor([[0, 0], [0, 0]])
    assert document_boundaries(same_ids_across_rows).tolist() == [0, 2, 4]


def _documents(seed: int) -> list[tuple[list[int], list[int]]]:
    rng = np.random.default_rng(seed)
    docs = []
    for length in (7, 5, 9, 3):
        ids = rng.integers(1, 250, length).tolist()
        mask = [0] * (length // 2) + [1] * (length - length // 2)
        docs.append((ids, mask))
    return docs


def _alone_loss(model, ids: list[int], mask: list[int]) -> tuple[float, int]:
    """The document by itself, unpacked, through the plain causal next-token objective."""
    tokens = torch.tensor([ids[:-1]])
    batch = {
        "tokens": tokens,
        "labels": torch.tensor([ids[1:]]),
        "position_ids": torch.arange(tokens.shape[1])[None],
        "loss_mask": torch.tensor([mask[1:]], dtype=torch.float32),
    }
    objective = NextTokenObjective()
    total, count, _ = objective.loss(batch, objective.forward(model, batch))
    return float(total), int(count)


@pytest.mark.parametrize("position_embedding", ["rope", "learned_absolute"])
def test_packed_loss_equals_the_sum_of_the_documents_losses(dist, position_embedding):
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(MODEL, position_embedding=position_embedding), ParallelConfig(), "cpu")
    model.eval()
    docs = _documents(1)
    rows = [row(docs[0], docs[1]), row(docs[2], docs[3])]  # 12 and 12 tokens, padded to 24
    laid = [layout_row(r, MODEL.seq_length) for r in rows]
    batch = {key: torch.from_numpy(np.stack([getattr(s, key) for s in laid])) for key in laid[0].__dataclass_fields__}
    objective = PackedSequenceObjective(thd=False)
    with torch.no_grad():
        total, count, report = objective.loss(batch, objective.forward(model, batch))
        alone = [_alone_loss(model, ids, mask) for ids, mask in docs]
    assert int(count) == sum(c for _, c in alone) == sum(sum(m[1:]) for _, m in docs)
    assert float(total) == pytest.approx(sum(t for t, _ in alone), rel=1e-5)
    assert report["lm loss"].tolist() == pytest.approx([float(total), float(count)])

    # without the block-diagonal mask (plain causal attention across the row) the losses differ
    with torch.no_grad():
        crossing = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])
    leaked = float((crossing * batch["loss_mask"]).sum())
    assert abs(leaked - float(total)) > 1e-3
