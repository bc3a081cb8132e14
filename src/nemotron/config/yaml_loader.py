"""Load a recipe YAML file and the files it ``extends``, merged base first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemotron.config.errors import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

EXTENDS_KEY = "extends"
_YAML_SUFFIXES = (".yaml", ".yml")


def load_yaml_chain(path: Path) -> tuple[DictConfig, tuple[Path, ...]]:
    """Load ``path`` with its ``extends`` ancestors; return (merged config, chain base first).

    Each file may name one parent with a top-level ``extends: <name-or-relative-path>``,
    resolved against that file's own directory ("default", "default.yaml",
    "../shared/base.yaml"). The parent is loaded first and the child deep-merged on
    top of it (``OmegaConf.merge``: mappings merge key by key, lists and scalars are
    replaced). The ``extends`` key is not part of the result. Interpolations are kept
    unresolved. Chain paths are absolute.
    """
    from omegaconf import DictConfig, OmegaConf

    chain: list[Path] = []  # child first while walking up
    configs: list[DictConfig] = []
    current = Path(path).resolve()
    while True:
        if current in chain:
            cycle = [*chain[chain.index(current) :], current]
            raise ConfigError(
                "config inheritance cycle via 'extends': "
                + " -> ".join(str(p) for p in cycle)
                + "; remove the 'extends' key from one of these files."
            )
        data = _load_mapping(current)
        chain.append(current)
        parent_ref = data.pop(EXTENDS_KEY, None)
        configs.append(_to_dictconfig(current, data))
        if parent_ref is None:
            break
        current = _parent_path(current, parent_ref)

    chain.reverse()
    configs.reverse()
    try:
        merged = OmegaConf.merge(*configs) if len(configs) > 1 else configs[0]
    except Exception as exc:  # omegaconf merge errors (e.g. mapping replaced by a list)
        raise ConfigError(f"cannot merge config chain {' -> '.join(str(p) for p in chain)}: {_short(exc)}") from exc
    assert isinstance(merged, DictConfig)
    return merged, tuple(chain)


def _parent_path(child: Path, ref: Any) -> Path:
    """Resolve the ``extends`` value of ``child`` to an existing file path."""
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError(
            f"{child}: key '{EXTENDS_KEY}' must be the name or relative path of one YAML "
            f"file (e.g. 'extends: default'), got {ref!r}."
        )
    ref = ref.strip()
    candidate = Path(ref).expanduser()
    if not candidate.is_absolute():
        candidate = child.parent / candidate
    tried = [candidate]
    if candidate.suffix not in _YAML_SUFFIXES:
        tried = [candidate.with_name(candidate.name + ".yaml"), candidate]
    for option in tried:
        if option.is_file():
            return option.resolve()
    looked = " or ".join(str(t) for t in tried)
    raise ConfigError(
        f"{child}: key '{EXTENDS_KEY}: {ref}' names a parent config that does not exist "
        f"(looked for {looked}); fix the name or path (relative to {child.parent})."
    )


def _load_mapping(path: Path) -> dict[Any, Any]:
    """Parse one YAML file into a plain mapping; errors name the file (and line)."""
    import yaml

    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(f"config file {path} {what}; pass the path of a YAML file.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error_message(path, exc)) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys to values at the top level, "
            f"got a {type(data).__name__}; write it as 'key: value' lines."
        )
    return data


def _to_dictconfig(path: Path, data: dict[Any, Any]) -> DictConfig:
    """Wrap a parsed mapping as a DictConfig; errors name the file."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.create(data)
    except Exception as exc:  # e.g. a YAML timestamp, which OmegaConf cannot hold
        raise ConfigError(f"config file {path}: {_short(exc)}; quote the value.") from exc


def _yaml_loader() -> Any:
    """OmegaConf's YAML loader (YAML 1.2 floats like 1e-4, duplicate keys rejected)."""
    try:
        from omegaconf._utils import get_yaml_loader

        return get_yaml_loader()
    except ImportError:  # pragma: no cover - omegaconf internals moved
        import yaml

        return yaml.SafeLoader


def _yaml_error_message(path: Path, exc: Exception) -> str:
    """Describe a PyYAML error with the file, line and column."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
        context = f"{context} started at line {context_mark.line + 1}"
    detail = f"{context}: {problem}" if context else problem
    return f"invalid YAML in {path}{where}: {detail}; fix the syntax there."


def _short(exc: Exception) -> str:
    """The first line of an omegaconf error message (without its full_key footer)."""
    msg = getattr(exc, "msg", None) or str(exc)
    return str(msg).splitlines()[0] if msg else type(exc).__name__
