"""The SFT stage's config: the shared training sections, sft-data and starting model, epochs, LoRA, answers."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from nemotron.config.errors import ConfigError
from nemotron.ranges import is_positive_number, require_non_negative_int, require_positive_int
from nemotron.training.model.lora_settings import LORA_TARGETS, LoraSettings
from nemotron.training.run.config import TrainingRunConfig


@dataclass(frozen=True)
class SftRefs:
    """The packed chat data (an `sft-data` artifact) and the model fine-tuning starts from.

    `model`: a `model-checkpoint` artifact (from pretraining, `model import hf`, or an earlier SFT)
    or a checkpoint folder (iter_XXXXXXX) of a nemotron training run.
    """

    data: str
    model: str


@dataclass(frozen=True)
class AnswersSection:
    """Greedy answers to held-out prompts at the end: the last assistant turn of `count` test-split
    conversations, generated token by token and compared with the reference (exact match)."""

    count: int = 8
    max_new_tokens: int = 64
    split: str = "test"  # "valid" when the data has no test split

    def __post_init__(self) -> None:
        require_non_negative_int("answers.count", self.count, ConfigError)
        require_positive_int("answers.max_new_tokens", self.max_new_tokens, ConfigError)
        if self.split not in ("train", "valid", "test"):
            raise ConfigError(f"answers.split={self.split!r} must be one of train, valid, test")


@dataclass(frozen=True)
class PeftSection:
    """Parameter-efficient fine-tuning: `kind` null trains every weight (Nemotron's nano3 default), "lora"
    trains low-rank adapters on `target_modules` (among linear_qkv, linear_proj, linear_fc1, linear_fc2)."""

    kind: str | None = None
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self) -> None:
        if self.kind not in (None, "lora"):
            raise ConfigError(f"peft.kind={self.kind!r} must be null (full fine-tuning) or 'lora'")
        require_positive_int("peft.rank", self.rank, ConfigError)
        if not is_positive_number(self.alpha):
            raise ConfigError(f"peft.alpha={self.alpha!r} must be a positive number (the scale is alpha / rank)")
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise ConfigError(f"peft.dropout={self.dropout!r} must be in [0, 1)")
        unknown = [name for name in self.target_modules if name not in LORA_TARGETS]
        if unknown or not self.target_modules:
            raise ConfigError(
                f"peft.target_modules={list(self.target_modules)!r}: choose among {', '.join(LORA_TARGETS)}"
                + (f" ({', '.join(map(str, unknown))} unknown)" if unknown else "")
            )

    def lora(self) -> LoraSettings | None:
        if self.kind != "lora":
            return None
        return LoraSettings(self.rank, float(self.alpha), float(self.dropout), tuple(self.target_modules))


@dataclass(frozen=True, kw_only=True)
class SftConfig(TrainingRunConfig):
    """recipes/nano3/stage1_sft/config/*.yaml: fine-tune a model artifact on an sft-data artifact.

    Budget: `epochs` (passes over the train split's packed rows, rounded up to whole steps), or the
    train section's train_iters / total_tokens as in pretraining (`epochs: null` then).
    """

    run: SftRefs
    epochs: float | None = None
    peft: PeftSection = field(default_factory=PeftSection)
    answers: AnswersSection = field(default_factory=AnswersSection)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs is not None:
            if not is_positive_number(self.epochs):
                raise ConfigError(f"epochs={self.epochs!r} must be a positive number of passes over the train split")
            budget = {k: getattr(self.train, k) for k in ("train_iters", "total_tokens", "tokens_per_parameter")}
            chosen = [f"train.{k}={v}" for k, v in budget.items() if v is not None]
            if chosen:
                raise ConfigError(
                    f"epochs={self.epochs} and {', '.join(chosen)} both set the budget; keep one "
                    "(e.g. epochs=null to train for train.train_iters)"
                )


def epoch_iters(epochs: float, train_rows: int, global_batch_size: int) -> int:
    """Optimizer steps for `epochs` passes over `train_rows` packed rows (at least one step)."""
    return max(1, math.ceil(epochs * train_rows / global_batch_size))


def with_budget(cfg: SftConfig, train_rows: int) -> SftConfig:
    """`cfg` with `epochs` turned into `train.train_iters` (unchanged when it budgets otherwise)."""
    if cfg.epochs is None:
        return cfg
    iters = epoch_iters(cfg.epochs, train_rows, cfg.train.global_batch_size)
    return dataclasses.replace(cfg, epochs=None, train=dataclasses.replace(cfg.train, train_iters=iters))
