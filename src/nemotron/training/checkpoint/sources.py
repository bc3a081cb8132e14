"""Where a stage's starting checkpoint is: a checkpoint folder given directly, or a model-checkpoint artifact's."""

from __future__ import annotations

from pathlib import Path

from nemotron.artifacts import ArtifactKind, FileRegistry
from nemotron.config.errors import ConfigError
from nemotron.training.checkpoint.layout import CheckpointInfo, read_checkpoint_info


def checkpoint_for(ref_or_path: str, registry: FileRegistry) -> tuple[CheckpointInfo, str]:
    """A checkpoint folder (iter_XXXXXXX) given directly, or the one inside a model-checkpoint artifact."""
    info, source, _ = checkpoint_and_tokenizer(ref_or_path, registry)
    return info, source


def checkpoint_and_tokenizer(ref_or_path: str, registry: FileRegistry) -> tuple[CheckpointInfo, str, Path | None]:
    """checkpoint_for, plus the artifact's own tokenizer folder (an imported model's), if it has one."""
    path = Path(ref_or_path).expanduser()
    if path.exists():
        return read_checkpoint_info(path), str(path.resolve()), None
    artifact = registry.resolve(ref_or_path)
    if artifact.kind != ArtifactKind.MODEL_CHECKPOINT:
        raise ConfigError(
            f"{artifact.ref} is a {artifact.kind.value} artifact; give a model-checkpoint artifact (from "
            "`nemotron nano3 pretrain`, `sft` or `model import hf`) or a checkpoint folder"
        )
    tokenizer = artifact.file("tokenizer") if "tokenizer" in artifact.files else None
    return read_checkpoint_info(artifact.file("checkpoint")), artifact.ref, tokenizer
