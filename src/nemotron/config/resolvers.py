"""OmegaConf resolvers available in recipe configs: `${recipes:REL}` and `${art:REF,FIELD}`.

`${recipes:REL}` names a file shipped in recipes/. `${art:KEY_OR_REF,FIELD}` reads an artifact:
the first argument is a key under `run:` holding a reference (`run: {data: name:latest}` ->
`${art:data,path}`) or a literal reference (`${art:name:v3,blend}`); FIELD is path (default),
ref, version, name, kind, a file role such as blend, or metadata.KEY (see docs/artifacts.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nemotron.artifacts.resolution import Resolver

_REGISTERED = False
_REGISTRY: ContextVar[Resolver | None] = ContextVar("nemotron_art_registry", default=None)


@contextmanager
def artifact_registry(registry: Resolver) -> Iterator[None]:
    """Make `${art:...}` resolve through `registry` (the launcher passes the env.toml root's)."""
    token = _REGISTRY.set(registry)
    try:
        yield
    finally:
        _REGISTRY.reset(token)


def current_registry() -> Resolver:
    """The registry `artifact_registry` made current (the launcher's), else the default root's."""
    registry = _REGISTRY.get()
    if registry is None:
        from nemotron.artifacts import FileRegistry, default_registry_root

        registry = FileRegistry(default_registry_root())
    return registry


def _art(key_or_ref: str, field: str = "path", *, _root_: Any) -> Any:
    from nemotron.artifacts import ArtifactError, ArtifactNotFoundError
    from nemotron.artifacts.resolution import RUN_KEY, artifact_field

    key_or_ref = str(key_or_ref).strip()
    if ":" in key_or_ref:
        return artifact_field(current_registry().resolve(key_or_ref), str(field).strip())
    section = _root_.get(RUN_KEY) if hasattr(_root_, "get") else None
    value = section.get(key_or_ref) if section is not None and hasattr(section, "get") else None
    if not isinstance(value, str):
        raise ArtifactError(
            f"${{art:{key_or_ref},...}}: config key '{RUN_KEY}.{key_or_ref}' "
            + ("does not exist" if value is None else f"is not a reference ({value!r})")
            + f"; set it (e.g. {RUN_KEY}.{key_or_ref}=NAME:latest) or pass a reference like NAME:v3"
        )
    try:
        artifact = current_registry().resolve(value)
    except ArtifactNotFoundError as err:  # resolved_container reports it as is (not as an interpolation problem)
        raise err.at_key(f"{RUN_KEY}.{key_or_ref}") from None
    except ArtifactError as err:
        raise ArtifactError(f"config key '{RUN_KEY}.{key_or_ref}': {err}") from None
    return artifact_field(artifact, str(field).strip())


def register_resolvers() -> None:
    """Register nemotron's resolvers once per process (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from omegaconf import OmegaConf

    from nemotron.paths import recipes_root

    OmegaConf.register_new_resolver(
        "recipes", lambda rel="": str(recipes_root() / rel) if rel else str(recipes_root()), replace=True
    )
    OmegaConf.register_new_resolver("art", _art, replace=True)
    _REGISTERED = True
