"""One training run end to end, for any stage: processes, the stage's data and objective, engine, resume, loop, saves.

A stage supplies what differs (`DataFactory`: its batches; `Objective`: its forward pass and loss);
everything else here is shared, so pretraining, SFT and RL run, save, resume and stop alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from nemotron.artifacts import FileRegistry
from nemotron.artifacts.kinds import TokenizerInfo
from nemotron.errors import NemotronError
from nemotron.lease import Lease, take_lease
from nemotron.storage_errors import storage_error
from nemotron.training.checkpoint.layout import CheckpointInfo
from nemotron.training.checkpoint.rng import rng_sharded_state
from nemotron.training.checkpoint.store import save_checkpoint
from nemotron.training.datasets.position import BATCH_KEYS, MicroBatchIterator
from nemotron.training.distributed.parallel import DistributedContext, destroy_distributed, init_distributed
from nemotron.training.distributed.preemption import PreemptionWatcher, should_stop_all
from nemotron.training.engine.engines import Engine, build_engine
from nemotron.training.engine.objective import Batch, Objective
from nemotron.training.errors import TrainingError
from nemotron.training.loop.divergence import DivergenceGuard
from nemotron.training.loop.metrics import MetricsLogger
from nemotron.training.loop.training_loop import LoopSettings, TrainingLoop, TrainState
from nemotron.training.model.flops import mfu
from nemotron.training.model.precision import describe_precision
from nemotron.training.optim.lr_schedules import LRScheduler
from nemotron.training.run.config import TrainingRunConfig, TrainSection, checkpoint_dir, run_dir
from nemotron.training.run.plan import RunPlan, plan_run
from nemotron.training.run.resume import load_weights, model_architecture, restore, start_checkpoint


class RunFolderBusy(TrainingError):
    """Another process holds the run folder's lease: two processes of one run would corrupt its checkpoints."""


@dataclass(frozen=True)
class RunIdentity:
    """Who runs the training (for checkpoint metadata and W&B): stage, job name and config hash."""

    stage: str
    job_name: str | None
    config_sha256: str


@dataclass(frozen=True)
class DataRequest:
    """What a stage's data factory is told: the run's plan, its folder, this process's place and the registry."""

    plan: RunPlan
    run_dir: Path
    context: DistributedContext
    registry: FileRegistry
    model: Callable[[], torch.nn.Module]  # this rank's model, once built (for stages that sample from it)


@dataclass(frozen=True)
class StageData:
    """A stage's batches for this rank, and where they came from (lineage, checkpoint metadata, sampling)."""

    train_batches: Callable[[int], Iterator[Batch]]  # micro-batches from a consumed-samples position on
    valid_batches: Callable[[], Iterator[Batch]] | None  # the same validation batches each call; None: no split
    ref: str | None  # the data artifact, pinned
    tokenizer: TokenizerInfo | None
    step_metrics: Callable[[], dict[str, float]] | None = None  # the stage's own metrics after each step
    evaluate_metrics: Callable[[], dict[str, float]] | None = None  # its own evaluation (collective)


DataFactory = Callable[[DataRequest], StageData]


def rank_batches(
    dataset: Any, train: TrainSection, request: DataRequest, consumed: int, keys: tuple[str, ...] = BATCH_KEYS
) -> MicroBatchIterator:
    """This data-parallel rank's micro-batches of `dataset` from the `consumed` samples position on."""
    from megatron.core import parallel_state

    return MicroBatchIterator(
        dataset,
        train.micro_batch_size,
        parallel_state.get_data_parallel_rank(),
        request.context.data,
        consumed,
        global_batch_size=train.global_batch_size,
        num_workers=train.num_workers,
        keys=keys,
    )


@dataclass(frozen=True)
class FineTuneStart:
    """A run that starts from another model's weights (SFT, RL) rather than from scratch.

    `weights`: loaded into a new run (fresh optimizer, schedule and data position); `prepare_model`
    changes the built model before its optimizer is made (e.g. attaches LoRA adapters); `metadata`
    goes into every checkpoint (e.g. the adapters' settings and base). `adapters_only`: the run's
    checkpoints hold only what `prepare_model` added, so a resume loads `weights` first.
    """

    weights: CheckpointInfo
    prepare_model: Callable[[torch.nn.Module], None] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    adapters_only: bool = False


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
    report: Any = None  # what the stage's `report` returned after training (a finished run only)
    report_at_start: Any = None  # what it returned before the first step (a new run only, not a resumed one)


def _say(context: DistributedContext, message: str) -> None:
    if context.is_main:
        print(message, flush=True)


