"""Pretraining as a composition: GPT samples from a pretrain-data artifact, the next-token objective, the session."""

from __future__ import annotations

from collections.abc import Callable

from nemotron.artifacts import FileRegistry
from nemotron.artifacts.kinds import TokenizerInfo
from nemotron.training.checkpoint.layout import CheckpointInfo
from nemotron.training.datasets.gpt import GPTDatasets, TrainingDataConfig, TrainingDataError, build_datasets
from nemotron.training.engine.objective import NextTokenObjective
from nemotron.training.pretrain.config import PretrainConfig
from nemotron.training.run.session import (
    DataRequest,
    RunIdentity,
    StageData,
    TrainingResult,
    rank_batches,
    run_training,
)


def _data_config(cfg: PretrainConfig, request: DataRequest) -> TrainingDataConfig:
    train = cfg.train
    return TrainingDataConfig(
        seq_length=cfg.model.seq_length,
        seed=train.seed,
        global_batch_size=train.global_batch_size,
        micro_batch_size=train.micro_batch_size,
        train_iters=request.plan.budget.train_iters,
        valid_iters=train.eval_iters,
        cache_dir=str(request.run_dir / "data-cache"),
        artifact_ref=cfg.run.data,
        num_workers=train.num_workers,
        iters_keys={"train": "train.train_iters", "valid": "train.eval_iters"},
    )


def _check_vocab(cfg: PretrainConfig, datasets: GPTDatasets) -> None:
    ids = datasets.source.token_ids
    if ids is not None and ids.vocab_size > cfg.model.vocab_size:
        raise TrainingDataError(
            f"model.vocab_size is {cfg.model.vocab_size} but {datasets.source.description} was tokenized with a "
            f"vocabulary of {ids.vocab_size}; set model.vocab_size: {ids.vocab_size} "
            "(recipes use ${art:data,metadata.tokenizer.vocab_size})"
        )


def _tokenizer_info(cfg: PretrainConfig, registry: FileRegistry, datasets: GPTDatasets) -> TokenizerInfo | None:
    if cfg.tokenizer:
        return TokenizerInfo(name_or_path=cfg.tokenizer, backend="huggingface")
    if datasets.source.ref is None:
        return None
    return registry.resolve(datasets.source.ref).tokenizer()


def gpt_data(cfg: PretrainConfig) -> Callable[[DataRequest], StageData]:
    """The data factory of pretraining: megatron GPTDatasets over the artifact's blend, resumable per rank."""

    def build(request: DataRequest) -> StageData:
        datasets = build_datasets(_data_config(cfg, request), registry=request.registry)
        _check_vocab(cfg, datasets)
        valid = datasets.valid
        return StageData(
            train_batches=lambda consumed: rank_batches(datasets.train, cfg.train, request, consumed),
            valid_batches=(lambda: rank_batches(valid, cfg.train, request, 0)) if valid is not None else None,
            ref=datasets.source.ref,
            tokenizer=_tokenizer_info(cfg, request.registry, datasets),
        )

    return build


def run_pretraining(
    cfg: PretrainConfig,
    identity: RunIdentity,
    registry: FileRegistry,
    on_checkpoint: Callable[[CheckpointInfo], None] | None = None,
) -> TrainingResult:
    """Pretrain `cfg` in this process (one of torchrun's, or alone); collective over all ranks."""
    return run_training(cfg, identity, registry, gpt_data(cfg), NextTokenObjective(), on_checkpoint)
