"""The data prep stages' shared flow: open the stage, load a chat prep's inputs, run this job's shards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from nemotron.artifacts import FileRegistry
    from nemotron.artifacts.mirrors import Mirror
    from nemotron.data.chat_template import ChatTemplate
    from nemotron.data.record_shards import RecordRequest
    from nemotron.data.shard_runner import Receipt, ShardRun
    from nemotron.data.tokenizer import TextTokenizer
    from nemotron.stages.chat_prep_request import ChatPrepKeys
    from nemotron.stages.runtime import JobContext

C = TypeVar("C")
K = TypeVar("K", bound="ChatPrepKeys")
Q = TypeVar("Q", bound="RecordRequest")
R = TypeVar("R", bound="Receipt")


@dataclass(frozen=True)
class DataPrepStart(Generic[C]):
    """A data prep job as it starts: its config and context, mirrors, registry, and when it started."""

    config: C
    context: JobContext
    mirrors: list[Mirror]
    registry: FileRegistry
    started: float


def open_data_prep(argv: list[str] | None, schema: type[C], stage: str) -> DataPrepStart[C]:
    """Read the stage config (phases `shards`, `finalize`), the mirrors (not in the shards phase) and the registry."""
    import time

    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.artifacts.mirrors import mirrors_from_environment
    from nemotron.stages.runtime import load_stage_config

    config, context = load_stage_config(argv, schema, stage, phases=("shards", "finalize"))
    mirrors = mirrors_from_environment() if context.phase != "shards" else []  # fail early, not after hours
    started = time.perf_counter()
    return DataPrepStart(config, context, mirrors, FileRegistry(default_registry_root()), started)


def log_line(message: str) -> None:
    """A progress line, flushed."""
    print(message, flush=True)


def load_chat_prep(
    config: K,
    registry_root: Path,
    build: Callable[[K, Path, str, str], Q],
    label: str,
) -> tuple[TextTokenizer, ChatTemplate, Q]:
    """A chat prep's tokenizer, chat template and request (`build(config, registry_root, template hash,
    tokenizer fingerprint)`), announced in one line that starts with `label`."""
    from nemotron.data.chat_template import load_chat_template
    from nemotron.data.tokenizer import load_tokenizer
    from nemotron.stages.data_prep_request import tokenizer_fingerprint

    tokenizer = load_tokenizer(config.tokenizer.name_or_path, backend="huggingface")
    template = load_chat_template(config.chat_template, config.tokenizer.name_or_path)
    request = build(config, registry_root, template.template_hash, tokenizer_fingerprint(config.tokenizer.name_or_path))
    print(
        f"{label} data prep: {len(request.blend.datasets)} dataset(s) from {request.blend.source}, tokenizer "
        f"{config.tokenizer.name_or_path}, chat template {template.source}, data folder {request.data_dir}",
        flush=True,
    )
    return tokenizer, template, request


def run_job_shards(
    context: JobContext, run: Callable[[Callable[[int], bool]], ShardRun[R]], done: str
) -> ShardRun[R] | None:
    """This job's shards: `run(only)` on an array task's share (all of them outside an array); none in the
    finalize phase. None when this job is the shards phase, reported as shards `done` ("rendered")."""
    from nemotron.data.shard_runner import ShardRun

    if context.phase not in (None, "shards"):
        return ShardRun()
    task, tasks = context.array_index, context.array_count
    shards = run(lambda i: i % tasks == task)
    if context.phase == "shards":
        print(f"array task {task + 1}/{tasks}: {shards.done_now} shard(s) {done}", flush=True)
        return None
    return shards
