"""Batch geometry (gradient accumulation) and the training budget in iterations or tokens."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from nemotron.config.errors import ConfigError
from nemotron.counts import human_count
from nemotron.ranges import is_number, is_positive_int

CHINCHILLA_TOKENS_PER_PARAMETER = 20.0
"""Hoffmann et al. (2022): compute-optimal training sees about 20 tokens per parameter."""

BudgetSource = Literal["train_iters", "total_tokens", "tokens_per_parameter"]


class BudgetError(ConfigError):
    """A batch or budget setting is invalid; the message names the key and the fix."""


_BUDGET_KEYS = ("train_iters", "total_tokens", "tokens_per_parameter")


@dataclass(frozen=True)
class BatchConfig:
    """Sequences per optimizer step (global), per forward pass on one GPU (micro), and their length."""

    global_batch_size: int
    micro_batch_size: int
    seq_length: int

    def __post_init__(self) -> None:
        for key in ("global_batch_size", "micro_batch_size", "seq_length"):
            value = getattr(self, key)
            if not is_positive_int(value):
                raise BudgetError(f"batch: {key}={value!r} must be a positive integer.")
        if self.micro_batch_size > self.global_batch_size:
            raise BudgetError(
                f"batch: micro_batch_size={self.micro_batch_size} is larger than "
                f"global_batch_size={self.global_batch_size}; lower micro_batch_size or raise "
                "global_batch_size."
            )

    @property
    def tokens_per_iter(self) -> int:
        """Tokens consumed by one optimizer step: global_batch_size x seq_length."""
        return self.global_batch_size * self.seq_length


def accumulation_steps(batch: BatchConfig, data_parallel_size: int) -> int:
    """Micro-batches each data-parallel rank accumulates per optimizer step.

    global_batch_size must be a multiple of micro_batch_size x data_parallel_size; otherwise a
    BudgetError lists the nearest valid global batch sizes and the micro batch sizes that fit.
    """
    if not is_positive_int(data_parallel_size):
        raise BudgetError(f"batch: the data-parallel size must be a positive integer, got {data_parallel_size!r}.")
    per_step = batch.micro_batch_size * data_parallel_size
    if batch.global_batch_size % per_step == 0:
        return batch.global_batch_size // per_step
    lower = (batch.global_batch_size // per_step) * per_step
    options = [str(n) for n in (lower, lower + per_step) if n > 0]
    message = (
        f"batch: global_batch_size={batch.global_batch_size} is not divisible by micro_batch_size "
        f"({batch.micro_batch_size}) x data-parallel size ({data_parallel_size}) = {per_step}; "
        f"set global_batch_size to a multiple of {per_step} (e.g. {' or '.join(options)})"
    )
    if batch.global_batch_size % data_parallel_size == 0:
        per_rank = batch.global_batch_size // data_parallel_size
        fits = [str(m) for m in range(1, per_rank + 1) if per_rank % m == 0][:8]
        message += f", or micro_batch_size to a divisor of {per_rank} ({', '.join(fits)})"
    else:
        message += f" (it must at least be a multiple of the data-parallel size {data_parallel_size})"
    raise BudgetError(message + ".")


@dataclass(frozen=True)
class TrainBudget:
    """How long to train: set exactly one of the three keys.

    * ``train_iters``: optimizer steps, as written.
    * ``total_tokens``: a token budget; iterations = ceil(total_tokens / tokens per iteration).
    * ``tokens_per_parameter``: a budget relative to model size, e.g. ``20`` for the
      Chinchilla-optimal ratio (CHINCHILLA_TOKENS_PER_PARAMETER); tokens = ratio x parameters.
    """

    train_iters: int | None = None
    total_tokens: int | None = None
    tokens_per_parameter: float | None = None

    def __post_init__(self) -> None:
        given = [key for key in _BUDGET_KEYS if getattr(self, key) is not None]
        if not given:
            raise BudgetError(
                "budget: none of train_iters, total_tokens, tokens_per_parameter is set; set exactly one "
                "(e.g. train_iters: 1000, total_tokens: 5000000000, or tokens_per_parameter: 20 for "
                "Chinchilla)."
            )
        if len(given) > 1:
            shown = ", ".join(f"{key}={getattr(self, key)!r}" for key in given)
            raise BudgetError(f"budget: {shown} are set together; keep exactly one and set the others to null.")
        if self.train_iters is not None and not is_positive_int(self.train_iters):
            raise BudgetError(f"budget: train_iters={self.train_iters!r} must be a positive integer.")
        if self.total_tokens is not None and not is_positive_int(self.total_tokens):
            raise BudgetError(f"budget: total_tokens={self.total_tokens!r} must be a positive integer.")
        ratio = self.tokens_per_parameter
        if ratio is not None and not (is_number(ratio) and ratio > 0):
            raise BudgetError(
                f"budget: tokens_per_parameter={ratio!r} must be a positive number "
                f"({CHINCHILLA_TOKENS_PER_PARAMETER:g} is Chinchilla-optimal)."
            )


@dataclass(frozen=True)
class ResolvedBudget:
    """The budget as iterations, with the tokens they amount to and where the number came from."""

    train_iters: int
    total_tokens: int
    tokens_per_iter: int
    source: BudgetSource
    requested_tokens: int | None = None
    num_parameters: int | None = None
    tokens_per_parameter: float | None = None

    def describe(self) -> str:
        """One line for the training log, e.g. 'training 1,221 iterations = 5.0M tokens (...)'."""
        head = f"training {self.train_iters:,} iterations = {human_count(self.total_tokens)} tokens"
        per_iter = f"{self.tokens_per_iter:,} tokens/iteration"
        if self.source == "train_iters":
            return f"{head} (train_iters x {per_iter})"
        if self.source == "total_tokens":
            return f"{head} (total_tokens {human_count(self.requested_tokens or 0)} / {per_iter})"
        return (
            f"{head} ({self.tokens_per_parameter:g} tokens/parameter x "
            f"{human_count(self.num_parameters or 0)} parameters / {per_iter})"
        )


def resolve_budget(budget: TrainBudget, batch: BatchConfig, num_parameters: int | None = None) -> ResolvedBudget:
    """Turn ``budget`` into iterations for ``batch``; token budgets round up to whole iterations.

    ``num_parameters`` is needed only for ``tokens_per_parameter``; which count to pass (total
    or non-embedding, total or active for MoE) is the caller's choice.
    """
    per_iter = batch.tokens_per_iter
    if budget.train_iters is not None:
        iters = budget.train_iters
        return ResolvedBudget(iters, iters * per_iter, per_iter, "train_iters")
    if budget.total_tokens is not None:
        iters = -(-budget.total_tokens // per_iter)
        requested = budget.total_tokens
        return ResolvedBudget(iters, iters * per_iter, per_iter, "total_tokens", requested_tokens=requested)
    if not is_positive_int(num_parameters):
        raise BudgetError(
            f"budget: tokens_per_parameter={budget.tokens_per_parameter:g} needs the model's parameter "
            "count, "
            f"got {num_parameters!r}; build the model first or set train_iters/total_tokens instead."
        )
    assert budget.tokens_per_parameter is not None and num_parameters is not None
    requested = math.ceil(budget.tokens_per_parameter * num_parameters)
    iters = -(-requested // per_iter)
    return ResolvedBudget(
        iters,
        iters * per_iter,
        per_iter,
        "tokens_per_parameter",
        requested_tokens=requested,
        num_parameters=num_parameters,
        tokens_per_parameter=budget.tokens_per_parameter,
    )
