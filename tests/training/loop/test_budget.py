"""Gradient accumulation from batch sizes and the training budget in iterations or tokens."""

from __future__ import annotations

import pytest

from nemotron.config.errors import ConfigError
from nemotron.training.loop.budget import (
    CHINCHILLA_TOKENS_PER_PARAMETER,
    BatchConfig,
    BudgetError,
    TrainBudget,
    accumulation_steps,
    resolve_budget,
)

BATCH = BatchConfig(global_batch_size=8, micro_batch_size=2, seq_length=512)  # 4,096 tokens/iter


@pytest.mark.parametrize(
    ("global_bs", "micro_bs", "dp", "expected"),
    [(64, 4, 2, 8), (64, 4, 16, 1), (8, 1, 1, 8), (12, 3, 2, 2)],
)
def test_accumulation_steps(global_bs, micro_bs, dp, expected):
    batch = BatchConfig(global_batch_size=global_bs, micro_batch_size=micro_bs, seq_length=16)
    assert accumulation_steps(batch, dp) == expected


def test_non_divisible_global_batch_names_keys_and_valid_values():
    batch = BatchConfig(global_batch_size=100, micro_batch_size=3, seq_length=16)
    with pytest.raises(BudgetError) as info:
        accumulation_steps(batch, data_parallel_size=4)
    message = str(info.value)
    assert "global_batch_size=100" in message
    assert "micro_batch_size (3) x data-parallel size (4) = 12" in message
    assert "96 or 108" in message
    assert "divisor of 25 (1, 5, 25)" in message
    assert isinstance(info.value, ConfigError)


def test_global_batch_not_divisible_by_data_parallel_size():
    batch = BatchConfig(global_batch_size=30, micro_batch_size=1, seq_length=16)
    with pytest.raises(BudgetError, match="multiple of the data-parallel size 4"):
        accumulation_steps(batch, data_parallel_size=4)


def test_small_global_batch_suggests_only_positive_sizes():
    batch = BatchConfig(global_batch_size=6, micro_batch_size=4, seq_length=16)
    with pytest.raises(BudgetError, match=r"multiple of 8 \(e\.g\. 8\)"):
        accumulation_steps(batch, data_parallel_size=2)


def test_bad_data_parallel_size():
    with pytest.raises(BudgetError, match="data-parallel size"):
        accumulation_steps(BATCH, 0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"global_batch_size": 0}, "global_batch_size=0"),
        ({"micro_batch_size": 2.0}, "micro_batch_size=2.0"),
        ({"seq_length": -1}, "seq_length=-1"),
        ({"micro_batch_size": 16}, "micro_batch_size=16 is larger than global_batch_size=8"),
    ],
)
def test_invalid_batch_config(kwargs, needle):
    with pytest.raises(BudgetError) as info:
        BatchConfig(**{"global_batch_size": 8, "micro_batch_size": 2, "seq_length": 512, **kwargs})
    assert needle in str(info.value)


def test_tokens_per_iter():
    assert BATCH.tokens_per_iter == 4096


def test_budget_from_train_iters():
    resolved = resolve_budget(TrainBudget(train_iters=1000), BATCH)
    assert (resolved.train_iters, resolved.total_tokens, resolved.tokens_per_iter) == (1000, 4_096_000, 4096)
    assert resolved.source == "train_iters"
    assert resolved.describe() == ("training 1,000 iterations = 4.1M tokens (train_iters x 4,096 tokens/iteration)")


def test_budget_from_total_tokens_rounds_up_to_whole_iterations():
    resolved = resolve_budget(TrainBudget(total_tokens=5_000_000), BATCH)
    assert resolved.train_iters == 1221  # 1220 iterations would be 4,997,120 tokens: short of the budget
    assert resolved.total_tokens == 1221 * 4096
    assert resolved.requested_tokens == 5_000_000
    assert resolved.source == "total_tokens"
    assert resolved.describe().startswith("training 1,221 iterations = 5.0M tokens (total_tokens 5.0M")


def test_budget_exact_token_multiple():
    assert resolve_budget(TrainBudget(total_tokens=4096 * 7), BATCH).train_iters == 7


def test_budget_from_tokens_per_parameter():
    budget = TrainBudget(tokens_per_parameter=CHINCHILLA_TOKENS_PER_PARAMETER)
    resolved = resolve_budget(budget, BATCH, num_parameters=250_000)
    assert resolved.requested_tokens == 5_000_000
    assert resolved.train_iters == 1221
    assert resolved.source == "tokens_per_parameter"
    assert resolved.describe() == (
        "training 1,221 iterations = 5.0M tokens (20 tokens/parameter x 250k parameters / 4,096 tokens/iteration)"
    )


def test_tokens_per_parameter_needs_the_parameter_count():
    with pytest.raises(BudgetError, match="parameter count"):
        resolve_budget(TrainBudget(tokens_per_parameter=20), BATCH)


def test_budget_none_set():
    with pytest.raises(BudgetError, match="none of train_iters, total_tokens, tokens_per_parameter is set"):
        TrainBudget()


def test_budget_two_set():
    with pytest.raises(BudgetError) as info:
        TrainBudget(train_iters=10, tokens_per_parameter=20)
    assert "train_iters=10, tokens_per_parameter=20 are set together; keep exactly one" in str(info.value)
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"train_iters": 0}, "train_iters=0"),
        ({"total_tokens": -5}, "total_tokens=-5"),
        ({"tokens_per_parameter": 0.0}, "tokens_per_parameter=0.0"),
    ],
)
def test_budget_values_must_be_positive(kwargs, needle):
    with pytest.raises(BudgetError, match=needle):
        TrainBudget(**kwargs)
