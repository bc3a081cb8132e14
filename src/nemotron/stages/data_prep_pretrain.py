"""Stage entry point: tokenize a pretraining blend and publish it as a `pretrain-data` artifact.

Run inside a job as `python -m nemotron.stages.data_prep_pretrain --config config.yaml`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STAGE = "data-prep-pretrain"


@dataclass
class TokenizerSection:
    """The Hugging Face tokenizer: a hub name or a local folder."""

    name_or_path: str
    append_eod: bool = True


@dataclass
class SplitSection:
    """Per-document split of every dataset into train/valid/test, deterministic for a seed."""

    valid_fraction: float = 0.01
    test_fraction: float = 0.01
    seed: int = 1234


@dataclass
class DataPrepPretrainConfig:
    """The stage's config (recipes/nano3/stage0_pretrain/config/data_prep/*.yaml)."""

    blend_path: str
    tokenizer: TokenizerSection
    split: SplitSection = field(default_factory=SplitSection)
    text_field: str = "text"
    batch_size: int = 256
    artifact_name: str = "nano3-pretrain-data"


def main(argv: list[str] | None = None) -> None:
    from dataclasses import asdict

    import nemotron
    from nemotron.artifacts import ArtifactKind, FileRegistry, Lineage, default_registry_root
    from nemotron.data.blend_spec import load_blend_spec
    from nemotron.data.pretrain_prep import PretrainPrepSettings, prepare_pretrain_data
    from nemotron.data.splits import SplitFractions
    from nemotron.data.tokenizer import load_tokenizer
    from nemotron.stages.runtime import load_stage_config

    config, context = load_stage_config(argv, DataPrepPretrainConfig, "data_prep_pretrain")
    blend = load_blend_spec(config.blend_path, default_text_field=config.text_field)
    tokenizer = load_tokenizer(config.tokenizer.name_or_path)
    try:
        fractions = SplitFractions(config.split.valid_fraction, config.split.test_fraction, config.split.seed)
    except ValueError as err:
        from nemotron.config import ConfigError

        raise ConfigError(f"config key 'split': {err}") from None
    settings = PretrainPrepSettings(
        blend=blend, fractions=fractions, append_eod=config.tokenizer.append_eod, batch_size=config.batch_size
    )
    print(f"data prep: {len(blend.datasets)} dataset(s) from {blend.source}, tokenizer {tokenizer.name_or_path}", flush=True)
    registry = FileRegistry(default_registry_root())
    with registry.staging(config.artifact_name) as staging:
        result = prepare_pretrain_data(settings, tokenizer, staging.path, log=lambda m: print(m, flush=True))
        totals = result.totals()
        artifact = registry.publish(
            staging,
            kind=ArtifactKind.PRETRAIN_DATA,
            lineage=Lineage(
                stage=STAGE,
                job_name=context.job_name,
                job_id=context.job_id,
                config_sha256=context.config_sha256,
                git_commit=context.git_commit,
                package_version=nemotron.__version__,
                inputs=tuple(d.path for d in blend.datasets) + (f"tokenizer:{tokenizer.name_or_path}",),
            ),
            metadata={
                "tokenizer": tokenizer.identity(),
                "dtype": result.dtype,
                "blend_source": str(blend.source),
                "datasets": {name: {s: asdict(v) for s, v in per.items()} for name, per in result.stats.items()},
                "splits": {s: asdict(v) for s, v in totals.items()},
                "empty_documents_skipped": result.empty_documents,
                "settings": {"split": asdict(config.split), "append_eod": config.tokenizer.append_eod},
            },
            files={"blend": result.blend_file},
        )
    train = totals["train"]
    print(
        f"published {artifact.ref} ({train.tokens:,} train tokens, {train.documents} train documents) "
        f"at {artifact.path} in {result.seconds:.1f}s",
        flush=True,
    )


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
