"""Publish a training checkpoint as a `model-checkpoint` artifact with lineage to its data artifact."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemotron.artifacts import Artifact, ArtifactKind, FileRegistry
from nemotron.artifacts.kinds import ModelCheckpointMeta, TokenizerInfo
from nemotron.artifacts.mirrors import Mirror, publish_with_mirrors
from nemotron.stages.runtime import JobContext

if TYPE_CHECKING:
    from nemotron.training.checkpoint.layout import CheckpointInfo

CHECKPOINT_SUBDIR = "checkpoint"


def link_tree(source: Path, target: Path) -> None:
    """Copy a folder as hard links where the filesystem allows (free, and immune to later pruning), else bytes."""
    for folder, _, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            src, dst = Path(folder) / name, target / relative / name
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


def published_version(registry: FileRegistry, name: str, checkpoint: CheckpointInfo) -> Artifact | None:
    """The latest version of `name` when it was published from this very checkpoint (same folder and step)."""
    from nemotron.artifacts import ArtifactError

    try:
        latest = registry.resolve(name)
    except ArtifactError:
        return None
    same_folder = latest.metadata.get("source_checkpoint") == str(checkpoint.path)
    return latest if same_folder and latest.metadata.get("step") == checkpoint.iteration else None


def publish_model_checkpoint(
    registry: FileRegistry,
    mirrors: list[Mirror],
    name: str,
    checkpoint: Path,
    metadata: dict,
    context: JobContext,
    stage: str,
    *,
    loss: float | None,
    inputs: Sequence[str] = (),
    folders: Mapping[str, Sequence[Path]] | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> Artifact:
    """Publish the checkpoint folder `checkpoint` (an iter_XXXXXXX folder) as the next version of `name`.

    `inputs`: more lineage inputs; `folders`: more file roles, each a folder of copies of the given files;
    `evaluation`: what the stage measured on the model (e.g. held-out exact match), kept in its metadata.
    """

    state = metadata["train_state"]
    tokenizer = metadata.get("tokenizer")
    meta = ModelCheckpointMeta(
        step=int(state["iteration"]),
        tokens_seen=int(state["tokens_seen"]),
        architecture=dict(metadata["model"]),
        parallelism=dict(metadata["parallelism"]),
        loss=loss,
        format="megatron-dist",
        tokenizer=TokenizerInfo(**tokenizer) if tokenizer else None,
        extra={
            "run_name": metadata.get("run_name"),
            "train_iters": metadata.get("train_iters"),
            "validation": state.get("last_eval") or {},
            "source_checkpoint": str(checkpoint),
            **({"peft": metadata["peft"]} if metadata.get("peft") else {}),  # adapters only: their base and settings
            **({"evaluation": dict(evaluation)} if evaluation else {}),
        },
    )
    inputs = tuple(ref for ref in (metadata.get("data"),) if ref) + tuple(inputs)
    if tokenizer:
        inputs += (f"tokenizer:{tokenizer['name_or_path']}",)
    with registry.staging(name) as staging:
        link_tree(checkpoint, staging.path / CHECKPOINT_SUBDIR)
        for role, paths in (folders or {}).items():
            (staging.path / role).mkdir()
            for path in paths:
                shutil.copy2(path, staging.path / role / path.name)
        return publish_with_mirrors(
            registry,
            mirrors,
            staging,
            kind=ArtifactKind.MODEL_CHECKPOINT,
            lineage=context.lineage(stage, inputs, ("nemotron", "torch", "megatron-core", "numpy")),
            metadata=meta,
            files={"checkpoint": CHECKPOINT_SUBDIR, **{role: role for role in folders or {}}},
        )
