"""Publish finished data prep output (`pretrain-data`, `sft-data`, `rl-data`) with typed metadata and lineage,
or find that the latest version already holds it."""

from __future__ import annotations

import filecmp
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from nemotron.artifacts import Artifact, ArtifactError, ArtifactKind, FileRegistry, Lineage
from nemotron.artifacts.file_registry import Staging
from nemotron.artifacts.kinds import (
    LengthStats,
    PretrainDataMeta,
    RecordCounts,
    RLDataMeta,
    SftDataMeta,
    TokenCounts,
    TokenizerInfo,
)
from nemotron.artifacts.mirrors import Mirror, publish_with_mirrors
from nemotron.data.chat_template import ChatTemplate
from nemotron.data.pretrain_prep import PrepResult
from nemotron.data.rl_prep import PromptSplit, RlRequest, RlResult
from nemotron.data.sft_prep import SftRequest, SftResult
from nemotron.data.tokenizer import TextTokenizer
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


def unchanged_version(registry: FileRegistry, name: str, settings_hash: str, files: dict[str, Path]) -> Artifact | None:
    """The latest version of `name` when it holds the same data, else None: made with the same settings
    hash and holding, for each role of `files` (role -> the new file), a byte-identical file, and no other."""
    try:
        latest = registry.resolve(name)
    except ArtifactError:
        return None
    if latest.metadata.get("settings_hash") != settings_hash or set(latest.files) != set(files):
        return None
    for role, new in files.items():
        old = latest.file(role)
        if not old.is_file() or not filecmp.cmp(old, new, shallow=False):
            return None
    return latest


def publish_if_changed(
    registry: FileRegistry,
    name: str,
    settings_hash: str,
    files: dict[str, Path],
    force: bool,
    publish: Callable[[], Artifact],
) -> Artifact | None:
    """`publish()` the next version of `name`, unless (and not `force`) the latest one already holds `files`
    (see `unchanged_version`): then say so and return None. No other publisher of the name runs in between."""
    with registry.publishing(name):
        current = unchanged_version(registry, name, settings_hash, files)
        if current is not None and not force:
            print(f"nothing changed: {current.ref} already holds this data ({current.path})", flush=True)
            return None
        return publish()


def publish_sft_data(
    registry: FileRegistry,
    mirrors: list[Mirror],
    staging: Staging,
    request: SftRequest,
    result: SftResult,
    rendering: tuple[ChatTemplate, TextTokenizer],
    context: JobContext,
    stage: str,
) -> Artifact:
    """Publish the packed parquet files of each split (in the version) with their counts and settings."""
    template, tokenizer = rendering
    settings = request.settings
    metadata = SftDataMeta(
        format="packed-parquet",
        records=sum(s.conversations for s in result.splits.values()),
        tokens=sum(s.tokens for s in result.splits.values()),
        tokenizer=TokenizerInfo(**tokenizer.identity()),
        splits={
            split: RecordCounts(
                s.conversations,
                s.tokens,
                extra={
                    "sequences": s.sequences,
                    "loss_tokens": s.loss_tokens,
                    "packing_efficiency": s.stats.efficiency if s.stats else 0.0,
                    "truncated": s.stats.truncated if s.stats else 0,
                    "dropped": s.stats.dropped if s.stats else 0,
                },
            )
            for split, s in result.splits.items()
        },
        seq_length=settings.pack_size,
        chat_template=template.template_hash,
        settings={
            "pack_size": settings.pack_size,
            "packing": settings.packing,
            "overflow": settings.overflow,
            "last_turn_only": settings.last_turn_only,
            "split": asdict(settings.fractions),
            "num_shards": request.num_shards,
            "chat_template": template.identity(),
        },
        bad_records=result.bad_records,
        extra={
            "data_dir": str(request.data_dir),
            "settings_hash": settings.settings_hash,
            "shards": result.shards,
            "bad_examples": result.bad_examples,
            "blend_source": str(request.blend.source),
        },
    )
    packages = ("nemotron", "tokenizers", "transformers", "jinja2", "pyarrow", "numpy")
    lineage = _chat_lineage(context, stage, request, tokenizer, packages)
    return publish_with_mirrors(
        registry, mirrors, staging, kind=ArtifactKind.SFT_DATA, lineage=lineage, metadata=metadata, files=result.files
    )


def publish_rl_data(
    registry: FileRegistry,
    mirrors: list[Mirror],
    staging: Staging,
    request: RlRequest,
    result: RlResult,
    rendering: tuple[ChatTemplate, TextTokenizer],
    context: JobContext,
    stage: str,
) -> Artifact:
    """Publish the prompt JSONL file of each split (in the version) with its counts, verifiers and settings."""
    template, tokenizer = rendering
    settings = request.settings
    total = result.total()
    metadata = RLDataMeta(
        format="jsonl-prompts",
        records=total.prompts,
        tokens=total.tokens,
        tokenizer=TokenizerInfo(**tokenizer.identity()),
        splits={split: _prompt_counts(s) for split, s in result.splits.items()},
        datasets={name: {split: _prompt_counts(s) for split, s in d.items()} for name, d in result.datasets.items()},
        settings={
            "max_prompt_tokens": settings.max_prompt_tokens,
            "default_verifier": settings.default_verifier,
            "split": asdict(settings.fractions),
            "num_shards": request.num_shards,
            "chat_template": template.identity(),
        },
        bad_records=result.bad_records,
        chat_template=template.template_hash,
        verifiers=total.verifiers,
        prompt_tokens=LengthStats(total.mean_tokens, total.max_tokens),
        extra={
            "data_dir": str(request.data_dir),
            "settings_hash": settings.settings_hash,
            "shards": result.shards,
            "prompts_too_long": result.too_long,
            "bad_examples": result.bad_examples,
            "blend_source": str(request.blend.source),
        },
    )
    lineage = _chat_lineage(context, stage, request, tokenizer, ("nemotron", "tokenizers", "transformers", "jinja2"))
    return publish_with_mirrors(
        registry, mirrors, staging, kind=ArtifactKind.RL_DATA, lineage=lineage, metadata=metadata, files=result.files
    )


def _chat_lineage(
    context: JobContext,
    stage: str,
    request: SftRequest | RlRequest,
    tokenizer: TextTokenizer,
    packages: tuple[str, ...],
) -> Lineage:
    """A chat prep's lineage: the blend's datasets and the tokenizer, and the versions of `packages`."""
    inputs = (*(d.path for d in request.blend.datasets), f"tokenizer:{tokenizer.name_or_path}")
    return context.lineage(stage, inputs, packages)


def _prompt_counts(split: PromptSplit) -> RecordCounts:
    """One split's prompts (of one dataset, or all): count, tokens, verifiers and prompt lengths."""
    lengths = LengthStats(split.mean_tokens, split.max_tokens).to_dict()
    return RecordCounts(split.prompts, split.tokens, extra={"verifiers": split.verifiers, "prompt_tokens": lengths})
