"""The SFT config: epochs become whole optimizer steps, and a budget set twice is refused naming both keys."""

from __future__ import annotations

import pytest

from nemotron.config.errors import ConfigError
from nemotron.training.model.config import ModelConfig
from nemotron.training.optim.lr_schedules import LRScheduleConfig
from nemotron.training.run.config import TrainSection
from nemotron.training.sft.config import AnswersSection, SftConfig, SftRefs, epoch_iters, with_budget

MODEL = ModelConfig(
    num_layers=2, hidden_size=64, num_attention_heads=4, ffn_hidden_size=128, vocab_size=256, seq_length=32
)


def config(epochs=None, train_iters=None, **train) -> SftConfig:
    return SftConfig(
        run_name="sft-test",
        run=SftRefs(data="d:latest", model="m:latest"),
        model=MODEL,
        train=TrainSection(global_batch_size=16, micro_batch_size=8, train_iters=train_iters, **train),
        lr=LRScheduleConfig(lr=1e-3),
        epochs=epochs,
    )


@pytest.mark.parametrize(("epochs", "rows", "batch", "iters"), [(1, 160, 16, 10), (2, 161, 16, 21), (0.01, 10, 16, 1)])
def test_epochs_round_up_to_whole_steps(epochs, rows, batch, iters):
    assert epoch_iters(epochs, rows, batch) == iters


def test_with_budget_sets_train_iters_from_the_train_rows():
    resolved = with_budget(config(epochs=3), train_rows=100)
    assert resolved.train.train_iters == 19 and resolved.epochs is None
    by_iters = config(train_iters=7)
    assert with_budget(by_iters, train_rows=100) is by_iters


def test_epochs_and_train_iters_together_are_refused():
    with pytest.raises(ConfigError, match=r"epochs=2 and train.train_iters=5 both set the budget"):
        config(epochs=2, train_iters=5)


@pytest.mark.parametrize("epochs", [0, -1, "two"])
def test_bad_epochs_are_refused(epochs):
    with pytest.raises(ConfigError, match="epochs="):
        config(epochs=epochs)


def test_answers_section_checks_its_keys():
    with pytest.raises(ConfigError, match="answers.split"):
        AnswersSection(split="holdout")
    with pytest.raises(ConfigError, match="answers.max_new_tokens"):
        AnswersSection(max_new_tokens=0)
