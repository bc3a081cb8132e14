"""The pretrain stage's config: the shared training-run sections plus the pretrain-data artifact it reads."""

from __future__ import annotations

from dataclasses import dataclass

from nemotron.training.run.config import TrainingRunConfig


@dataclass(frozen=True)
class PretrainRefs:
    """Artifact references pinned at launch (`run.data: name:latest` -> `name:v3`)."""

    data: str


@dataclass(frozen=True, kw_only=True)
class PretrainConfig(TrainingRunConfig):
    """recipes/nano3/stage0_pretrain/config/*.yaml: a GPT trained from scratch on a pretrain-data artifact."""

    run: PretrainRefs
