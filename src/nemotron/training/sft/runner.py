"""SFT as a composition: packed rows of an sft-data artifact, the packed objective, a starting model, the session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from nemotron.artifacts import FileRegistry
from nemotron.training.checkpoint.layout import CheckpointInfo
from nemotron.training.datasets.packed_sft import PACKED_BATCH_KEYS, PackedSftDataset
from nemotron.training.distributed.parallel import DistributedContext
from nemotron.training.engine.engines import Engine
from nemotron.training.engine.packed_objective import PackedSequenceObjective
from nemotron.training.model.lora_settings import LoraSettings
from nemotron.training.run.session import (
    DataRequest,
    FineTuneStart,
    RunIdentity,
    StageData,
    TrainingResult,
    rank_batches,
    run_training,
)
from nemotron.training.sft.answers import Answer, greedy_answers, held_out_prompts
from nemotron.training.sft.config import SftConfig, with_budget
from nemotron.training.sft.inputs import SftInputs


def packed_sft_data(cfg: SftConfig, inputs: SftInputs) -> Callable[[DataRequest], StageData]:
    """The data factory of SFT: the train split sampled epoch by epoch (seeded), the valid split in order."""

    def build(request: DataRequest) -> StageData:
        seq, batch = cfg.model.seq_length, cfg.train.global_batch_size
        train_file = inputs.split_file("train")
        assert train_file is not None  # train_rows() checked it before the run was planned
        train = PackedSftDataset(train_file, seq, request.plan.budget.train_iters * batch, cfg.train.seed)
        valid_file = inputs.split_file("valid")
        valid = (
            PackedSftDataset(valid_file, seq, cfg.train.eval_iters * batch, cfg.train.seed, shuffle=False)
            if valid_file is not None
            else None
        )
        return StageData(
            train_batches=lambda consumed: rank_batches(train, cfg.train, request, consumed, PACKED_BATCH_KEYS),
            valid_batches=(
                (lambda: rank_batches(valid, cfg.train, request, 0, PACKED_BATCH_KEYS)) if valid is not None else None
            ),
            ref=inputs.data.ref,
            tokenizer=inputs.tokenizer,
        )

    return build


def answers_report(cfg: SftConfig, inputs: SftInputs) -> Callable[[Engine, DistributedContext], list[Answer]] | None:
    """Greedy answers to the last assistant turn of held-out conversations (None: none asked or no such split)."""
    split_file = inputs.split_file(cfg.answers.split)
    if cfg.answers.count == 0 or split_file is None:
        return None

    def report(engine: Engine, context: DistributedContext) -> list[Answer]:
        from nemotron.data.packing import read_packed_parquet

        if context.pipeline > 1:
            return []
        prompts = held_out_prompts(read_packed_parquet(split_file), cfg.answers.count)
        return greedy_answers(
            engine.model_chunks[0],
            prompts,
            _decoder(inputs),
            vocab_size=cfg.model.vocab_size,
            max_length=cfg.model.seq_length,
            max_new_tokens=cfg.answers.max_new_tokens,
            device=context.device,
        )

    return report


def _decoder(inputs: SftInputs) -> Callable[[list[int]], str]:
    """Token ids to text with the data's tokenizer when its folder is here; else the ids themselves."""
    hf = inputs.hf_tokenizer()
    if hf is None:
        return lambda ids: " ".join(map(str, ids))
    return lambda ids: str(hf.decode(ids))


def run_sft(
    cfg: SftConfig,
    inputs: SftInputs,
    identity: RunIdentity,
    registry: FileRegistry,
    on_checkpoint: Callable[[CheckpointInfo], None] | None = None,
) -> TrainingResult:
    """Fine-tune in this process (one of torchrun's, or alone) from `resolve_inputs`; collective over all ranks."""
    cfg = with_budget(cfg, inputs.train_rows())
    return run_training(
        cfg,
        identity,
        registry,
        packed_sft_data(cfg, inputs),
        PackedSequenceObjective(),
        on_checkpoint,
        fine_tune=fine_tune_start(cfg, inputs),
        report=answers_report(cfg, inputs),
    )


def fine_tune_start(cfg: SftConfig, inputs: SftInputs) -> FineTuneStart:
    """Full fine-tuning from the starting weights, or LoRA adapters on them (checkpoints: adapters + their base)."""
    lora = cfg.peft.lora()
    if lora is None:
        return FineTuneStart(inputs.start)
    peft = {
        "kind": "lora",
        **asdict(lora),
        "base": inputs.start_source,
        "base_checkpoint": str(inputs.start.path),
    }
    return FineTuneStart(
        inputs.start,
        prepare_model=lambda model: _attach(model, lora, cfg.train.seed),
        metadata={"peft": peft},
        adapters_only=True,
    )


def _attach(model: Any, lora: LoraSettings, seed: int) -> None:
    from nemotron.training.model.lora import attach_lora

    adapters = attach_lora(model, lora, seed)
    import torch.distributed as dist

    if dist.is_initialized() and dist.get_rank() != 0:
        return
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"LoRA: {adapters} adapters of rank {lora.rank}, {trainable:,} of {total:,} parameters train", flush=True)
