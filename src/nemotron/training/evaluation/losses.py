"""Held-out token losses: perplexity on a pretrain-data split, masked loss on an sft-data split's packed rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nemotron.artifacts import FileRegistry
from nemotron.training.datasets.gpt import TrainingDataConfig, build_datasets
from nemotron.training.datasets.packed_sft import PACKED_BATCH_KEYS, PackedSftDataset
from nemotron.training.datasets.position import BATCH_KEYS, collate_samples
from nemotron.training.engine.engines import EvalResult
from nemotron.training.engine.objective import Batch, NextTokenObjective, Objective
from nemotron.training.engine.packed_objective import PackedSequenceObjective
from nemotron.training.evaluation.config import PerplexitySection, SftLossSection


@dataclass(frozen=True)
class HeldOutBatches:
    """The same micro-batches for every model (`batches()` starts over), and the objective that scores them."""

    batches: Callable[[], Iterator[Batch]]
    objective: Objective
    samples: int  # sequences (or packed rows) per pass


def micro_batches(dataset: Any, count: int, micro_batch_size: int, keys: tuple[str, ...]) -> Iterator[Batch]:
    """Samples 0 .. count-1 of `dataset` in order, `micro_batch_size` at a time (the last batch may be smaller)."""
    for start in range(0, count, micro_batch_size):
        yield collate_samples([dataset[index] for index in range(start, min(start + micro_batch_size, count))], keys)


@torch.no_grad()
def mean_token_loss(model: torch.nn.Module, held_out: HeldOutBatches, device: torch.device) -> EvalResult:
    """The objective's loss summed over every counted token of the batches, divided by their number."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    try:
        for batch in held_out.batches():
            moved = {key: value.to(device) for key, value in batch.items() if value is not None}
            loss_sum, count, _ = held_out.objective.loss(moved, held_out.objective.forward(model, moved))
            total += float(loss_sum)
            tokens += int(count)
    finally:
        model.train(was_training)
    return EvalResult(loss=total / tokens if tokens else float("nan"), tokens=tokens)


def pretrain_batches(
    section: PerplexitySection, data_ref: str, seq_length: int, seed: int, cache_dir: Path, registry: FileRegistry
) -> HeldOutBatches:
    """`section.batches` micro-batches of `seq_length` tokens from `section.split` of a pretrain-data artifact
    (megatron's GPTDataset, sample order fixed by `seed`), scored by next-token loss."""
    iters = {split: section.batches if split == section.split else 0 for split in ("train", "valid", "test")}
    data = TrainingDataConfig(
        seq_length=seq_length,
        seed=seed,
        global_batch_size=section.micro_batch_size,
        micro_batch_size=section.micro_batch_size,
        train_iters=iters["train"],
        valid_iters=iters["valid"],
        test_iters=iters["test"],
        cache_dir=str(cache_dir),
        artifact_ref=data_ref,
        iters_keys={section.split: "perplexity.batches"},
    )
    dataset = build_datasets(data, registry=registry).split(section.split)
    count = section.batches * section.micro_batch_size
    return HeldOutBatches(
        lambda: micro_batches(dataset, count, section.micro_batch_size, BATCH_KEYS), NextTokenObjective(), count
    )


def sft_batches(section: SftLossSection, split_file: Path, seq_length: int) -> HeldOutBatches:
    """The packed rows of an sft-data split file in order (the first `section.rows`, or all), scored by the
    loss on assistant tokens with attention kept inside each conversation."""
    import pyarrow.parquet as pq

    rows = int(pq.ParquetFile(split_file).metadata.num_rows)  # 0: PackedSftDataset says what to do
    count = min(rows, section.rows) if section.rows is not None else rows
    dataset = PackedSftDataset(split_file, seq_length, count, seed=0, shuffle=False)
    return HeldOutBatches(
        lambda: micro_batches(dataset, count, section.micro_batch_size, PACKED_BATCH_KEYS),
        PackedSequenceObjective(),
        count,
    )