def _throughput(cfg: TrainingRunConfig, context: DistributedContext) -> Callable[[float], dict[str, float]]:
    if context.device.type != "cuda":
        return lambda tokens_per_second: {}
    name = torch.cuda.get_device_name(context.device)

    def utilisation(tokens_per_second: float) -> dict[str, float]:
        value = mfu(tokens_per_second / context.world_size, cfg.model, name)
        return {} if value is None else {"mfu": value}

    return utilisation


def _parallelism(context: DistributedContext) -> dict[str, int]:
    return {
        "world_size": context.world_size,
        "tensor": context.tensor,
        "pipeline": context.pipeline,
        "context": context.context,
        "data": context.data,
        "expert": context.expert,
    }


def _checkpoint_metadata(
    cfg: TrainingRunConfig,
    identity: RunIdentity,
    context: DistributedContext,
    state: TrainState,
    scheduler: LRScheduler,
    data: StageData,
    plan: RunPlan,
) -> dict[str, Any]:
    return {
        "run_name": cfg.run_name,
        "stage": identity.stage,
        "job_name": identity.job_name,
        "config_sha256": identity.config_sha256,
        "model": model_architecture(cfg.model),  # what a resume compares the config against
        "parallelism": _parallelism(context),
        "train_state": state.to_dict(),
        "scheduler": scheduler.state_dict(),
        "train_iters": plan.budget.train_iters,
        "data": data.ref,
        "tokenizer": data.tokenizer.to_dict() if data.tokenizer else None,
    }


def sample_text(
    engine: Engine, cfg: TrainingRunConfig, tokenizer: TokenizerInfo | None, context: DistributedContext
) -> str | None:
    """A greedy continuation of `sample.prompt`, when a local tokenizer folder is known (pipeline size 1)."""
    if cfg.sample.tokens <= 0 or tokenizer is None or context.pipeline > 1 or not Path(tokenizer.name_or_path).is_dir():
        return None
    from transformers import AutoTokenizer

    from nemotron.training.model.generate import greedy_tokens

    hf = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    prompt = hf.encode(cfg.sample.prompt, add_special_tokens=False)
    new = greedy_tokens(
        engine.model_chunks[0],
        prompt,
        cfg.sample.tokens,
        vocab_size=cfg.model.vocab_size,
        max_length=cfg.model.seq_length,
        device=context.device,
        stop_id=tokenizer.eod_id,
    )
    return str(hf.decode(prompt + new))


def _take_run_leases(cfg: TrainingRunConfig, folders: list[Path], context: DistributedContext) -> list[Lease]:
    """Rank 0 takes the lease on each folder; every rank fails together when one is held or cannot be
    written (collective)."""
    leases: list[Lease] = []
    refusal: NemotronError | None = None
    if context.is_main:
        folder = folders[0]
        try:
            for folder in folders:
                leases.append(take_lease(folder, what=f"training run {cfg.run_name!r}", error=RunFolderBusy))
        except RunFolderBusy as err:
            refusal = err
        except OSError as err:  # a read-only or full folder
            setting = "checkpoint.dir" if folder != folders[0] else "NEMOTRON_ARTIFACTS_ROOT (runs/ is beside it)"
            refusal = storage_error(err, "the training run", folder, setting) or RunFolderBusy(
                f"cannot take the lease on training run {cfg.run_name!r} {folder}: {err}"
            )
    if context.world_size > 1:
        shared = [refusal]
        torch.distributed.broadcast_object_list(shared, src=0)
        refusal = shared[0]
    if refusal is not None:
        for lease in leases:
            lease.release()
        raise refusal
    return leases


