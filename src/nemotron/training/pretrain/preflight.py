"""The pretrain stage's launch preflight: the shared training checks (its input's kind is checked by the catalog)."""

from __future__ import annotations

from nemotron.env import Profile
from nemotron.training.pretrain.config import PretrainConfig
from nemotron.training.run.preflight import check_checkpoint_dir, check_training_run


def check_pretrain(cfg: PretrainConfig, profile: Profile) -> list[str]:
    """ConfigError/ArtifactError for a config the job would reject, with the job's message; the dry run's notes.

    `run.data` was pinned and its kind checked at launch (the catalog's `StageInput`), before the
    config's `${art:data,...}` values were read from it.
    """
    check_training_run(cfg, profile)
    return check_checkpoint_dir(cfg, profile)
