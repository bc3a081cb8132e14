"""Publish an eval report as an `eval` artifact whose lineage names every model and data artifact measured."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from nemotron.artifacts import Artifact, ArtifactError, ArtifactKind, EvalMeta, FileRegistry
from nemotron.artifacts.mirrors import Mirror, publish_with_mirrors
from nemotron.stages.runtime import JobContext

REPORT_ROLE = "report"


def evaluated_before(registry: FileRegistry, name: str, config_sha256: str) -> Artifact | None:
    """The latest version of `name` when a job with this very config (models and data pinned) published it."""
    try:
        latest = registry.resolve(name)
    except ArtifactError:
        return None
    same = latest.kind == ArtifactKind.EVAL and latest.lineage.config_sha256 == config_sha256
    return latest if same and REPORT_ROLE in latest.files else None


def publish_eval(
    registry: FileRegistry,
    mirrors: list[Mirror],
    name: str,
    report_file: Path,
    metadata: EvalMeta,
    context: JobContext,
    stage: str,
) -> Artifact:
    """Publish a copy of `report_file` as the next version of `name`; its lineage names every model and data
    artifact of `metadata`."""
    inputs: Sequence[str] = (*metadata.models, *metadata.data.values())
    with registry.staging(name) as staging:
        shutil.copy2(report_file, staging.path / report_file.name)
        return publish_with_mirrors(
            registry,
            mirrors,
            staging,
            kind=ArtifactKind.EVAL,
            lineage=context.lineage(stage, inputs, ("nemotron", "torch", "megatron-core", "lm-eval")),
            metadata=metadata,
            files={REPORT_ROLE: report_file.name},
        )
