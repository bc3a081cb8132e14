"""Resolve a config's interpolations into plain Python data, with readable errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from nemotron.config.errors import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig


def resolved_container(cfg: DictConfig, *, source: str | None = None) -> dict[str, Any]:
    """``OmegaConf.to_container(cfg, resolve=True)``; interpolation errors name the key.

    Values still marked ``???`` (missing) are kept as the string "???".
    ``source`` (e.g. a file name) prefixes error messages when given.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        data = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        _raise_missing_artifact(exc)
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
        raw = _raw_value(cfg, str(key))
        shown = f" = {raw!r}" if raw is not None else ""
        msg = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        where = f"{source}: " if source else ""
        raise ConfigError(
            f"{where}cannot resolve key '{key}'{shown}: {msg}; fix the interpolation or "
            f"set the value directly (e.g. {key}=VALUE)."
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source or 'config'}: expected a mapping, got a list.")
    # OmegaConf types a container's keys as str | int | Enum | ...; a config's top level is a YAML
    # mapping of section names (strings), as callers assume.
    return cast(dict[str, Any], data)


def _raise_missing_artifact(exc: BaseException) -> None:
    """Re-raise the ArtifactNotFoundError behind an interpolation error: a missing artifact is not fixed
    by editing the interpolation (its message names the `run.*` key and the fix)."""
    from nemotron.artifacts.errors import ArtifactNotFoundError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ArtifactNotFoundError):
            raise seen from None
        seen = seen.__cause__ or seen.__context__


def _raw_value(cfg: DictConfig, key: str) -> Any:
    """The unresolved value at a dotted key (for messages), or None."""
    from omegaconf import OmegaConf

    try:
        node: Any = OmegaConf.to_container(cfg, resolve=False)
        for part in key.replace("[", ".").replace("]", "").split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    return node if isinstance(node, str) else None
