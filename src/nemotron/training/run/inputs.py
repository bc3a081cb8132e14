"""A fine-tuning stage's inputs, resolved without heavy imports: its data artifact and its starting checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron.artifacts import Artifact, ArtifactKind, FileRegistry
from nemotron.artifacts.kinds import TokenizerInfo
from nemotron.artifacts.resolution import require_kind
from nemotron.training.checkpoint.layout import CheckpointInfo
from nemotron.training.checkpoint.sources import checkpoint_for


@dataclass(frozen=True)
class StageInputs:
    """The data artifact (its split files, its tokenizer) and the checkpoint the run starts from."""

    data: Artifact
    start: CheckpointInfo
    start_source: str  # the model artifact's pinned ref, or the checkpoint folder

    @property
    def tokenizer(self) -> TokenizerInfo | None:
        return self.data.tokenizer()

    def split_file(self, split: str) -> Path | None:
        return self.data.file(split) if split in self.data.files else None

    def hf_tokenizer(self) -> Any | None:
        """The data's Hugging Face tokenizer when its folder is on this machine, else None."""
        return load_hf_tokenizer(self.tokenizer)


def load_hf_tokenizer(tokenizer: TokenizerInfo | None) -> Any | None:
    """The Hugging Face tokenizer `tokenizer` names when it is a folder on this machine, else None."""
    if tokenizer is None or not Path(tokenizer.name_or_path).is_dir():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer.name_or_path)


def resolve_stage_inputs(data_ref: str, model_ref: str, kind: ArtifactKind, registry: FileRegistry) -> StageInputs:
    """Pin `data_ref` (an artifact of `kind`) and find the checkpoint `model_ref` names."""
    data = registry.resolve(data_ref)
    require_kind(data, kind, ref=data_ref)
    start, source = checkpoint_for(model_ref, registry)
    return StageInputs(data, start, source)
