"""Run a shard plan: skip items with a valid receipt, process the others serially or in a spawn process pool.

Pretraining (`pretrain_prep`), SFT (`sft_prep`) and RL (`rl_prep`) data prep share it; each gives a
`ShardJob`: how a worker loads its state (a tokenizer, once per worker), how one item is processed into
its receipt, and how an item's receipt is checked. `plan_receipts` gives a finalize step every receipt.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from nemotron.data.errors import DataError
from nemotron.data.shard_plan import WorkItem


class Receipt(Protocol):
    """What the runner reads of a receipt."""

    @property
    def item_id(self) -> str: ...

    def progress_counts(self) -> tuple[int, int]:
        """Records (documents, conversations) and tokens, for progress lines."""
        ...


R = TypeVar("R", bound=Receipt)


@dataclass
class ShardRun(Generic[R]):
    """What `run_shards` did in this process: items processed now, and the receipts it checked or wrote
    (so a finalize step need not hash those shards again)."""

    done_now: int = 0
    receipts: dict[str, R] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardJob(Generic[R]):
    """One kind of data prep, as the runner sees it.

    `load` and `process` go to worker processes, so both must be picklable (module-level functions or
    instances of module-level classes). `process(item, state)` writes the item's files and its receipt
    (last) and returns the receipt; `state` is what `load()` returned in that process.
    """

    load: Callable[[], Any]
    process: Callable[[WorkItem, Any], R]
    valid: Callable[[WorkItem], R | None]  # the item's receipt when it is valid, else None
    workers: int
    force: bool = False
    records: str = "documents"  # what progress lines count


def run_shards(
    items: Sequence[WorkItem],
    job: ShardJob[R],
    log: Callable[[str], None] = print,
    only: Callable[[int], bool] = lambda i: True,
) -> ShardRun[R]:
    """Process the planned `items` that `only(index)` selects and that lack a valid receipt (all of them
    with `force`). `only` lets a Slurm array task take its share."""
    mine = [item for index, item in enumerate(items) if only(index)]
    run: ShardRun[R] = ShardRun()
    if not job.force:
        for item in mine:
            if (receipt := job.valid(item)) is not None:
                run.receipts[item.id] = receipt
    pending = [item for item in mine if item.id not in run.receipts]
    log(
        f"{len(items)} shards planned, {len(mine) - len(pending)} of {len(mine)} already done, "
        f"{len(pending)} to do with {min(job.workers, max(len(pending), 1))} worker(s)"
    )
    if not pending:
        return run
    progress = _Progress(len(pending), log, job.records)

    def done(receipt: R) -> None:
        run.receipts[receipt.item_id] = receipt
        run.done_now += 1
        progress.done(receipt)

    if job.workers <= 1 or len(pending) == 1:
        state = job.load()
        for item in pending:
            done(job.process(item, state))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        # spawn: no forked tokenizer threads or locks. A worker that dies (killed, out of memory)
        # fails the stage instead of hanging it; finished shards keep their receipts for the rerun.
        context = multiprocessing.get_context("spawn")
        workers = min(job.workers, len(pending))
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(job.load, job.process)
        ) as pool:
            futures = [pool.submit(_run_in_worker, item) for item in pending]
            try:
                for future in as_completed(futures):
                    done(future.result())
            except BrokenProcessPool as err:
                raise DataError(f"a data prep worker died ({err}); re-run the stage to resume") from None
    return run


def plan_receipts(
    items: Sequence[WorkItem], run: ShardRun[R], valid: Callable[[WorkItem], R | None], data_dir: Path
) -> list[R]:
    """The receipt of every planned item, in plan order: the one `run` checked or wrote in this process, else
    the item's receipt checked against its files now (`valid`: a finalize job, other array tasks' shards).

    DataError for a shard that is missing or does not match its receipt.
    """
    receipts = []
    for item in items:
        receipt = run.receipts.get(item.id) or valid(item)
        if receipt is None:
            raise DataError(
                f"shard {item.id} in {data_dir} is missing or does not match its receipt; re-run the stage to redo it"
            )
        receipts.append(receipt)
    return receipts


# A worker process loads its state (tokenizer) once; the pool's initializer stores it here with `process`.
_WORKER: dict[str, Any] = {}


def _init_worker(load: Callable[[], Any], process: Callable[[WorkItem, Any], Any]) -> None:
    from nemotron.quiet import silence_megatron_fallback_warnings

    silence_megatron_fallback_warnings()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _WORKER["state"] = load()
    _WORKER["process"] = process


def _run_in_worker(item: WorkItem) -> Any:
    return _WORKER["process"](item, _WORKER["state"])


class _Progress:
    """Records, tokens and tokens/s as shards finish: a line per shard, at most every few seconds."""

    def __init__(self, total: int, log: Callable[[str], None], records: str, every_seconds: float = 5.0) -> None:
        self.total, self.log, self.records, self.every = total, log, records, every_seconds
        self.count = self.documents = self.tokens = 0
        self.started = self.last = time.perf_counter()

    def done(self, receipt: Receipt) -> None:
        self.count += 1
        documents, tokens = receipt.progress_counts()
        self.documents += documents
        self.tokens += tokens
        now = time.perf_counter()
        if now - self.last >= self.every or self.count == self.total:
            self.last = now
            rate = self.tokens / max(now - self.started, 1e-9)
            self.log(
                f"progress: {self.count}/{self.total} shards, {self.documents:,} {self.records}, "
                f"{self.tokens:,} tokens, {rate:,.0f} tokens/s"
            )
