"""Pretraining data prep: plan shards, tokenize the missing ones in a process pool, then finalize.

Re-running skips every shard whose receipt is valid (same inputs, settings and output checksums)
and redoes missing or corrupt ones, so an interrupted run resumes and ends byte-identical to an
uninterrupted one. `finalize` checks every receipt and writes the per-split `blend.json`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nemotron.data.bad_records import check_bad_records, keep_examples
from nemotron.data.blend_spec import BlendSpec
from nemotron.data.errors import DataError
from nemotron.data.megatron_blend import write_blend
from nemotron.data.receipts import ShardReceipt, refuse_other_settings, valid_receipt
from nemotron.data.shard_files import SUFFIXES
from nemotron.data.shard_plan import WorkItem, plan_work
from nemotron.data.shard_runner import ShardJob, ShardRun, plan_receipts
from nemotron.data.shard_runner import run_shards as run_shard_job
from nemotron.data.shard_worker import ShardSettings, TokenizeItem
from nemotron.data.splits import SPLITS
from nemotron.data.tokenizer import TextTokenizer

BLEND_FILE = "blend.json"


@dataclass
class SplitStats:
    """Counts for one dataset in one split."""

    documents: int = 0
    tokens: int = 0
    bytes: int = 0


@dataclass
class PrepResult:
    """What the data folder holds: counts per dataset and split, and what was skipped."""

    data_dir: Path
    shards: int
    shards_done_now: int
    stats: dict[str, dict[str, SplitStats]] = field(default_factory=dict)
    empty_documents: int = 0
    short_documents: int = 0
    truncated_documents: int = 0
    bad_records: int = 0
    bad_examples: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # the .bin/.idx files blend.json lists (absolute)
    seconds: float = 0.0

    def totals(self) -> dict[str, SplitStats]:
        out = {split: SplitStats() for split in SPLITS}
        for per_split in self.stats.values():
            for split, s in per_split.items():
                out[split].documents += s.documents
                out[split].tokens += s.tokens
                out[split].bytes += s.bytes
        return out


@dataclass(frozen=True)
class PrepRequest:
    """One data prep run: inputs, shard plan size, settings, where, and how many workers."""

    blend: BlendSpec
    settings: ShardSettings
    data_dir: Path
    num_shards: int
    workers: int
    force: bool = False
    max_bad_records: int = 0


def run_shards(
    request: PrepRequest,
    load_tokenizer: Callable[[], TextTokenizer],
    vocab_size: int,
    log: Callable[[str], None] = print,
    only: Callable[[int], bool] = lambda i: True,
) -> ShardRun[ShardReceipt]:
    """Tokenize the planned items that `only(index)` selects and that lack a valid receipt.

    `only` lets a Slurm array task take its share.
    """
    from nemotron.data.indexed_writer import token_dtype

    items = plan_work(request.blend, request.num_shards, sample=request.settings.sample)
    refuse_other_settings(request.data_dir, request.settings.settings_hash)
    specs = {spec.name: spec for spec in request.blend.datasets}
    process = TokenizeItem(specs, request.settings, request.data_dir, token_dtype(vocab_size))
    job = ShardJob(load_tokenizer, process, lambda item: _valid(request, item), request.workers, request.force)
    return run_shard_job(items, job, log=log, only=only)


def finalize(
    request: PrepRequest,
    blend_file: Path,
    run: ShardRun[ShardReceipt],
    started: float,
    log: Callable[[str], None] = print,
    prefixes_relative_to: Path | None = None,
) -> PrepResult:
    """Check every receipt, enforce `max_bad_records`, and write `blend_file`.

    Receipts `run` checked or wrote in this process are taken as they are; the others (a Slurm
    finalize job, or shards of other array tasks) are checked against their files here.
    Prefixes are relative to `prefixes_relative_to` (the folder blend.json will finally live in,
    when that differs from where it is written), or absolute when it is None.
    """
    items = plan_work(request.blend, request.num_shards, sample=request.settings.sample)
    result = PrepResult(request.data_dir, len(items), run.done_now)
    per_split: dict[str, list[tuple[float, str]]] = {split: [] for split in SPLITS}
    checked = plan_receipts(items, run, lambda item: _valid(request, item), request.data_dir)
    receipts: dict[str, ShardReceipt] = {}
    for item, receipt in zip(items, checked, strict=True):
        receipts[item.id] = receipt
        _add(result, item, receipt)
    for spec in request.blend.datasets:
        dataset_items = [i for i in items if i.dataset == spec.name]
        for split in SPLITS:
            tokens = sum(receipts[i.id].splits[split].tokens for i in dataset_items)
            for item in dataset_items:
                share = receipts[item.id].splits[split].tokens
                if share:  # weight split among shards by tokens, so the dataset keeps its weight
                    prefix = os.path.abspath(request.data_dir / receipts[item.id].splits[split].prefix)
                    result.files += [Path(f"{prefix}{suffix}") for suffix in SUFFIXES]
                    if prefixes_relative_to is not None:
                        prefix = os.path.relpath(prefix, prefixes_relative_to)
                    per_split[split].append((spec.weight * share / tokens, prefix))
    check_bad_records(result.bad_records, result.bad_examples, request.max_bad_records)
    if not any(s.documents for s in result.totals().values()):
        raise DataError(
            f"the blend {request.blend.source} produced no documents ({result.empty_documents} empty, "
            f"{result.short_documents} shorter than min_doc_chars, {result.bad_records} malformed); "
            "check the input files, 'text_field' and min_doc_chars"
        )
    for spec in request.blend.datasets:
        if not any(s.documents for s in result.stats[spec.name].values()):
            log(f"warning: dataset {spec.name!r} produced no documents; it is left out of {BLEND_FILE}")
    for split, entries in per_split.items():
        if not entries:
            log(f"warning: split {split!r} received no documents (raise its fraction or add data)")
    write_blend(blend_file, per_split)
    result.seconds = time.perf_counter() - started
    return result


def _valid(request: PrepRequest, item: WorkItem) -> ShardReceipt | None:
    return valid_receipt(request.data_dir, item.id, item.ranges, request.settings.settings_hash)


def _add(result: PrepResult, item: WorkItem, receipt: ShardReceipt) -> None:
    stats = result.stats.setdefault(item.dataset, {split: SplitStats() for split in SPLITS})
    for split, output in receipt.splits.items():
        stats[split].documents += output.documents
        stats[split].tokens += output.tokens
        stats[split].bytes += output.bytes
    result.empty_documents += receipt.empty
    result.short_documents += receipt.short
    result.truncated_documents += receipt.truncated
    result.bad_records += receipt.bad
    keep_examples(result.bad_examples, receipt.bad_examples)
