"""Pinning artifact references in a config (`run.data: name:latest` -> `name:v3`) and reading their fields."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nemotron.artifacts.errors import ArtifactError, ArtifactNotFoundError
from nemotron.artifacts.kinds import MADE_BY, ArtifactKind
from nemotron.artifacts.types import Artifact, ArtifactRef

RUN_KEY = "run"  # the config section whose values may be artifact references


class Resolver(Protocol):
    """Anything that turns a reference into an exact version (FileRegistry, PinnedRegistry)."""

    def resolve(self, ref: str | ArtifactRef) -> Artifact: ...


@dataclass(frozen=True)
class ResolvedRef:
    """One reference of a config and the exact version it was pinned to."""

    key: str  # dotted config key, e.g. "run.data"
    requested: str  # as written, e.g. "nano3-pretrain-data-tiny:latest"
    pinned: str  # exact, e.g. "nano3-pretrain-data-tiny:v3"
    kind: str
    path: Path  # the version directory


class PinnedRegistry:
    """A registry view that resolves each reference text once, so every use within one launch
    (the `${art:...}` resolver and `resolve_references`) sees the same version."""

    def __init__(self, registry: Resolver) -> None:
        self.registry = registry
        self._seen: dict[str, Artifact] = {}

    @property
    def root(self) -> Path:
        return Path(getattr(self.registry, "root", "."))

    def resolve(self, ref: str | ArtifactRef) -> Artifact:
        parsed = ArtifactRef.parse(ref) if isinstance(ref, str) else ref
        key = str(parsed)
        if key not in self._seen:
            self._seen[key] = self.registry.resolve(parsed)
        return self._seen[key]


def resolve_references(config: dict[str, Any], registry: Resolver) -> tuple[dict[str, Any], list[ResolvedRef]]:
    """A copy of `config` whose `run.*` values that are artifact refs (strings with ':' that parse,
    at any depth) are replaced by their exact `name:vN`, and the list of what was pinned.

    A reference that names nothing raises ArtifactError naming the config key, the reference and
    what the registry holds.
    """
    pinned = copy.deepcopy(config)
    found: list[ResolvedRef] = []
    section = pinned.get(RUN_KEY)
    if isinstance(section, (dict, list)):
        _pin(section, RUN_KEY, registry, found)
    return pinned, found


def _pin(node: dict[str, Any] | list[Any], key: str, registry: Resolver, found: list[ResolvedRef]) -> None:
    """Replace, in place, each artifact reference under `node` (at config key `key`) by its exact version."""
    if isinstance(node, dict):
        for name, value in list(node.items()):
            pinned = _pin_value(value, f"{key}.{name}", registry, found)
            if pinned is not None:
                node[name] = pinned
    else:
        for index, value in list(enumerate(node)):
            pinned = _pin_value(value, f"{key}[{index}]", registry, found)
            if pinned is not None:
                node[index] = pinned


def _pin_value(value: Any, full: str, registry: Resolver, found: list[ResolvedRef]) -> str | None:
    """The exact ref that `value` (at config key `full`) pins to, or None when it is not an artifact
    reference; a dict or list value is pinned in place (and gives None)."""
    if isinstance(value, (dict, list)):
        _pin(value, full, registry, found)
        return None
    ref = ArtifactRef.from_text(value)
    if ref is None:
        return None
    try:
        artifact = registry.resolve(ref)
    except ArtifactNotFoundError as err:
        raise err.at_key(full) from None
    except ArtifactError as err:
        raise ArtifactError(f"config key '{full}': {err}") from None
    found.append(ResolvedRef(full, value.strip(), artifact.ref, artifact.kind.value, artifact.path))
    return artifact.ref


def artifact_field(artifact: Artifact, field: str) -> Any:
    """What `${art:REF,FIELD}` returns: path | ref | version | name | kind | a file role (blend,
    checkpoint, ...) | metadata.KEY[.KEY...]."""
    if field == "path":
        return str(artifact.path)
    if field == "ref":
        return artifact.ref
    if field == "version":
        return artifact.version
    if field == "name":
        return artifact.name
    if field == "kind":
        return artifact.kind.value
    if field.startswith("metadata."):
        value: Any = artifact.metadata
        for part in field.split(".")[1:]:
            if not isinstance(value, dict) or part not in value:
                keys = ", ".join(sorted(artifact.metadata)) or "none"
                raise ArtifactError(f"artifact {artifact.ref} has no {field!r} (metadata keys: {keys})")
            value = value[part]
        return value
    if field in artifact.files:
        return str(artifact.file(field))
    raise ArtifactError(
        f"artifact {artifact.ref} has no field {field!r}; use path, ref, version, name, kind, metadata.KEY "
        f"or a file role ({', '.join(sorted(artifact.files)) or 'none recorded'})"
    )


def require_kind(artifact: Artifact, kind: ArtifactKind, *, ref: str) -> None:
    """ArtifactError unless `artifact` (what `ref` resolved to) is of `kind`, naming the command that makes one.

    The launch check of a stage's inputs and the job's own check both raise this message.
    """
    if artifact.kind != kind:
        named = artifact.ref if ref.strip() == artifact.ref else f"{ref.strip()} ({artifact.ref})"
        raise ArtifactError(
            f"{named} is a {artifact.kind.value} artifact, but this stage reads {kind.value} "
            f"(made by `{MADE_BY[kind]}`); name one of that kind (nemotron artifacts list)"
        )
