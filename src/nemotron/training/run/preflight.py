"""Checks a training config against the processes a profile will start, at launch, before anything is submitted."""

from __future__ import annotations

import shutil
from pathlib import Path

from nemotron.artifacts.kinds import TokenizerInfo
from nemotron.config import ConfigError
from nemotron.env import Profile
from nemotron.paths import unwritable_reason
from nemotron.training.checkpoint.layout import CheckpointInfo
from nemotron.training.model.config import ModelConfig, ParallelConfig, data_parallel_size, validate
from nemotron.training.optim.lr_schedules import LRScheduleConfig, validate_schedule
from nemotron.training.run.config import TrainingRunConfig, TrainSection
from nemotron.training.run.plan import RunPlan, plan_run


def planned_processes(profile: Profile) -> tuple[int, str]:
    """(world size, device type) the profile will launch a distributed stage with."""
    slurm = profile.slurm
    if profile.executor == "slurm" and slurm is not None:
        return (slurm.nodes or 1) * profile.processes_per_node(), "cuda" if slurm.gpus_per_node else "cpu"
    return profile.processes_per_node(), "cuda" if shutil.which("nvidia-smi") else "cpu"


def check_training(
    model: ModelConfig, parallel: ParallelConfig, train: TrainSection, lr: LRScheduleConfig, profile: Profile
) -> RunPlan:
    """The run's plan on `profile`; ConfigError for a model, parallel split, batch or schedule that could not run."""
    world_size, device = planned_processes(profile)
    validate(model, parallel, world_size, device)
    plan = plan_run(model, train, data_parallel_size(parallel, world_size))
    validate_schedule(lr, plan.budget.train_iters)
    return plan


def check_training_run(cfg: TrainingRunConfig, profile: Profile) -> RunPlan:
    """The StageSpec preflight of every training stage: `check_training` on the config's sections."""
    return check_training(cfg.model, cfg.parallel, cfg.train, cfg.lr, profile)


def check_checkpoint_dir(cfg: TrainingRunConfig, profile: Profile) -> list[str]:
    """ConfigError when a set `checkpoint.dir` cannot be created or written here (its nearest existing parent
    is not a writable folder); on Slurm, whose filesystem is not visible from here, a note for the dry run.

    An unset `checkpoint.dir` is the run folder next to the artifact registry, which the job creates.
    """
    if not cfg.checkpoint.dir:
        return []
    folder = Path(cfg.checkpoint.dir).expanduser()
    if profile.executor == "slurm":
        return [f"checkpoint.dir {folder} is on the cluster's filesystem: not checked here; the job creates it"]
    problem = unwritable_reason(folder)
    if problem is None:
        return []
    raise ConfigError(
        f"config key 'checkpoint.dir': cannot save checkpoints in {folder}: {problem}. "
        "Choose a folder you can write, or null for the run's folder."
    )


def data_tokenizer_notes(
    data_ref: str,
    tokenizer: TokenizerInfo | None,
    model: CheckpointInfo,
    model_source: str,
    model_vocab_size: int,
    data_kind: str,
) -> list[str]:
    """ConfigError when data `data_ref` (`data_kind`, e.g. "SFT") was tokenized with more token ids than the
    model (checkpoint `model` of `model_source`, `model_vocab_size` ids) has; a note when the tokenizers'
    names differ."""
    if tokenizer is None:
        return []
    if tokenizer.vocab_size is not None and tokenizer.vocab_size > model_vocab_size:
        raise ConfigError(
            f"{data_ref} was tokenized with a vocabulary of {tokenizer.vocab_size} but the model "
            f"({model_source}) has {model_vocab_size}; prepare the {data_kind} data with the model's tokenizer"
        )
    model_tokenizer = (model.metadata.get("tokenizer") or {}).get("name_or_path")
    if model_tokenizer and model_tokenizer != tokenizer.name_or_path:
        return [
            f"the tokenizer of {data_ref} ({tokenizer.name_or_path}) is not the one the model ({model_source}) was "
            f"trained with ({model_tokenizer}); they must assign the same ids"
        ]
    return []
