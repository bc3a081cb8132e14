"""Stage entry point: render, mask and pack a chat blend and publish it as an `sft-data` artifact.

Run inside a job as `python -m nemotron.stages.data_prep_sft --config config.yaml`. Shards go to a
data folder named after the settings that decide their bytes; re-running skips finished shards.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from nemotron.stages.data_prep_sft_config import DataPrepSftConfig

if TYPE_CHECKING:
    from nemotron.data.sft_prep import SftRequest

STAGE = "data-prep-sft"


def build_sft_request(config: DataPrepSftConfig, registry_root: Path, template_hash: str, tokenizer: str) -> SftRequest:
    from nemotron.data.blend_spec import load_blend_spec
    from nemotron.data.sft_prep import SftRequest
    from nemotron.data.sft_shard import SftSettings
    from nemotron.data.splits import SplitFractions
    from nemotron.stages.data_prep_request import default_workers

    blend = load_blend_spec(config.blend_path, default_text_field="messages")
    fractions = SplitFractions(config.split.valid_fraction, config.split.test_fraction, config.split.seed)
    deciding = {
        "datasets": [{k: v for k, v in asdict(d).items() if k != "weight"} for d in blend.datasets],
        "tokenizer": tokenizer,
        "chat_template": template_hash,
        "split": asdict(config.split),
        "last_turn_only": config.last_turn_only,
        "num_shards": config.num_shards,
    }
    settings_hash = hashlib.sha256(json.dumps(deciding, sort_keys=True).encode()).hexdigest()
    settings = SftSettings(
        fractions, config.last_turn_only, config.pack_size, config.packing, config.overflow, settings_hash
    )
    data_dir = (
        Path(config.output_dir).expanduser()
        if config.output_dir
        else registry_root / config.artifact_name / "data" / settings_hash[:16]
    )
    workers = default_workers(config.workers)
    return SftRequest(blend, settings, data_dir, config.num_shards, workers, config.force, config.max_bad_records)


def main(argv: list[str] | None = None) -> None:
    import time

    from nemotron.artifacts import ArtifactKind, FileRegistry, default_registry_root
    from nemotron.artifacts.file_registry import ROOT_SETTING
    from nemotron.artifacts.kinds import RecordCounts, SftDataMeta, TokenizerInfo
    from nemotron.artifacts.mirrors import mirrors_from_environment, publish_with_mirrors
    from nemotron.data.chat_template import load_chat_template
    from nemotron.data.errors import DataFolderBusy
    from nemotron.data.sft_prep import finalize_sft, run_sft_shards
    from nemotron.data.sft_shard import SftReceipt
    from nemotron.data.shard_runner import ShardRun
    from nemotron.data.tokenizer import load_tokenizer
    from nemotron.lease import take_lease
    from nemotron.stages.data_prep_request import tokenizer_fingerprint
    from nemotron.stages.runtime import load_stage_config
    from nemotron.storage_errors import storage_errors

    config, context = load_stage_config(argv, DataPrepSftConfig, "data_prep_sft", phases=("shards", "finalize"))
    mirrors = mirrors_from_environment() if context.phase != "shards" else []
    started = time.perf_counter()
    registry = FileRegistry(default_registry_root())
    tokenizer = load_tokenizer(config.tokenizer.name_or_path, backend="huggingface")
    template = load_chat_template(config.chat_template, config.tokenizer.name_or_path)
    request = build_sft_request(
        config, registry.root, template.template_hash, tokenizer_fingerprint(config.tokenizer.name_or_path)
    )
    print(
        f"sft data prep: {len(request.blend.datasets)} dataset(s) from {request.blend.source}, tokenizer "
        f"{config.tokenizer.name_or_path}, chat template {template.source}, data folder {request.data_dir}",
        flush=True,
    )
    log = lambda message: print(message, flush=True)  # noqa: E731
    setting = "output_dir" if config.output_dir else "NEMOTRON_ARTIFACTS_ROOT (or output_dir)"
    with storage_errors("sft data prep shards", request.data_dir, setting):
        request.data_dir.mkdir(parents=True, exist_ok=True)
        with take_lease(request.data_dir, what="data prep output folder", error=DataFolderBusy):
            shards: ShardRun[SftReceipt] = ShardRun()
            if context.phase in (None, "shards"):
                task, tasks = context.array_index, context.array_count
                load = tokenizer.spec(threads=1).load  # picklable: each worker loads its own copy
                shards = run_sft_shards(request, template, load, log=log, only=lambda i: i % tasks == task)
                if context.phase == "shards":
                    print(f"array task {task + 1}/{tasks}: {shards.done_now} shard(s) rendered", flush=True)
                    return
            with registry.staging(config.artifact_name) as staging:
                result = finalize_sft(request, staging.path, shards, started, log=log, out_setting=ROOT_SETTING)
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
                with registry.publishing(config.artifact_name):
                    artifact = publish_with_mirrors(
                        registry,
                        mirrors,
                        staging,
                        kind=ArtifactKind.SFT_DATA,
                        lineage=context.lineage(
                            STAGE,
                            (*(d.path for d in request.blend.datasets), f"tokenizer:{config.tokenizer.name_or_path}"),
                            ("nemotron", "tokenizers", "transformers", "jinja2", "pyarrow", "numpy"),
                        ),
                        metadata=metadata,
                        files=result.files,
                    )
    train = result.splits["train"]
    print(
        f"published {artifact.ref} ({train.conversations} train conversations in {train.sequences} sequences of "
        f"{settings.pack_size} tokens, {train.loss_tokens:,} loss tokens, {result.bad_records} bad records "
        f"skipped, {result.shards} shards, {result.shards_done_now} rendered now) at {artifact.path} "
        f"in {result.seconds:.1f}s",
        flush=True,
    )


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
