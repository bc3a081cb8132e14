"""Stage entry point: render, mask and pack a chat blend and publish it as an `sft-data` artifact.

Run inside a job as `python -m nemotron.stages.data_prep_sft --config config.yaml`. Shards go to a
data folder named after the settings that decide their bytes; re-running skips finished shards, and
publishes nothing when the packed files are those of the latest version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nemotron.stages.data_prep_sft_config import DataPrepSftConfig

if TYPE_CHECKING:
    from nemotron.artifacts import FileRegistry
    from nemotron.artifacts.mirrors import Mirror
    from nemotron.data.chat_template import ChatTemplate
    from nemotron.data.sft_prep import SftRequest
    from nemotron.data.tokenizer import TextTokenizer
    from nemotron.stages.runtime import JobContext

STAGE = "data-prep-sft"


def main(argv: list[str] | None = None) -> None:
    import time

    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.artifacts.mirrors import mirrors_from_environment
    from nemotron.data.chat_template import load_chat_template
    from nemotron.data.tokenizer import load_tokenizer
    from nemotron.stages.data_prep_folder import writing_data_folder
    from nemotron.stages.data_prep_request import tokenizer_fingerprint
    from nemotron.stages.data_prep_sft_request import build_sft_request
    from nemotron.stages.runtime import load_stage_config

    config, context = load_stage_config(argv, DataPrepSftConfig, "data_prep_sft", phases=("shards", "finalize"))
    mirrors = mirrors_from_environment() if context.phase != "shards" else []  # fail early, not after hours
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
    with writing_data_folder(request.data_dir, config.output_dir, "sft data prep shards"):  # one writer: a lease
        _prepare(config, request, template, tokenizer, context, registry, mirrors, started, log)


def _prepare(
    config: DataPrepSftConfig,
    request: SftRequest,
    template: ChatTemplate,
    tokenizer: TextTokenizer,
    context: JobContext,
    registry: FileRegistry,
    mirrors: list[Mirror],
    started: float,
    log: Callable[[str], None],
) -> None:
    """Render this job's shards (all of them, or an array task's share), then pack, and publish when changed."""
    from nemotron.artifacts.file_registry import ROOT_SETTING
    from nemotron.data.sft_prep import finalize_sft, run_sft_shards
    from nemotron.data.sft_shard import SftReceipt
    from nemotron.data.shard_runner import ShardRun
    from nemotron.stages.data_prep_publish import publish_if_changed, publish_sft_data

    shards: ShardRun[SftReceipt] = ShardRun()
    if context.phase in (None, "shards"):
        task, tasks = context.array_index, context.array_count
        load = tokenizer.spec(threads=1).load  # picklable: each worker loads its own copy
        shards = run_sft_shards(request, template, load, log=log, only=lambda i: i % tasks == task)
        if context.phase == "shards":
            print(f"array task {task + 1}/{tasks}: {shards.done_now} shard(s) rendered", flush=True)
            return
    name = config.artifact_name
    with registry.staging(name) as staging:  # removed unless published: a failure leaves no partial files
        result = finalize_sft(request, staging.path, shards, started, log=log, out_setting=ROOT_SETTING)
        packed = {split: staging.path / file for split, file in result.files.items()}
        artifact = publish_if_changed(
            registry,
            name,
            request.settings.settings_hash,
            packed,
            request.force,
            lambda: publish_sft_data(
                registry, mirrors, staging, request, result, (template, tokenizer), context, STAGE
            ),
        )
    if artifact is None:
        return
    train = result.splits["train"]
    print(
        f"published {artifact.ref} ({train.conversations} train conversations in {train.sequences} sequences of "
        f"{request.settings.pack_size} tokens, {train.loss_tokens:,} loss tokens, {result.bad_records} bad records "
        f"skipped, {result.shards} shards, {result.shards_done_now} rendered now) at {artifact.path} "
        f"in {result.seconds:.1f}s",
        flush=True,
    )


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
