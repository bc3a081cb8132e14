"""Stage entry point: tokenize a pretraining blend and publish it as a `pretrain-data` artifact.

Run inside a job as `python -m nemotron.stages.data_prep_pretrain --config config.yaml`. Shards
go to a data folder named after the settings that decide their bytes, so re-running the same
command skips finished shards and an interrupted run resumes.
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
    num_shards: int = 64
    workers: int | None = None  # default: the machine's cores
    force: bool = False
    min_doc_chars: int = 0
    max_doc_tokens: int | None = None
    max_bad_records: int = 0
    sample: int | None = None  # documents per dataset; published as <artifact_name>-sample
    output_dir: str | None = None  # default: <registry root>/<artifact name>/data/<settings hash>
    array_tasks: int = 0  # on Slurm: a job array of this many tasks, then a finalize job; 0: one job


def main(argv: list[str] | None = None) -> None:
    import time

    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.stages.data_prep_publish import publish_pretrain_data, unchanged_version
    from nemotron.stages.data_prep_request import build_request
    from nemotron.data.pretrain_prep import ShardRun, finalize, run_shards
    from nemotron.stages.runtime import load_stage_config

    from nemotron.artifacts.mirrors import mirrors_from_environment

    config, context = load_stage_config(argv, DataPrepPretrainConfig, "data_prep_pretrain",
                                        phases=("shards", "finalize"))
    mirrors = mirrors_from_environment() if context.phase != "shards" else []  # fail early, not after hours
    started = time.perf_counter()
    registry = FileRegistry(default_registry_root())
    plan = build_request(config, registry.root)
    request = plan.request
    print(f"data prep: {len(request.blend.datasets)} dataset(s) from {request.blend.source}, tokenizer "
          f"{plan.tokenizer.name_or_path}, data folder {request.data_dir}", flush=True)
    log = lambda message: print(message, flush=True)  # noqa: E731
    shards = ShardRun()
    if context.phase in (None, "shards"):
        task, tasks = context.array_index, context.array_count
        shards = run_shards(request, plan.load_tokenizer, plan.tokenizer.vocab_size, log=log,
                             only=lambda index: index % tasks == task)
        if context.phase == "shards":
            print(f"array task {task + 1}/{tasks}: {shards.done_now} shard(s) tokenized", flush=True)
            return
    with registry.staging(plan.artifact_name) as staging:
        # blend.json moves from the staging folder to <name>/vN: prefixes relative to any vN folder
        inside_registry = request.data_dir.is_relative_to(registry.root / plan.artifact_name)
        relative_to = registry.root / plan.artifact_name / "v1" if inside_registry else None
        result = finalize(request, staging.path / "blend.json", shards, started, log=log,
                          prefixes_relative_to=relative_to)
        current = unchanged_version(registry, plan, staging.path / "blend.json")
        if current is not None and not request.force:
            print(f"nothing changed: {current.ref} already holds this data ({current.path})", flush=True)
            return
        artifact = publish_pretrain_data(registry, mirrors, staging, plan, result, context, STAGE)
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
