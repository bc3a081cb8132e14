"""Stage entry point: tokenize a pretraining blend and publish it as a `pretrain-data` artifact.

Run inside a job as `python -m nemotron.stages.data_prep_pretrain --config config.yaml`. Shards
go to a data folder named after the settings that decide their bytes, so re-running the same
command skips finished shards and an interrupted run resumes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nemotron.stages.data_prep_config import DataPrepPretrainConfig

if TYPE_CHECKING:
    from nemotron.artifacts import FileRegistry
    from nemotron.artifacts.mirrors import Mirror
    from nemotron.stages.data_prep_request import DataPrepPlan
    from nemotron.stages.runtime import JobContext

STAGE = "data-prep-pretrain"


def main(argv: list[str] | None = None) -> None:
    import time

    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.artifacts.mirrors import mirrors_from_environment
    from nemotron.stages.data_prep_folder import writing_data_folder
    from nemotron.stages.data_prep_request import build_request
    from nemotron.stages.runtime import load_stage_config

    config, context = load_stage_config(
        argv, DataPrepPretrainConfig, "data_prep_pretrain", phases=("shards", "finalize")
    )
    mirrors = mirrors_from_environment() if context.phase != "shards" else []  # fail early, not after hours
    started = time.perf_counter()
    registry = FileRegistry(default_registry_root())
    plan = build_request(config, registry.root)
    request = plan.request
    print(
        f"data prep: {len(request.blend.datasets)} dataset(s) from {request.blend.source}, tokenizer "
        f"{plan.tokenizer.name_or_path}, data folder {request.data_dir}",
        flush=True,
    )
    log = lambda message: print(message, flush=True)  # noqa: E731
    with writing_data_folder(request.data_dir, config.output_dir, "data prep shards"):  # one writer: a lease
        _prepare(plan, context, registry, mirrors, started, log)


def _prepare(
    plan: DataPrepPlan,
    context: JobContext,
    registry: FileRegistry,
    mirrors: list[Mirror],
    started: float,
    log: Callable[[str], None],
) -> None:
    """Tokenize this job's shards (all of them, or an array task's share), then finalize and publish."""
    from nemotron.data.pretrain_prep import ShardRun, finalize, run_shards
    from nemotron.data.receipts import ShardReceipt
    from nemotron.stages.data_prep_publish import publish_if_changed, publish_pretrain_data

    request = plan.request
    shards: ShardRun[ShardReceipt] = ShardRun()
    if context.phase in (None, "shards"):
        task, tasks = context.array_index, context.array_count
        shards = run_shards(
            request, plan.load_tokenizer, plan.tokenizer.vocab_size, log=log, only=lambda index: index % tasks == task
        )
        if context.phase == "shards":
            print(f"array task {task + 1}/{tasks}: {shards.done_now} shard(s) tokenized", flush=True)
            return
    with registry.staging(plan.artifact_name) as staging:
        # blend.json moves from the staging folder to <name>/vN: prefixes relative to any vN folder
        inside_registry = request.data_dir.is_relative_to(registry.root / plan.artifact_name)
        relative_to = registry.root / plan.artifact_name / "v1" if inside_registry else None
        result = finalize(
            request, staging.path / "blend.json", shards, started, log=log, prefixes_relative_to=relative_to
        )
        artifact = publish_if_changed(
            registry,
            plan.artifact_name,
            request.settings.settings_hash,
            {"blend": staging.path / "blend.json"},
            request.force,
            lambda: publish_pretrain_data(registry, mirrors, staging, plan, result, context, STAGE),
        )
    if artifact is None:
        return
    train = result.totals()["train"]
    print(
        f"published {artifact.ref} ({train.tokens:,} train tokens, {train.documents} train documents, "
        f"{result.shards} shards, {result.shards_done_now} tokenized now) at {artifact.path} "
        f"in {result.seconds:.1f}s",
        flush=True,
    )


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