def run_training(
    cfg: TrainingRunConfig,
    identity: RunIdentity,
    registry: FileRegistry,
    data_factory: DataFactory,
    objective: Objective,
    on_checkpoint: Callable[[CheckpointInfo], None] | None = None,
    fine_tune: FineTuneStart | None = None,
    report: Callable[[Engine, DistributedContext], Any] | None = None,
) -> TrainingResult:
    """Train `cfg` on the stage's data with its objective in this process (one of torchrun's, or alone); collective.

    `fine_tune`: the weights a new run starts from (a run resuming its own checkpoint does not load them,
    unless its checkpoints hold adapters only) and what it changes on the model.
    `report`: called on every rank with the engine before a new run's first step and once training finished
    (e.g. held-out answers before and after fine-tuning).
    """
    context = init_distributed(cfg.parallel, seed=cfg.train.seed)
    logger = None
    leases: list[Lease] = []
    try:
        folder = run_dir(cfg, registry.root)
        root = checkpoint_dir(cfg, registry.root)
        # One process of a run at a time, before anything reads or writes the run's folder or checkpoints.
        outside = root.resolve() != folder and folder not in root.resolve().parents
        leases = _take_run_leases(cfg, [folder, root] if outside else [folder], context)
        parallel = _parallelism(context)
        _say(
            context,
            "processes: " + ", ".join(f"{k} {v}" for k, v in parallel.items()) + f" on {context.device.type}, "
            f"precision {describe_precision(cfg.model, context.device)}",
        )
        plan = plan_run(cfg.model, cfg.train, context.data)
        train_iters = plan.budget.train_iters
        _say(
            context,
            f"model: {plan.num_parameters:,} parameters; {plan.budget.describe()}; "
            f"{plan.micro_batches} micro-batch(es) of {cfg.train.micro_batch_size} per rank per step",
        )
        built: list[Engine] = []

        def built_model() -> torch.nn.Module:
            if not built:
                raise TrainingError("the model is built after the stage's data: sample from it once training runs")
            return built[0].unwrapped_model()

        data = data_factory(DataRequest(plan, folder, context, registry, built_model))
        prepare = fine_tune.prepare_model if fine_tune is not None else None
        engine = build_engine(
            cfg.model, cfg.parallel, cfg.optimizer, context, cfg.train.micro_batch_size, objective, prepare
        )
        built.append(engine)
        start = start_checkpoint(cfg.checkpoint, root)
        state = TrainState()
        if fine_tune is not None and (start is None or fine_tune.adapters_only):
            load_weights(engine, fine_tune.weights, cfg.model, cfg.parallel)
            if start is None:
                _say(
                    context,
                    f"starting from the weights of {fine_tune.weights.path} (its step {fine_tune.weights.iteration});"
                    " optimizer and schedule start fresh",
                )
        if start is not None:
            state, _ = restore(engine, start, cfg.model)
            _say(
                context,
                f"resumed from {start.path} (step {state.iteration}, {state.consumed_samples:,} samples, "
                f"{state.tokens_seen:,} tokens seen)",
            )
        at_start = report(engine, context) if report is not None and start is None else None
        scheduler = LRScheduler(
            engine.optimizer,
            cfg.lr,
            train_iters,
            global_batch_size=cfg.train.global_batch_size,
            start_step=state.iteration,
        )
        logger = MetricsLogger(
            is_main=context.is_main,
            tensorboard_dir=folder / "tensorboard",
            train_iters=train_iters,
            progress_bar=cfg.logging.progress_bar,
            use_wandb=cfg.logging.wandb,
            run_name=cfg.run_name,
            config={"model": asdict(cfg.model), "train": asdict(cfg.train)},
        )
        watcher = PreemptionWatcher()
        watcher.install()
        saved: list[CheckpointInfo] = []

        def save(current: TrainState) -> None:
            metadata = _checkpoint_metadata(cfg, identity, context, current, scheduler, data, plan)
            if fine_tune is not None:
                metadata.update(fine_tune.metadata)
            info = save_checkpoint(
                root,
                current.iteration,
                {**engine.sharded_state_dict(), "rng": rng_sharded_state()},
                metadata,
                keep_last=cfg.checkpoint.keep_last,
            )
            saved.append(info)
            logger.say(f"saved checkpoint {info.path}")
            intermediate = current.iteration < train_iters  # the stage publishes the final one itself
            if on_checkpoint is not None and cfg.checkpoint.publish_intermediate and intermediate and context.is_main:
                on_checkpoint(info)

        loop = TrainingLoop(
            engine,
            scheduler,
            LoopSettings(
                train_iters,
                cfg.train.global_batch_size,
                plan.micro_batches,
                cfg.train.log_interval,
                cfg.train.eval_interval,
                cfg.train.eval_iters,
                cfg.checkpoint.save_interval,
            ),
            logger,
            DivergenceGuard(cfg.guard),
            train_batches=data.train_batches(state.consumed_samples),
            valid_batches=data.valid_batches,
            save=save,
            stop_requested=lambda: watcher.reason if should_stop_all(watcher) else None,
            throughput=_throughput(cfg, context),
            step_metrics=data.step_metrics,
            evaluate_metrics=data.evaluate_metrics,
        )
        outcome = loop.run(state)
        if (
            outcome.finished
            and (start is None or start.iteration != state.iteration)
            and outcome.saved_at != state.iteration
        ):
            save(state)
        newest = saved[-1] if saved else start
        sample = sample_text(engine, cfg, data.tokenizer, context) if outcome.finished else None
        final = report(engine, context) if outcome.finished and report is not None else None
        return TrainingResult(
            state=state,
            finished=outcome.finished,
            stop_reason=outcome.stop_reason,
            requeue=bool(outcome.stop_reason) and watcher.should_requeue,
            checkpoint=newest,
            sample=sample,
            is_main=context.is_main,
            report=final,
            report_at_start=at_start,
        )
    finally:
        if logger is not None:
            logger.close()
        for lease in leases:
            lease.release()
        destroy_distributed()
