"""The exceptions the CLI reports as one line (bad config, env.toml, data, artifacts, submission)."""

from __future__ import annotations


def known_errors() -> tuple[type[Exception], ...]:
    from nemotron.artifacts import ArtifactError
    from nemotron.config import ConfigError
    from nemotron.data.errors import DataError
    from nemotron.env import EnvError
    from nemotron.execution.errors import ExecutionError

    return (ConfigError, EnvError, DataError, ArtifactError, ExecutionError)
