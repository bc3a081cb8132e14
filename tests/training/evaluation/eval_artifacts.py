"""Tiny artifacts for the eval tests, made in-process: data over the tiny tokenizer, model checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from nemotron.artifacts import (
    Artifact,
    ArtifactKind,
    FileRegistry,
    Lineage,
    PretrainDataMeta,
    RecordCounts,
    RLDataMeta,
    SftDataMeta,
    TokenCounts,
    TokenizerInfo,
)
from nemotron.artifacts.kinds import LengthStats
from nemotron.training.model.config import ModelConfig

REPO = Path(__file__).resolve().parents[3]
TOKENIZER_DIR = REPO / "recipes/nano3/assets/tokenizer-tiny"
VOCAB = 8192  # the tiny tokenizer's
EOD = 0
TOKENIZER = TokenizerInfo(str(TOKENIZER_DIR), vocab_size=VOCAB, eod_id=EOD, backend="huggingface")
MODEL = ModelConfig(  # SwiGLU, RMSNorm, RoPE: exportable to Hugging Face
    num_layers=1,
    hidden_size=32,
    num_attention_heads=2,
    ffn_hidden_size=64,
    vocab_size=VOCAB,
    seq_length=64,
    make_vocab_size_divisible_by=128,
    precision="fp32",
)
PACK = 48  # sft rows' length


def _publish(registry: FileRegistry, staging, kind: ArtifactKind, metadata, files: dict[str, str]) -> Artifact:
    return registry.publish(staging, kind=kind, lineage=Lineage(stage="test"), metadata=metadata, files=files)


def publish_pretrain_data(registry: FileRegistry, name: str, splits: dict[str, list[list[int]]]) -> Artifact:
    """A pretrain-data artifact: one bin/idx file per split (documents of token ids), blend.json."""
    from nemotron.data.indexed_writer import IndexedWriter
    from nemotron.data.megatron_blend import write_blend

    with registry.staging(name) as staging:
        for split, documents in splits.items():
            writer = IndexedWriter(staging.path / f"{split}.bin", np.dtype(np.uint16))
            for document in documents:
                writer.add_document(np.asarray(document))
            writer.finalize(staging.path / f"{split}.idx")
        write_blend(staging.path / "blend.json", {split: [(1.0, split)] for split in splits})
        tokens = {split: sum(map(len, documents)) for split, documents in splits.items()}
        counts = {split: TokenCounts(len(splits[split]), n, 2 * n) for split, n in tokens.items()}
        meta = PretrainDataMeta(dtype="uint16", splits=counts, tokenizer=TOKENIZER)
        return _publish(registry, staging, ArtifactKind.PRETRAIN_DATA, meta, {"blend": "blend.json"})


def packed_row(*documents: tuple[list[int], list[int]]):
    """One packed row of `documents` (token ids, loss mask) laid end to end."""
    from nemotron.data.packing import PackedRow

    ids = np.concatenate([np.asarray(d[0], dtype=np.int32) for d in documents])
    mask = np.concatenate([np.asarray(d[1], dtype=np.uint8) for d in documents])
    starts = np.cumsum([0] + [len(d[0]) for d in documents[:-1]]).astype(np.int32)
    return PackedRow(ids, mask, starts)


def publish_sft_data(registry: FileRegistry, name: str, rows: list, split: str = "test") -> Artifact:
    """An sft-data artifact holding packed `rows` (PackedRow) as `split`."""
    from nemotron.data.packing import write_packed_parquet

    with registry.staging(name) as staging:
        write_packed_parquet(rows, staging.path / f"{split}.parquet")
        counts = {split: RecordCounts(len(rows))}
        meta = SftDataMeta("packed-parquet", len(rows), tokenizer=TOKENIZER, splits=counts, seq_length=PACK)
        return _publish(registry, staging, ArtifactKind.SFT_DATA, meta, {split: f"{split}.parquet"})


def publish_rl_data(registry: FileRegistry, name: str, records: list[dict], split: str = "test") -> Artifact:
    """An rl-data artifact holding prompt `records` (prompt_ids, expected_answer, verifier) as `split`."""
    with registry.staging(name) as staging:
        lines = [json.dumps({"id": f"p{i}", "metadata": {}, **record}) for i, record in enumerate(records)]
        (staging.path / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        lengths = [len(record["prompt_ids"]) for record in records]
        verifiers: dict[str, int] = {}
        for record in records:
            verifiers[record["verifier"]] = verifiers.get(record["verifier"], 0) + 1
        meta = RLDataMeta(
            "jsonl-prompts",
            len(records),
            tokenizer=TOKENIZER,
            splits={split: RecordCounts(len(records))},
            verifiers=verifiers,
            prompt_tokens=LengthStats(sum(lengths) / len(lengths), max(lengths)),
        )
        return _publish(registry, staging, ArtifactKind.RL_DATA, meta, {split: f"{split}.jsonl"})


def random_model(seed: int, config: ModelConfig = MODEL) -> torch.nn.Module:
    """A GPTModel with random weights (needs the `dist` fixture's process group)."""
    from nemotron.training.model.build import build_model
    from nemotron.training.model.config import ParallelConfig

    torch.manual_seed(seed)
    return build_model(config, ParallelConfig(), "cpu").eval()


def save_model(model: torch.nn.Module, root: Path, config: ModelConfig = MODEL):
    """`model` as a nemotron checkpoint root/iter_0000000 (what `model import hf` writes); its CheckpointInfo."""
    from nemotron.training.checkpoint.store import save_checkpoint
    from nemotron.training.loop.training_loop import TrainState

    metadata = {
        "run_name": root.name,
        "stage": "test",
        "model": dataclasses.asdict(config),
        "parallelism": {"tensor": 1, "pipeline": 1, "context": 1, "data": 1, "expert": 1},
        "train_state": TrainState().to_dict(),
        "tokenizer": TOKENIZER.to_dict(),
    }
    return save_checkpoint(root, 0, {"model": model.sharded_state_dict()}, metadata, keep_last=None)


def publish_model(
    registry: FileRegistry, name: str, model: torch.nn.Module, work: Path, config: ModelConfig = MODEL
) -> Artifact:
    """`model` saved and published as the next version of model-checkpoint artifact `name`."""
    from nemotron.stages.model_publish import publish_model_checkpoint
    from nemotron.stages.runtime import JobContext

    info = save_model(model, work / name, config)
    context = JobContext(job_name=None, job_id=None, config_sha256="test", git_commit=None)
    return publish_model_checkpoint(registry, [], name, info.path, info.metadata, context, "test", loss=None)
