"""Execution environments from env.toml: discovery, profiles, validation and secret handling."""

from nemotron.env.discovery import find_env_file
from nemotron.env.errors import EnvError
from nemotron.env.loader import load_env_file
from nemotron.env.secrets import is_secret_key, redact, redact_text, secrets_from_environment
from nemotron.env.settings import (
    DockerSettings,
    EnvFile,
    Profile,
    SlurmSettings,
    SSHSettings,
    WandbSettings,
)

__all__ = [
    "DockerSettings",
    "EnvError",
    "EnvFile",
    "Profile",
    "SSHSettings",
    "SlurmSettings",
    "WandbSettings",
    "find_env_file",
    "is_secret_key",
    "load_env_file",
    "redact",
    "redact_text",
    "secrets_from_environment",
]
