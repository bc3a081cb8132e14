"""The eval run's inputs, resolved without heavy imports (launch preflight and job): models and data artifacts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nemotron.artifacts import Artifact, ArtifactKind, FileRegistry
from nemotron.artifacts.kinds import PretrainDataMeta, TokenizerInfo
from nemotron.artifacts.resolution import require_kind
from nemotron.config.errors import ConfigError
from nemotron.training.checkpoint.layout import CheckpointInfo
from nemotron.training.checkpoint.sources import checkpoint_and_tokenizer
from nemotron.training.evaluation.config import SPLITS, EvalConfig
from nemotron.training.export.from_checkpoint import tokenizer_folder, unsplit_model_config
from nemotron.training.model.config import ModelConfig

MEASURE_KINDS = {"pretrain": ArtifactKind.PRETRAIN_DATA, "sft": ArtifactKind.SFT_DATA, "rl": ArtifactKind.RL_DATA}


@dataclass(frozen=True)
class EvalModel:
    """One model to evaluate: its label in the report, its checkpoint and the architecture it was saved with."""

    label: str  # the pinned model artifact ref (name:vN), or the checkpoint folder
    checkpoint: CheckpointInfo
    config: ModelConfig  # unsplit (tensor-parallel size 1), fp32
    tokenizer_dir: Path | None  # a Hugging Face tokenizer folder for its export, when one is known here

    @property
    def step(self) -> int:
        return self.checkpoint.iteration

    def no_tokenizer(self) -> str:
        """Why lm-eval cannot run on this model's export (its tokenizer_dir is None)."""
        return f"lm-eval needs the tokenizer of {self.label}, and its checkpoint names no tokenizer folder"


@dataclass(frozen=True)
class EvalInputs:
    """The models, in the configured order, and the data artifact of each configured measure."""

    models: tuple[EvalModel, ...]
    data: dict[str, Artifact]  # "pretrain" / "sft" / "rl" -> its data artifact (configured ones only)

    def refs(self) -> dict[str, str]:
        """Measure -> the data artifact's pinned ref (for the report and the lineage)."""
        return {measure: artifact.ref for measure, artifact in self.data.items()}

    def tokenizer(self, measure: str) -> TokenizerInfo | None:
        return self.data[measure].tokenizer()

    def split_file(self, measure: str, split: str, key: str) -> Path:
        """The file of `split` (set by config key `key`) of the measure's data; ConfigError when it has none."""
        artifact = self.data[measure]
        if split in artifact.files:
            return artifact.file(split)
        present = [name for name in SPLITS if name in artifact.files]
        raise ConfigError(
            f"{key}={split!r}: {artifact.ref} has no {split} split; choose one it has ({', '.join(present) or 'none'})"
        )

    def check_pretrain_split(self, split: str, key: str) -> None:
        """ConfigError when the pretrain-data records no tokens in `split` (set by config key `key`)."""
        artifact = self.data["pretrain"]
        meta = artifact.typed_metadata()
        counts = meta.splits if isinstance(meta, PretrainDataMeta) else None
        if counts is not None and not (split in counts and counts[split].tokens > 0):
            present = [name for name in SPLITS if name in counts and counts[name].tokens > 0]
            raise ConfigError(
                f"{key}={split!r}: {artifact.ref} has no tokens in its {split} split; choose one it has "
                f"({', '.join(present) or 'none'}), or prepare the data with split.{split}_fraction > 0"
            )

    @property
    def shortest_sequence(self) -> int:
        return min(model.config.seq_length for model in self.models)


def decoding_tokenizer_missing(data_ref: str, tokenizer: TokenizerInfo | None) -> str:
    """Why the RL measures cannot run here: the rl-data's tokenizer, which decodes the answers, is not a folder."""
    where = tokenizer.name_or_path if tokenizer is not None else "none recorded"
    return (
        f"the tokenizer of {data_ref} ({where}) is not a folder on this machine; the RL measures decode answers "
        "with it: prepare the RL data with a local tokenizer folder"
    )


def resolve_model(ref_or_path: str, registry: FileRegistry) -> EvalModel:
    """A model artifact (pinned) or a checkpoint folder, with the architecture its checkpoint records."""
    info, source, artifact_tokenizer = checkpoint_and_tokenizer(ref_or_path, registry)
    return EvalModel(source, info, unsplit_model_config(info), tokenizer_folder(info, artifact_tokenizer))


def resolve_inputs(cfg: EvalConfig, registry: FileRegistry) -> EvalInputs:
    """Pin every model and data reference of `cfg` and check each data artifact's kind."""
    data: dict[str, Artifact] = {}
    for measure, kind in MEASURE_KINDS.items():
        ref = getattr(cfg.run.data, measure)
        if ref is None:
            continue
        artifact = registry.resolve(ref)
        require_kind(artifact, kind, ref=ref)
        data[measure] = artifact
    models = tuple(resolve_model(ref, registry) for ref in cfg.run.models)
    labels = [model.label for model in models]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ConfigError(
            f"run.models names {', '.join(repeated)} more than once (e.g. as name:latest and name:vN); list it once"
        )
    return EvalInputs(models, data)


def perplexity_length(cfg: EvalConfig, inputs: EvalInputs) -> int:
    """The sequence length of the perplexity samples: `perplexity.seq_length`, else the shortest model's."""
    return cfg.perplexity.seq_length or inputs.shortest_sequence
