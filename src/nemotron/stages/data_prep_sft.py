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
    from nemotron.data.chat_template import ChatTemplate
    from nemotron.data.sft_prep import SftRequest
    from nemotron.data.sft_shard import SftReceipt
    from nemotron.data.shard_runner import ShardRun
    from nemotron.data.tokenizer import TextTokenizer
    from nemotron.stages.data_prep_flow import DataPrepStart

STAGE = "data-prep-sft"


def main(argv: list[str] | None = None) -> None:
    from nemotron.stages.data_prep_flow import load_chat_prep, open_data_prep
    from nemotron.stages.data_prep_folder import writing_data_folder
    from nemotron.stages.data_prep_sft_request import build_sft_request

    start = open_data_prep(argv, DataPrepSftConfig, "data_prep_sft")
    config = start.config
    tokenizer, template, request = load_chat_prep(config, start.registry.root, build_sft_request, "sft")
    with writing_data_folder(request.data_dir, config.output_dir, "sft data prep shards"):  # one writer: a lease
        _prepare(start, request, template, tokenizer)


def _prepare(
    start: DataPrepStart[DataPrepSftConfig], request: SftRequest, template: ChatTemplate, tokenizer: TextTokenizer
) -> None:
    """Render this job's shards (all of them, or an array task's share), then pack, and publish when changed."""
    from nemotron.artifacts.file_registry import ROOT_SETTING
    from nemotron.data.sft_prep import finalize_sft, run_sft_shards
    from nemotron.stages.data_prep_flow import log_line, run_job_shards
    from nemotron.stages.data_prep_publish import publish_if_changed, publish_sft_data

    def run(only: Callable[[int], bool]) -> ShardRun[SftReceipt]:
        load = tokenizer.spec(threads=1).load  # picklable: each worker loads its own copy
        return run_sft_shards(request, template, load, log=log_line, only=only)

    shards = run_job_shards(start.context, run, "rendered")
    if shards is None:
        return
    registry, name = start.registry, start.config.artifact_name
    with registry.staging(name) as staging:  # removed unless published: a failure leaves no partial files
        result = finalize_sft(request, staging.path, shards, start.started, log=log_line, out_setting=ROOT_SETTING)
        packed = {split: staging.path / file for split, file in result.files.items()}
        artifact = publish_if_changed(
            registry,
            name,
            request.settings.settings_hash,
            packed,
            request.force,
            lambda: publish_sft_data(
                registry, start.mirrors, staging, request, result, (template, tokenizer), start.context, STAGE
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
