"""Finding env.toml: $NEMOTRON_ENV_FILE, then the nearest env.toml upward, then the user config dir."""

from __future__ import annotations

import os
from pathlib import Path

from nemotron.env.errors import EnvError

ENV_FILE_VAR = "NEMOTRON_ENV_FILE"
ENV_FILE_NAME = "env.toml"


def user_config_file() -> Path:
    """${XDG_CONFIG_HOME:-~/.config}/nemotron/env.toml."""
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else Path.home() / ".config"
    return base / "nemotron" / ENV_FILE_NAME


def _start(cwd: Path | None) -> Path:
    return Path(cwd if cwd is not None else Path.cwd()).expanduser().resolve()


def find_env_file(cwd: Path | None = None) -> Path | None:
    """The env.toml to use, or None when there is none (see docs/env-toml.md, "Discovery")."""
    start = _start(cwd)
    explicit = os.environ.get(ENV_FILE_VAR, "")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_absolute():
            path = start / path
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise EnvError(
                f"{ENV_FILE_VAR}={explicit} but {path} {what}. "
                f"Point {ENV_FILE_VAR} at an existing env.toml file or unset it.",
                path=path,
            )
        return path
    for directory in (start, *start.parents):
        candidate = directory / ENV_FILE_NAME
        if candidate.is_file():
            return candidate
    candidate = user_config_file()
    if candidate.is_file():
        return candidate
    return None


def describe_search(cwd: Path | None = None) -> tuple[str, ...]:
    """Human-readable list of the places find_env_file looks, for 'not found' messages."""
    explicit = os.environ.get(ENV_FILE_VAR, "")
    return (
        f"${ENV_FILE_VAR} ({explicit if explicit else 'not set'})",
        f"{ENV_FILE_NAME} in {_start(cwd)} and each parent directory",
        str(user_config_file()),
    )
