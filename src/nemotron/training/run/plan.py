"""A run's batch geometry and budget in iterations, from its model and train sections (preflight and session)."""

from __future__ import annotations

from dataclasses import dataclass

from nemotron.training.loop.budget import BatchConfig, ResolvedBudget, TrainBudget, accumulation_steps, resolve_budget
from nemotron.training.model.config import ModelConfig, parameter_count
from nemotron.training.run.config import TrainSection


@dataclass(frozen=True)
class RunPlan:
    """How long a run trains (`budget.train_iters`) and how each step splits into micro-batches per rank."""

    batch: BatchConfig
    budget: ResolvedBudget
    num_parameters: int
    micro_batches: int  # per data-parallel rank per optimizer step


def plan_run(model: ModelConfig, train: TrainSection, data_parallel: int) -> RunPlan:
    """Raise BudgetError for a batch or budget that cannot run with `data_parallel` replicas; else the plan."""
    num_parameters = parameter_count(model, tensor_parallel=1)
    batch = BatchConfig(train.global_batch_size, train.micro_batch_size, model.seq_length)
    micro_batches = accumulation_steps(batch, data_parallel)
    budget = resolve_budget(
        TrainBudget(train.train_iters, train.total_tokens, train.tokens_per_parameter), batch, num_parameters
    )
    return RunPlan(batch, budget, num_parameters, micro_batches)
