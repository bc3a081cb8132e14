"""Publish hooks: after a version is in the file registry, copy its record to mirrors (W&B)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nemotron.artifacts.errors import ArtifactError
from nemotron.artifacts.kinds import ArtifactKind
from nemotron.artifacts.types import Artifact, Lineage

if TYPE_CHECKING:
    from nemotron.artifacts.file_registry import FileRegistry, Staging
    from nemotron.env import WandbSettings

WANDB_PROJECT_VAR = "NEMOTRON_WANDB_PROJECT"  # set in the job by the launcher from env.toml [wandb]
WANDB_ENTITY_VAR = "NEMOTRON_WANDB_ENTITY"


class Mirror(Protocol):
    """Somewhere a published artifact is also recorded (by reference, never by copying data)."""

    def describe(self) -> str: ...

    def mirror(self, artifact: Artifact, *, registry: FileRegistry, aliases: Sequence[str] = ()) -> Any: ...


def wandb_job_env(project: str, entity: str | None) -> dict[str, str]:
    """The variables that tell a job to mirror to W&B (`mirrors_from_environment` reads them)."""
    env = {WANDB_PROJECT_VAR: project}
    if entity:
        env[WANDB_ENTITY_VAR] = entity
    return env


def _require_wandb(origin: str) -> None:
    if importlib.util.find_spec("wandb") is None:
        raise ArtifactError(
            f"{origin} asks to mirror artifacts to W&B, but the wandb package is not installed in this "
            "Python; install it (pip install 'nemotron[wandb]') or remove the [wandb] table from env.toml"
        )


def mirrors_from_environment(environ: dict[str, str] | None = None) -> list[Mirror]:
    """The mirrors a stage should publish to: W&B when the launcher set NEMOTRON_WANDB_PROJECT.

    Call it at stage start, so a missing wandb package fails before hours of work.
    """
    environ = dict(os.environ if environ is None else environ)
    project = environ.get(WANDB_PROJECT_VAR)
    if not project:
        return []
    _require_wandb(f"{WANDB_PROJECT_VAR}={project} (from env.toml [wandb])")
    from nemotron.artifacts.wandb_mirror import WandbMirror

    return [WandbMirror(project=project, entity=environ.get(WANDB_ENTITY_VAR) or None)]


def mirrors_from_settings(settings: WandbSettings | None, env_path: Path | str | None = None) -> list[Mirror]:
    """The mirrors for commands run on this machine (e.g. `nemotron artifacts import`): env.toml [wandb]."""
    if settings is None:
        return []
    _require_wandb(f"the [wandb] table of {env_path or 'env.toml'}")
    from nemotron.artifacts.wandb_mirror import WandbMirror

    return [WandbMirror(project=settings.project, entity=settings.entity, api_key=settings.api_key)]


def mirror_artifact(
    registry: FileRegistry, artifact: Artifact, mirrors: Iterable[Mirror], aliases: Sequence[str] = ()
) -> list[Any]:
    """Record `artifact` in every mirror; all are tried, then one ArtifactError lists the failures."""
    results, failures = [], []
    for mirror in mirrors:
        try:
            results.append(mirror.mirror(artifact, registry=registry, aliases=aliases))
        except Exception as err:  # a mirror's own errors (network, auth) are reported, not hidden
            failures.append(f"{mirror.describe()}: {type(err).__name__}: {err}")
    if failures:
        raise ArtifactError(
            f"{artifact.ref} is published in {registry.root} and usable, but mirroring failed: "
            + "; ".join(failures)
            + f". Check env.toml [wandb] (project, entity) and WANDB_API_KEY, then run "
            f"`nemotron artifacts mirror {artifact.ref}`"
        )
    return results


def publish_with_mirrors(
    registry: FileRegistry,
    mirrors: Iterable[Mirror],
    staging: Staging,
    *,
    kind: ArtifactKind,
    lineage: Lineage,
    metadata: Any,
    files: dict[str, str],
    references: Iterable[Path | str] = (),
    aliases: Sequence[str] = (),
) -> Artifact:
    """`registry.publish(...)`, then set `aliases` on the new version, then mirror it everywhere."""
    artifact = registry.publish(
        staging, kind=kind, lineage=lineage, metadata=metadata, files=files, references=references
    )
    for alias in aliases:
        registry.set_alias(artifact.ref, alias)
    mirror_artifact(registry, artifact, mirrors, aliases)
    return artifact
