"""The root of errors raised for env.toml problems."""

from __future__ import annotations

from pathlib import Path

from nemotron.errors import NemotronError


class EnvError(NemotronError):
    """An env.toml problem; the message names the file, profile and key and says the fix."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        profile: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.profile = profile
        self.key = key
