"""The SFT run's inputs, resolved without heavy imports (launch preflight and job): sft-data and starting checkpoint."""

from __future__ import annotations

from dataclasses import dataclass

from nemotron.artifacts import ArtifactKind, FileRegistry
from nemotron.training.datasets.gpt import TrainingDataError
from nemotron.training.run.inputs import StageInputs, resolve_stage_inputs
from nemotron.training.sft.config import SftConfig


@dataclass(frozen=True)
class SftInputs(StageInputs):
    """The run's inputs, resolved: the sft-data artifact (its split files) and the starting checkpoint."""

    def train_rows(self) -> int:
        import pyarrow.parquet as pq

        train = self.split_file("train")
        if train is None:
            raise TrainingDataError(f"{self.data.ref} has no train split; prepare the SFT data again")
        return int(pq.ParquetFile(train).metadata.num_rows)


def resolve_inputs(cfg: SftConfig, registry: FileRegistry) -> SftInputs:
    """Pin `run.data` (an sft-data artifact) and find the checkpoint `run.model` names."""
    found = resolve_stage_inputs(cfg.run.data, cfg.run.model, ArtifactKind.SFT_DATA, registry)
    return SftInputs(found.data, found.start, found.start_source)
