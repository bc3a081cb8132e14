"""Stage entry point: render a blend of prompt records into JSONL prompts and publish them as an `rl-data` artifact.

Run inside a job as `python -m nemotron.stages.data_prep_rl --config config.yaml`. Shards go to a data
folder named after the settings that decide their bytes; re-running skips finished shards, and publishes
nothing when the prompt files are those of the latest version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nemotron.stages.data_prep_rl_config import DataPrepRlConfig

if TYPE_CHECKING:
    from nemotron.data.chat_template import ChatTemplate
    from nemotron.data.rl_prep import RlRequest
    from nemotron.data.rl_shard import RlReceipt
    from nemotron.data.shard_runner import ShardRun
    from nemotron.data.tokenizer import TextTokenizer
    from nemotron.stages.data_prep_flow import DataPrepStart

STAGE = "data-prep-rl"


def main(argv: list[str] | None = None) -> None:
    from nemotron.data.verifiers import VerifierError, check_verifier_names
    from nemotron.stages.data_prep_flow import load_chat_prep, open_data_prep
    from nemotron.stages.data_prep_folder import writing_data_folder
    from nemotron.stages.data_prep_rl_request import build_rl_request

    start = open_data_prep(argv, DataPrepRlConfig, "data_prep_rl")
    config = start.config
    try:  # what a record without `verifier` gets: resolved here, where the job runs (its modules, math-verify)
        check_verifier_names([config.default_verifier.strip()])
    except VerifierError as err:
        raise VerifierError(f"config key 'default_verifier': {err}") from None
    tokenizer, template, request = load_chat_prep(config, start.registry.root, build_rl_request, "rl")
    with writing_data_folder(request.data_dir, config.output_dir, "rl data prep shards"):  # one writer: a lease
        _prepare(start, request, template, tokenizer)


def _prepare(
    start: DataPrepStart[DataPrepRlConfig], request: RlRequest, template: ChatTemplate, tokenizer: TextTokenizer
) -> None:
    """Render this job's shards (all of them, or an array task's share), then join the splits, and publish
    when they changed."""
    from nemotron.artifacts.file_registry import ROOT_SETTING
    from nemotron.data.rl_prep import finalize_rl, run_rl_shards
    from nemotron.stages.data_prep_flow import log_line, run_job_shards
    from nemotron.stages.data_prep_publish import publish_if_changed, publish_rl_data

    def run(only: Callable[[int], bool]) -> ShardRun[RlReceipt]:
        load = tokenizer.spec(threads=1).load  # picklable: each worker loads its own copy
        return run_rl_shards(request, template, load, log=log_line, only=only)

    shards = run_job_shards(start.context, run, "rendered")
    if shards is None:
        return
    registry, name = start.registry, start.config.artifact_name
    with registry.staging(name) as staging:  # removed unless published: a failure leaves no partial files
        result = finalize_rl(request, staging.path, shards, start.started, log=log_line, out_setting=ROOT_SETTING)
        artifact = publish_if_changed(
            registry,
            name,
            request.settings.settings_hash,
            {split: staging.path / file for split, file in result.files.items()},
            request.force,
            lambda: publish_rl_data(
                registry, start.mirrors, staging, request, result, (template, tokenizer), start.context, STAGE
            ),
        )
    if artifact is None:
        return
    total = result.total()
    verifiers = ", ".join(f"{verifier} {count}" for verifier, count in sorted(total.verifiers.items()))
    print(
        f"published {artifact.ref} ({result.splits['train'].prompts} train prompts of {total.prompts}, "
        f"verifiers: {verifiers}; prompt tokens mean {total.mean_tokens:.1f}, max {total.max_tokens}; "
        f"{result.bad_records} bad records skipped ({result.too_long} too long), {result.shards} shards, "
        f"{result.shards_done_now} rendered now) at {artifact.path} in {result.seconds:.1f}s",
        flush=True,
    )


if __name__ == "__main__":
    from nemotron.stages.runtime import run_stage

    run_stage(main)
