"""Find a stage's recipe YAML by name or path and load it with its overrides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nemotron.config.errors import ConfigError
from nemotron.config.overrides import apply_overrides
from nemotron.config.yaml_loader import load_yaml_chain
from nemotron.suggest import did_you_mean

if TYPE_CHECKING:
    from omegaconf import DictConfig

_SUFFIX = ".yaml"
_PATH_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedConfig:
    """A recipe config after inheritance and overrides, interpolations not yet resolved."""

    cfg: DictConfig
    path: Path  # the YAML file selected (absolute)
    chain: tuple[Path, ...]  # the inheritance chain, base first, ending with ``path``
    overrides: tuple[str, ...]  # the overrides as given


def list_configs(config_dir: Path) -> list[str]:
    """Names of the ``*.yaml`` files in ``config_dir``, sorted, without the suffix."""
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        return []
    return sorted(p.stem for p in config_dir.glob(f"*{_SUFFIX}") if p.is_file())


def resolve_config_path(name_or_path: str, config_dir: Path) -> Path:
    """Turn ``-c NAME`` or ``-c path/to.yaml`` into the absolute path of an existing file.

    A name ("tiny" or "tiny.yaml") selects ``config_dir/tiny.yaml``. Anything that
    contains a "/" or ends in .yaml/.yml and exists as a file is used as that path
    (relative to the current directory).
    """
    config_dir = Path(config_dir)
    text = str(name_or_path).strip()
    if not text:
        raise ConfigError(_unknown_message(text, config_dir))
    looks_like_path = "/" in text or text.endswith(_PATH_SUFFIXES)
    if looks_like_path:
        candidate = Path(text).expanduser()
        if candidate.is_file():
            return candidate.resolve()
        if candidate.is_dir():
            raise ConfigError(f"config path {text} is a directory; pass the path of a YAML file.")
    if "/" not in text:
        name = text[: -len(_SUFFIX)] if text.endswith(_SUFFIX) else text
        candidate = config_dir / f"{name}{_SUFFIX}"
        if candidate.is_file():
            return candidate.resolve()
    if "/" in text:
        raise ConfigError(
            f"config file {text} does not exist (relative paths start at {Path.cwd()}); "
            f"pass an existing YAML file or one of the built-in names: "
            f"{_names(config_dir)}."
        )
    raise ConfigError(_unknown_message(text, config_dir))


def load_config(
    name_or_path: str, config_dir: Path, overrides: Sequence[str] = (), *, source: str = "command line"
) -> LoadedConfig:
    """Resolve, load (with ``extends``) and override a recipe config (``source``: where the overrides come
    from, for error messages)."""
    path = resolve_config_path(name_or_path, config_dir)
    cfg, chain = load_yaml_chain(path)
    overrides = tuple(overrides)
    cfg = apply_overrides(cfg, overrides, source=source)
    return LoadedConfig(cfg=cfg, path=chain[-1], chain=chain, overrides=overrides)


def _unknown_message(text: str, config_dir: Path) -> str:
    """The error for a name that matches no built-in config."""
    name = text[: -len(_SUFFIX)] if text.endswith(_SUFFIX) else text
    base = f"unknown config '{text}' for {config_dir}; built-in configs: {_names(config_dir)}"
    suggestion = did_you_mean(name, list_configs(config_dir)) if name else ""
    return f"{base}{suggestion or '.'} Pass a name or a path to a YAML file."


def _names(config_dir: Path) -> str:
    """Comma-separated built-in names, or "(none)"."""
    return ", ".join(list_configs(config_dir)) or "(none)"
