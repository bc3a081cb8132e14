"""The pretrain stage's launch preflight: the shared training checks plus its input, the pretrain-data artifact."""

from __future__ import annotations

from nemotron.artifacts import ArtifactError
from nemotron.config.resolvers import current_registry
from nemotron.env import Profile
from nemotron.training.datasets.gpt import require_pretrain_data
from nemotron.training.pretrain.config import PretrainConfig
from nemotron.training.run.preflight import check_checkpoint_dir, check_training_run


def check_pretrain(cfg: PretrainConfig, profile: Profile) -> list[str]:
    """ConfigError/ArtifactError for a config the job would reject, with the job's message; the dry run's notes.

    `run.data` is already pinned (the launcher resolved it in the registry it made current); its kind is
    checked as the job's `resolve_source` checks it.
    """
    check_training_run(cfg, profile)
    try:
        require_pretrain_data(cfg.run.data, current_registry().resolve(cfg.run.data))
    except ArtifactError as err:
        raise ArtifactError(f"config key 'run.data': {err}") from None
    return check_checkpoint_dir(cfg, profile)
