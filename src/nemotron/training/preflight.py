"""Checks a training config against the processes a profile will start, at launch, before anything is submitted."""

from __future__ import annotations

import shutil

from nemotron.env import Profile
from nemotron.training.budget import BatchConfig, TrainBudget, accumulation_steps, resolve_budget
from nemotron.training.lr_schedules import validate_schedule
from nemotron.training.model_config import data_parallel_size, parameter_count, validate
from nemotron.training.run_config import TrainingRunConfig


def planned_processes(profile: Profile) -> tuple[int, str]:
    """(world size, device type) the profile will launch a distributed stage with."""
    slurm = profile.slurm
    if profile.executor == "slurm" and slurm is not None:
        return (slurm.nodes or 1) * profile.processes_per_node(), "cuda" if slurm.gpus_per_node else "cpu"
    return profile.processes_per_node(), "cuda" if shutil.which("nvidia-smi") else "cpu"


def check_training_run(cfg: TrainingRunConfig, profile: Profile) -> None:
    """Raise ConfigError for a model, parallel split, batch or schedule that could not run on `profile`."""
    world_size, device = planned_processes(profile)
    validate(cfg.model, cfg.parallel, world_size, device)
    train = cfg.train
    batch = BatchConfig(train.global_batch_size, train.micro_batch_size, cfg.model.seq_length)
    accumulation_steps(batch, data_parallel_size(cfg.parallel, world_size))
    budget = resolve_budget(TrainBudget(train.train_iters, train.total_tokens, train.tokens_per_parameter), batch,
                            parameter_count(cfg.model))
    validate_schedule(cfg.lr, budget.train_iters)
