"""Run the shards of a record prep (SFT chat records, RL prompt records) through the shared shard runner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from nemotron.data.blend_spec import BlendSpec, DatasetSpec
from nemotron.data.chat_template import ChatTemplate
from nemotron.data.errors import DataError
from nemotron.data.receipts import refuse_other_settings
from nemotron.data.shard_plan import WorkItem, plan_work
from nemotron.data.shard_runner import Receipt, ShardJob, ShardRun, run_shards
from nemotron.data.sources import is_structured
from nemotron.data.tokenizer import TextTokenizer

R = TypeVar("R", bound=Receipt)


class Settings(Protocol):
    """What the runner reads of a prep's settings."""

    @property
    def settings_hash(self) -> str: ...


class RecordRequest(Protocol):
    """What the runner reads of a record prep's request (`SftRequest`, `RlRequest`)."""

    @property
    def blend(self) -> BlendSpec: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def num_shards(self) -> int: ...
    @property
    def workers(self) -> int: ...
    @property
    def force(self) -> bool: ...


def run_record_shards(
    request: RecordRequest,
    template: ChatTemplate,
    load_tokenizer: Callable[[], TextTokenizer],
    render: Callable[[dict[str, DatasetSpec], Any, ChatTemplate, Path], Callable[[WorkItem, Any], R]],
    valid: Callable[[WorkItem], R | None],
    reads: str,
    records: str,
    log: Callable[[str], None] = print,
    only: Callable[[int], bool] = lambda i: True,
) -> ShardRun[R]:
    """Render the planned items that `only(index)` selects and that lack a valid receipt.

    `render(specs, settings, template, data_dir)` builds the picklable per-item process; `reads` says what
    the prep reads in the error of a plain text input (e.g. "SFT data prep reads chat records"); `records`
    is what progress lines count.
    """
    items = plan_work(request.blend, request.num_shards)
    for item in items:
        for rng in item.ranges:
            if not is_structured(rng.path):
                raise DataError(
                    f"dataset {item.dataset}: {rng.path} is a plain text file; {reads} "
                    "from JSONL (.jsonl, .json, optionally .gz), Parquet or hf:// datasets: fix 'path' in the blend"
                )
    refuse_other_settings(request.data_dir, request.settings.settings_hash)
    specs = {spec.name: spec for spec in request.blend.datasets}
    process = render(specs, request.settings, template, request.data_dir)
    job = ShardJob(load_tokenizer, process, valid, request.workers, request.force, records=records)
    return run_shards(items, job, log=log, only=only)
