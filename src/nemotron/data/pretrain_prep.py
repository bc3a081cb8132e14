"""Pretraining data prep: plan shards, tokenize the missing ones in a process pool, then finalize.

Re-running skips every shard whose receipt is valid (same inputs, settings and output checksums)
and redoes missing or corrupt ones, so an interrupted run resumes and ends byte-identical to an
uninterrupted one. `finalize` checks every receipt and writes the per-split `blend.json`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nemotron.data.blend_spec import BlendSpec
from nemotron.data.errors import DataError
from nemotron.data.megatron_blend import write_blend
from nemotron.data.receipts import ShardReceipt, valid_receipt
from nemotron.data.shard_files import SUFFIXES
from nemotron.data.shard_plan import WorkItem, plan_work
from nemotron.data.shard_worker import ShardSettings, init_worker, process_item, run_in_worker
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


@dataclass
class ShardRun:
    """What `run_shards` did in this process: shards tokenized now, and the receipts it checked or wrote
    (so `finalize` need not hash those shards again)."""

    done_now: int = 0
    receipts: dict[str, ShardReceipt] = field(default_factory=dict)


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
) -> ShardRun:
    """Tokenize the planned items that `only(index)` selects and that lack a valid receipt.

    `only` lets a Slurm array task take its share.
    """
    from nemotron.data.indexed_writer import token_dtype

    dtype = token_dtype(vocab_size)
    items = plan_work(request.blend, request.num_shards, sample=request.settings.sample)
    specs = {spec.name: spec for spec in request.blend.datasets}
    _refuse_other_settings(request)
    mine = [item for index, item in enumerate(items) if only(index)]
    run = ShardRun()
    if not request.force:
        for item in mine:
            if (receipt := _valid(request, item)) is not None:
                run.receipts[item.id] = receipt
    pending = [item for item in mine if item.id not in run.receipts]
    log(
        f"{len(items)} shards planned, {len(mine) - len(pending)} of {len(mine)} already done, "
        f"{len(pending)} to do with {min(request.workers, max(len(pending), 1))} worker(s)"
    )
    if not pending:
        return run
    jobs = [(item, specs[item.dataset], request.settings, request.data_dir, dtype) for item in pending]
    progress = _Progress(len(pending), log)

    def done(receipt: ShardReceipt) -> None:
        run.receipts[receipt.item_id] = receipt
        run.done_now += 1
        progress.done(receipt)

    if request.workers <= 1 or len(pending) == 1:
        tokenizer = load_tokenizer()
        for item, spec, settings, data_dir, dt in jobs:
            done(process_item(item, spec, settings, tokenizer, data_dir, dt))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        # spawn: no forked tokenizer threads or locks. A worker that dies (killed, out of memory)
        # fails the stage instead of hanging it; finished shards keep their receipts for the rerun.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            min(request.workers, len(pending)), mp_context=context, initializer=init_worker, initargs=(load_tokenizer,)
        ) as pool:
            futures = [pool.submit(run_in_worker, job) for job in jobs]
            try:
                for future in as_completed(futures):
                    done(future.result())
            except BrokenProcessPool as err:
                raise DataError(f"a data prep worker died ({err}); re-run the stage to resume") from None
    return run


def finalize(
    request: PrepRequest,
    blend_file: Path,
    run: ShardRun,
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
    receipts: dict[str, ShardReceipt] = {}
    for item in items:
        receipt = run.receipts.get(item.id) or _valid(request, item)
        if receipt is None:
            raise DataError(
                f"shard {item.id} in {request.data_dir} is missing or does not match its receipt; "
                "re-run the stage to redo it"
            )
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
    if result.bad_records > request.max_bad_records:
        raise DataError(
            f"{result.bad_records} malformed records (max_bad_records={request.max_bad_records}); first: "
            + "; ".join(result.bad_examples)
            + ". Fix the inputs or raise max_bad_records to skip them."
        )
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


def _refuse_other_settings(request: PrepRequest) -> None:
    """Never overwrite shards made with other settings: a published artifact may point at them."""
    for path in sorted((request.data_dir / "receipts").glob("*/*.json")):
        try:
            other = json.loads(path.read_text()).get("settings_hash")
        except (OSError, ValueError, AttributeError):
            continue  # unreadable: that shard is redone like any invalid one
        if other != request.settings.settings_hash:
            raise DataError(
                f"data folder {request.data_dir} holds shards made with other settings ({path} has settings "
                f"hash {str(other)[:16]}, this run {request.settings.settings_hash[:16]}), and a published "
                "artifact may use them; set output_dir to another folder (or null: one folder per settings) "
                "or delete that folder first"
            )


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
    result.bad_examples.extend(receipt.bad_examples[: max(0, 5 - len(result.bad_examples))])


class _Progress:
    """Documents, tokens and tokens/s as shards finish: a line per shard, at most every few seconds."""

    def __init__(self, total: int, log: Callable[[str], None], every_seconds: float = 5.0) -> None:
        self.total, self.log, self.every = total, log, every_seconds
        self.count = self.documents = self.tokens = 0
        self.started = self.last = time.perf_counter()

    def done(self, receipt: ShardReceipt) -> None:
        self.count += 1
        self.documents += sum(s.documents for s in receipt.splits.values())
        self.tokens += sum(s.tokens for s in receipt.splits.values())
        now = time.perf_counter()
        if now - self.last >= self.every or self.count == self.total:
            self.last = now
            rate = self.tokens / max(now - self.started, 1e-9)
            self.log(
                f"progress: {self.count}/{self.total} shards, {self.documents:,} documents, "
                f"{self.tokens:,} tokens, {rate:,.0f} tokens/s"
            )
