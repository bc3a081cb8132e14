"""Publish finished pretraining data as a `pretrain-data` artifact with typed metadata and lineage."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from nemotron.artifacts import Artifact, ArtifactError, ArtifactKind, FileRegistry
from nemotron.artifacts.file_registry import Staging
from nemotron.artifacts.kinds import PretrainDataMeta, TokenCounts, TokenizerInfo
from nemotron.artifacts.mirrors import Mirror, publish_with_mirrors
from nemotron.data.pretrain_prep import PrepResult
from nemotron.stages.data_prep_request import DataPrepPlan
from nemotron.stages.runtime import JobContext


def publish_pretrain_data(
    registry: FileRegistry,
    mirrors: list[Mirror],
    staging: Staging,
    plan: DataPrepPlan,
    result: PrepResult,
    context: JobContext,
    stage: str,
) -> Artifact:
    """Publish blend.json (in the version) referencing the shard files it lists in place (no copies)."""
    from nemotron.data.indexed_writer import token_dtype

    request = plan.request
    settings = request.settings
    counts = lambda stats: TokenCounts(**asdict(stats))  # noqa: E731
    metadata = PretrainDataMeta(
        dtype=token_dtype(plan.tokenizer.vocab_size).name,
        splits={split: counts(s) for split, s in result.totals().items()},
        tokenizer=TokenizerInfo(**plan.tokenizer.identity()),
        datasets={name: {split: counts(s) for split, s in per.items()} for name, per in result.stats.items()},
        settings={
            "split": asdict(settings.fractions),
            "append_eod": settings.append_eod,
            "min_doc_chars": settings.min_doc_chars,
            "max_doc_tokens": settings.max_doc_tokens,
            "sample": settings.sample,
            "num_shards": request.num_shards,
        },
        bad_records=result.bad_records,
        blend_source=str(request.blend.source),
        extra={
            "data_dir": str(request.data_dir),
            "settings_hash": settings.settings_hash,
            "shards": result.shards,
            "empty_documents_skipped": result.empty_documents,
            "short_documents_skipped": result.short_documents,
            "documents_truncated": result.truncated_documents,
            "bad_records_skipped": result.bad_records,
        },
    )
    return publish_with_mirrors(
        registry,
        mirrors,
        staging,
        kind=ArtifactKind.PRETRAIN_DATA,
        lineage=context.lineage(
            stage,
            (*(d.path for d in request.blend.datasets), f"tokenizer:{plan.tokenizer.name_or_path}"),
            ("nemotron", "tokenizers", "transformers", "gigatoken", "numpy", "megatron-core"),
        ),
        metadata=metadata,
        files={"blend": "blend.json"},
        references=result.files,
    )


def unchanged_version(registry: FileRegistry, plan: DataPrepPlan, new_blend: Path) -> Artifact | None:
    """The latest version when it holds the same data (settings hash and blend.json), else None."""
    try:
        latest = registry.resolve(plan.artifact_name)
    except ArtifactError:
        return None
    same_settings = latest.metadata.get("settings_hash") == plan.request.settings.settings_hash
    if same_settings and latest.file("blend").read_text() == new_blend.read_text():
        return latest
    return None
