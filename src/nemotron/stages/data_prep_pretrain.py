"""Stage entry point: tokenize a pretraining blend and publish it as a `pretrain-data` artifact.

Run inside a job as `python -m nemotron.stages.data_prep_pretrain --config config.yaml`. Shards
go to a data folder named after the settings that decide their bytes, so re-running the same
command skips finished shards and an interrupted run resumes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nemotron.stages.data_prep_config import DataPrepPretrainConfig

if TYPE_CHECKING:
    from nemotron.stages.data_prep_flow import DataPrepStart
    from nemotron.stages.data_prep_request import DataPrepPlan

STAGE = "data-prep-pretrain"


def main(argv: list[str] | None = None) -> None:
    from nemotron.stages.data_prep_flow import open_data_prep
    from nemotron.stages.data_prep_folder import writing_data_folder
    from nemotron.stages.data_prep_request import build_request

    start = open_data_prep(argv, DataPrepPretrainConfig, "data_prep_pretrain")
    plan = build_request(start.config, start.registry.root)
    request = plan.request
    print(
        f"data prep: {len(request.blend.datasets)} dataset(s) from {request.blend.source}, tokenizer "
        f"{plan.tokenizer.name_or_path}, data folder {request.data_dir}",
        flush=True,
    )
    with writing_data_folder(request.data_dir, start.config.output_dir, "data prep shards"):  # one writer: a lease
        _prepare(plan, start)


def _prepare(plan: DataPrepPlan, start: DataPrepStart[DataPrepPretrainConfig]) -> None:
    """Tokenize this job's shards (all of them, or an array task's share), then finalize and publish."""
    from nemotron.data.pretrain_prep import finalize, run_shards
    from nemotron.stages.data_prep_flow import log_line, run_job_shards
    from nemotron.stages.data_prep_publish import publish_if_changed, publish_pretrain_data

    request, registry, context = plan.request, start.registry, start.context
    shards = run_job_shards(
        context,
        lambda only: run_shards(request, plan.load_tokenizer, plan.tokenizer.vocab_size, log=log_line, only=only),
        "tokenized",
    )
    if shards is None:
        return
    with registry.staging(plan.artifact_name) as staging:
        # blend.json moves from the staging folder to <name>/vN: prefixes relative to any vN folder
        inside_registry = request.data_dir.is_relative_to(registry.root / plan.artifact_name)
        relative_to = registry.root / plan.artifact_name / "v1" if inside_registry else None
        result = finalize(
            request, staging.path / "blend.json", shards, start.started, log=log_line, prefixes_relative_to=relative_to
        )
        artifact = publish_if_changed(
            registry,
            plan.artifact_name,
            request.settings.settings_hash,
            {"blend": staging.path / "blend.json"},
            request.force,
            lambda: publish_pretrain_data(registry, start.mirrors, staging, plan, result, context, STAGE),
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
