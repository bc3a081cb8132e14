"""One training run end to end: processes, data, engine, resume, the loop, checkpoints and a final sample."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from megatron.core import parallel_state

from nemotron.artifacts import FileRegistry
from nemotron.artifacts.kinds import TokenizerInfo
from nemotron.training.budget import BatchConfig, ResolvedBudget, TrainBudget, accumulation_steps, resolve_budget
from nemotron.training.checkpoint import CheckpointInfo, rng_sharded_state, save_checkpoint
from nemotron.training.data import GPTDatasets, TrainingDataConfig, TrainingDataError, build_datasets
from nemotron.training.data_position import MicroBatchIterator
from nemotron.training.divergence import DivergenceGuard
from nemotron.training.engine import Engine, build_engine
from nemotron.training.flops import mfu
from nemotron.training.loop import LoopSettings, TrainingLoop, TrainState
from nemotron.training.lr_schedules import LRScheduler
from nemotron.training.metrics import MetricsLogger
from nemotron.training.model_config import parameter_count
from nemotron.training.parallel import DistributedContext, destroy_distributed, init_distributed
from nemotron.training.preemption import PreemptionWatcher, should_stop_all
from nemotron.training.resume import model_architecture, restore, start_checkpoint
from nemotron.training.run_config import TrainingRunConfig, checkpoint_dir, run_dir


@dataclass(frozen=True)
class RunIdentity:
    """Who runs the training (for checkpoint metadata and W&B): job name and config hash."""

    stage: str
    job_name: str | None
    config_sha256: str


@dataclass(frozen=True)
class TrainingResult:
    """What a run leaves behind, as seen by global rank 0."""

    state: TrainState
    finished: bool
    stop_reason: str | None
    requeue: bool  # the stop asked for the job to be requeued (Slurm time-limit warning)
    checkpoint: CheckpointInfo | None  # the newest checkpoint of the run
    sample: str | None
    is_main: bool


def _say(context: DistributedContext, message: str) -> None:
    if context.is_main:
        print(message, flush=True)


def _data_config(cfg: TrainingRunConfig, budget: ResolvedBudget, cache_dir: Path) -> TrainingDataConfig:
    train = cfg.train
    return TrainingDataConfig(
        seq_length=cfg.model.seq_length,
        seed=train.seed,
        global_batch_size=train.global_batch_size,
        micro_batch_size=train.micro_batch_size,
        train_samples=budget.train_iters * train.global_batch_size,
        valid_samples=train.eval_iters * train.global_batch_size,
        cache_dir=str(cache_dir),
        artifact_ref=cfg.run.data,
        num_workers=train.num_workers,
    )


def _check_vocab(cfg: TrainingRunConfig, datasets: GPTDatasets) -> None:
    ids = datasets.source.token_ids
    if ids is not None and ids.vocab_size > cfg.model.vocab_size:
        raise TrainingDataError(
            f"model.vocab_size is {cfg.model.vocab_size} but {datasets.source.description} was tokenized with a "
            f"vocabulary of {ids.vocab_size}; set model.vocab_size: {ids.vocab_size} "
            "(recipes use ${art:data,metadata.tokenizer.vocab_size})"
        )


def _tokenizer_info(cfg: TrainingRunConfig, registry: FileRegistry, datasets: GPTDatasets) -> TokenizerInfo | None:
    if cfg.tokenizer:
        return TokenizerInfo(name_or_path=cfg.tokenizer, backend="huggingface")
    if datasets.source.ref is None:
        return None
    return registry.resolve(datasets.source.ref).typed_metadata().tokenizer


def _batches(dataset: Any, cfg: TrainingRunConfig, context: DistributedContext, consumed: int) -> MicroBatchIterator:
    return MicroBatchIterator(dataset, cfg.train.micro_batch_size, parallel_state.get_data_parallel_rank(),
                              context.data, consumed, global_batch_size=cfg.train.global_batch_size,
                              num_workers=cfg.train.num_workers)


def _throughput(cfg: TrainingRunConfig, context: DistributedContext) -> Callable[[float], dict[str, float]]:
    if context.device.type != "cuda":
        return lambda tokens_per_second: {}
    name = torch.cuda.get_device_name(context.device)
    return lambda tokens_per_second: {"mfu": mfu(tokens_per_second / context.world_size, cfg.model, name)}


def _checkpoint_metadata(cfg: TrainingRunConfig, identity: RunIdentity, context: DistributedContext,
                         state: TrainState, scheduler: LRScheduler, data_ref: str | None,
                         tokenizer: TokenizerInfo | None, budget: ResolvedBudget) -> dict[str, Any]:
    return {
        "run_name": cfg.run_name,
        "stage": identity.stage,
        "job_name": identity.job_name,
        "config_sha256": identity.config_sha256,
        "model": model_architecture(cfg),  # what a resume compares the config against
        "parallelism": _parallelism(context),
        "train_state": state.to_dict(),
        "scheduler": scheduler.state_dict(),
        "train_iters": budget.train_iters,
        "data": data_ref,
        "tokenizer": tokenizer.to_dict() if tokenizer else None,
    }


def _parallelism(context: DistributedContext) -> dict[str, int]:
    return {"world_size": context.world_size, "tensor": context.tensor, "pipeline": context.pipeline,
            "context": context.context, "data": context.data, "expert": context.expert}


def sample_text(engine: Engine, cfg: TrainingRunConfig, tokenizer: TokenizerInfo | None,
                context: DistributedContext) -> str | None:
    """A greedy continuation of `sample.prompt`, when a local tokenizer folder is known (pipeline size 1)."""
    if cfg.sample.tokens <= 0 or tokenizer is None or context.pipeline > 1 or not Path(tokenizer.name_or_path).is_dir():
        return None
    from transformers import AutoTokenizer

    from nemotron.training.generate import greedy_tokens

    hf = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    prompt = hf.encode(cfg.sample.prompt, add_special_tokens=False)
    new = greedy_tokens(engine.model_chunks[0], prompt, cfg.sample.tokens, vocab_size=cfg.model.vocab_size,
                        max_length=cfg.model.seq_length, device=context.device, stop_id=tokenizer.eod_id)
    return hf.decode(prompt + new)


def run_training(cfg: TrainingRunConfig, identity: RunIdentity, registry: FileRegistry,
                 on_checkpoint: Callable[[CheckpointInfo], None] | None = None) -> TrainingResult:
    """Train `cfg` in this process (one of torchrun's, or alone); collective over all ranks."""
    context = init_distributed(cfg.parallel, seed=cfg.train.seed)
    logger = None
    try:
        parallel = _parallelism(context)
        _say(context, "processes: " + ", ".join(f"{k} {v}" for k, v in parallel.items()) + f" on {context.device.type}")
        num_parameters = parameter_count(cfg.model, tensor_parallel=1)
        batch = BatchConfig(cfg.train.global_batch_size, cfg.train.micro_batch_size, cfg.model.seq_length)
        budget = resolve_budget(TrainBudget(cfg.train.train_iters, cfg.train.total_tokens,
                                            cfg.train.tokens_per_parameter), batch, num_parameters)
        micro_batches = accumulation_steps(batch, context.data)
        _say(context, f"model: {num_parameters:,} parameters; {budget.describe()}; "
                      f"{micro_batches} micro-batch(es) of {cfg.train.micro_batch_size} per rank per step")
        folder = run_dir(cfg, registry.root)
        datasets = build_datasets(_data_config(cfg, budget, folder / "data-cache"), registry=registry)
        _check_vocab(cfg, datasets)
        tokenizer = _tokenizer_info(cfg, registry, datasets)
        engine = build_engine(cfg.model, cfg.parallel, cfg.optimizer, context, cfg.train.micro_batch_size)
        root = checkpoint_dir(cfg, registry.root)
        start = start_checkpoint(cfg, root)
        state = TrainState()
        if start is not None:
            state, _ = restore(engine, start, cfg)
            _say(context, f"resumed from {start.path} (step {state.iteration}, {state.consumed_samples:,} samples, "
                          f"{state.tokens_seen:,} tokens seen)")
        scheduler = LRScheduler(engine.optimizer, cfg.lr, budget.train_iters,
                                global_batch_size=cfg.train.global_batch_size, start_step=state.iteration)
        logger = MetricsLogger(is_main=context.is_main, tensorboard_dir=folder / "tensorboard",
                               total_steps=budget.train_iters, progress_bar=cfg.logging.progress_bar,
                               use_wandb=cfg.logging.wandb, run_name=cfg.run_name,
                               config={"model": asdict(cfg.model), "train": asdict(cfg.train)})
        watcher = PreemptionWatcher()
        watcher.install()
        saved: list[CheckpointInfo] = []

        def save(current: TrainState) -> None:
            metadata = _checkpoint_metadata(cfg, identity, context, current, scheduler, datasets.source.ref,
                                            tokenizer, budget)
            info = save_checkpoint(root, current.iteration, {**engine.sharded_state_dict(), "rng": rng_sharded_state()},
                                   metadata, keep_last=cfg.checkpoint.keep_last)
            saved.append(info)
            logger.say(f"saved checkpoint {info.path}")
            intermediate = current.iteration < budget.train_iters  # the stage publishes the final one itself
            if on_checkpoint is not None and cfg.checkpoint.publish_intermediate and intermediate and context.is_main:
                on_checkpoint(info)

        loop = TrainingLoop(
            engine, scheduler,
            LoopSettings(budget.train_iters, cfg.train.global_batch_size, micro_batches, cfg.train.log_interval,
                         cfg.train.eval_interval, cfg.train.eval_iters, cfg.checkpoint.save_interval),
            logger, DivergenceGuard(cfg.guard),
            train_batches=_batches(datasets.train, cfg, context, state.consumed_samples),
            valid_batches=(lambda: _batches(datasets.valid, cfg, context, 0)) if datasets.valid is not None else None,
            save=save,
            stop_requested=lambda: watcher.reason if should_stop_all(watcher) else None,
            throughput=_throughput(cfg, context),
        )
        outcome = loop.run(state)
        if outcome.finished and (start is None or start.iteration != state.iteration) and outcome.saved_at != state.iteration:
            save(state)
        newest = saved[-1] if saved else start
        sample = sample_text(engine, cfg, tokenizer, context) if outcome.finished else None
        return TrainingResult(
            state=state, finished=outcome.finished, stop_reason=outcome.stop_reason,
            requeue=bool(outcome.stop_reason) and watcher.should_requeue, checkpoint=newest,
            sample=sample, is_main=context.is_main,
        )
    finally:
        if logger is not None:
            logger.close()
        destroy_distributed()
