"""Mirroring a published artifact to Weights & Biases by reference: metadata, aliases and lineage.

Data is never uploaded: every file of the manifest becomes a `file://` reference (checksummed
when the manifest has its sha256, path-only for larger files). W&B numbers versions itself
(v0, v1, ... per W&B project), and its client requires exactly one `vN` alias per version, so
the registry version goes in as the alias `nemotron-vN`, next to `latest` (when it is) and the
user's aliases. Inputs that are artifacts are declared with `run.use_artifact(name:nemotron-vN)`
in online mode; offline runs cannot look artifacts up, so lineage is only in the metadata there.
wandb is imported only when something is mirrored.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nemotron.artifacts.lineage_graph import artifact_inputs
from nemotron.artifacts.types import Artifact

if TYPE_CHECKING:
    from nemotron.artifacts.file_registry import FileRegistry

RECORD_FILE = "artifact.json"


def version_alias(version: int) -> str:
    """The W&B alias that carries the registry version (W&B's own vN numbering differs)."""
    return f"nemotron-v{version}"


@dataclass(frozen=True)
class WandbRecord:
    """What was logged to W&B for one artifact (returned so callers and tests can check it)."""

    target: str  # "entity/project" or "project"
    name: str
    type: str
    aliases: tuple[str, ...]
    metadata: dict[str, Any]
    references: dict[str, str]  # entry path in the W&B artifact -> file:// URI
    used: tuple[str, ...] = ()  # inputs declared with run.use_artifact
    skipped_inputs: tuple[str, ...] = field(default=())  # artifact inputs not declared (offline, not in W&B)
    offline: bool = False


def reference_entries(artifact: Artifact) -> list[tuple[str, str, bool]]:
    """(entry name, file:// URI, checksum?) for artifact.json and every manifest file."""
    entries = [(RECORD_FILE, (artifact.path / RECORD_FILE).resolve().as_uri(), True)]
    if artifact.manifest is None:  # published before manifests: the whole version dir, by path
        return entries + [("files", artifact.path.resolve().as_uri(), False)]
    for entry in artifact.manifest.entries:
        location = entry.location(artifact.path).resolve()
        name = f"in-place/{entry.path.lstrip('/')}" if entry.in_place else entry.path
        entries.append((name, location.as_uri(), entry.sha256 is not None))
    return entries


def wandb_metadata(artifact: Artifact) -> dict[str, Any]:
    """The artifact's metadata plus a `nemotron` block: ref, location, files, lineage, manifest summary."""
    return {
        **artifact.metadata,
        "nemotron": {
            "ref": artifact.ref,
            "version": artifact.version,
            "path": str(artifact.path),
            "created_at": artifact.created_at,
            "files": dict(artifact.files),
            "lineage": artifact.lineage.to_dict(),
            "manifest": artifact.manifest.summary() if artifact.manifest else None,
        },
    }


class WandbMirror:
    """Logs artifacts to one W&B project; uses `run` (or the active wandb.run) if given, else its own run."""

    def __init__(self, project: str, entity: str | None = None, api_key: str | None = None, run: Any = None):
        self.project = project
        self.entity = entity
        self.api_key = api_key
        self.run = run

    def describe(self) -> str:
        return f"W&B {self.target}"

    @property
    def target(self) -> str:
        return f"{self.entity}/{self.project}" if self.entity else self.project

    def mirror(self, artifact: Artifact, *, registry: FileRegistry, aliases: Sequence[str] = ()) -> WandbRecord:
        import wandb

        run, owned = self._start_run(wandb, artifact)
        try:
            metadata = wandb_metadata(artifact)
            logged = wandb.Artifact(artifact.name, type=artifact.kind.value, metadata=metadata)
            references: dict[str, str] = {}
            for name, uri, checksum in reference_entries(artifact):
                logged.add_reference(uri, name=name, checksum=checksum)
                references[name] = uri
            offline = bool(getattr(run, "offline", False))
            used, skipped = self._declare_inputs(run, registry, artifact, offline)
            all_aliases = tuple(
                dict.fromkeys([*registry.aliases_of(artifact), version_alias(artifact.version), *aliases])
            )
            run.log_artifact(logged, aliases=list(all_aliases))
        finally:
            if owned:
                run.finish()
        return WandbRecord(
            self.target, artifact.name, artifact.kind.value, all_aliases, metadata, references, used, skipped, offline
        )

    def _start_run(self, wandb: Any, artifact: Artifact) -> tuple[Any, bool]:
        if self.run is not None:
            return self.run, False
        if wandb.run is not None:  # a training stage's own run: log into it, leave it open
            return wandb.run, False
        lineage = artifact.lineage
        settings = wandb.Settings(silent=True, console="off", api_key=self.api_key)
        run = wandb.init(
            project=self.project,
            entity=self.entity,
            job_type=lineage.stage,
            name=lineage.job_name,
            config={
                "nemotron": {"job_name": lineage.job_name, "job_id": lineage.job_id, "git_commit": lineage.git_commit}
            },
            settings=settings,
        )
        return run, True

    @staticmethod
    def _declare_inputs(
        run: Any, registry: FileRegistry, artifact: Artifact, offline: bool
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        used, skipped = [], []
        for _, found in artifact_inputs(registry, artifact.lineage):
            if found is None:
                continue
            name = f"{found.name}:{version_alias(found.version)}"
            if offline:
                skipped.append(name)
                continue
            try:
                run.use_artifact(name, type=found.kind.value)
                used.append(name)
            except Exception as err:  # the input was never mirrored to this project
                skipped.append(name)
                print(f"warning: W&B lineage: input {found.ref} not found in W&B as {name} ({err})", file=sys.stderr)
        return tuple(used), tuple(skipped)
