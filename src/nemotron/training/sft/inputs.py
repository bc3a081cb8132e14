"""The SFT run's inputs, resolved without heavy imports (launch preflight and job): sft-data and starting checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nemotron.artifacts import Artifact, ArtifactKind, FileRegistry
from nemotron.artifacts.kinds import SftDataMeta, TokenizerInfo
from nemotron.artifacts.resolution import require_kind
from nemotron.training.checkpoint.layout import CheckpointInfo
from nemotron.training.checkpoint.sources import checkpoint_for
from nemotron.training.datasets.gpt import TrainingDataError
from nemotron.training.sft.config import SftConfig


@dataclass(frozen=True)
class SftInputs:
    """The run's inputs, resolved: the sft-data artifact (its split files) and the starting checkpoint."""

    data: Artifact
    start: CheckpointInfo
    start_source: str  # the model artifact's pinned ref, or the checkpoint folder

    @property
    def tokenizer(self) -> TokenizerInfo | None:
        meta = self.data.typed_metadata()
        return meta.tokenizer if isinstance(meta, SftDataMeta) else None

    def split_file(self, split: str) -> Path | None:
        return self.data.file(split) if split in self.data.files else None

    def train_rows(self) -> int:
        import pyarrow.parquet as pq

        train = self.split_file("train")
        if train is None:
            raise TrainingDataError(f"{self.data.ref} has no train split; prepare the SFT data again")
        return int(pq.ParquetFile(train).metadata.num_rows)


def resolve_inputs(cfg: SftConfig, registry: FileRegistry) -> SftInputs:
    """Pin `run.data` (an sft-data artifact) and find the checkpoint `run.model` names."""
    data = registry.resolve(cfg.run.data)
    require_kind(data, ArtifactKind.SFT_DATA, ref=cfg.run.data)
    start, source = checkpoint_for(cfg.run.model, registry)
    return SftInputs(data, start, source)
