"""SFT data prep: render chat records with a loss mask per shard (receipted, see sft_shard.py), then pack each split.

Shards come from the same plan as pretraining's (`shard_plan.plan_work`) and run through the same
runner (`shard_runner`: skip valid receipts, a spawn process pool). `finalize_sft` reads every shard's
conversations of a split, plans the packs over all of them (seeded) and writes the split's packed parquet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nemotron.data.bad_records import check_bad_records, keep_examples
from nemotron.data.blend_spec import BlendSpec
from nemotron.data.chat_template import ChatTemplate
from nemotron.data.errors import DataError
from nemotron.data.packing import (
    PackedRow,
    PackingStats,
    materialize,
    plan_packs,
    read_packed_parquet,
    write_packed_parquet,
)
from nemotron.data.record_shards import run_record_shards
from nemotron.data.sft_shard import SUFFIX, RenderItem, SftReceipt, SftSettings, valid_sft_receipt
from nemotron.data.shard_plan import WorkItem, plan_work
from nemotron.data.shard_runner import ShardRun, plan_receipts
from nemotron.data.splits import SPLITS
from nemotron.data.tokenizer import TextTokenizer


@dataclass(frozen=True)
class SftRequest:
    """One SFT data prep run: inputs, shard plan size, settings, where, and how many workers."""

    blend: BlendSpec
    settings: SftSettings
    data_dir: Path
    num_shards: int
    workers: int
    force: bool = False
    max_bad_records: int = 0


@dataclass
class SplitResult:
    conversations: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    sequences: int = 0
    stats: PackingStats | None = None


@dataclass
class SftResult:
    shards: int
    shards_done_now: int
    splits: dict[str, SplitResult]
    bad_records: int = 0
    bad_examples: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # split -> packed file name (in the output folder)
    seconds: float = 0.0


def run_sft_shards(
    request: SftRequest,
    template: ChatTemplate,
    load_tokenizer: Callable[[], TextTokenizer],
    log: Callable[[str], None] = print,
    only: Callable[[int], bool] = lambda i: True,
) -> ShardRun[SftReceipt]:
    """Render the planned items that `only(index)` selects and that lack a valid receipt (workers load
    their tokenizer with `load_tokenizer`, which must be picklable)."""
    return run_record_shards(
        request,
        template,
        load_tokenizer,
        RenderItem,
        lambda item: _valid(request, item),
        reads="SFT data prep reads chat records",
        records="conversations",
        log=log,
        only=only,
    )


def _valid(request: SftRequest, item: WorkItem) -> SftReceipt | None:
    return valid_sft_receipt(request.data_dir, item, request.settings.settings_hash)


def finalize_sft(
    request: SftRequest,
    out_dir: Path,
    run: ShardRun[SftReceipt],
    started: float,
    log: Callable[[str], None] = print,
    out_setting: str = "output_dir",
) -> SftResult:
    """Check every receipt, enforce `max_bad_records`, pack each split into `out_dir/<split>.parquet`.

    `out_setting` names what moves `out_dir` in the error of a folder that refuses the write.
    """
    settings = request.settings
    items = plan_work(request.blend, request.num_shards)
    result = SftResult(len(items), run.done_now, {split: SplitResult() for split in SPLITS})
    checked = plan_receipts(items, run, lambda item: _valid(request, item), request.data_dir)
    for receipt in checked:
        result.bad_records += receipt.bad
        keep_examples(result.bad_examples, receipt.bad_examples)
    check_bad_records(result.bad_records, result.bad_examples, request.max_bad_records)
    for split in SPLITS:
        documents = list(_split_documents(request.data_dir, checked, split))
        if not documents:
            log(f"warning: split {split!r} received no conversations")
            continue
        ids = [d.input_ids for d in documents]
        masks = [d.loss_mask for d in documents]
        plan = plan_packs(
            [len(i) for i in ids],
            settings.pack_size,
            settings.packing,
            settings.fractions.seed,
            overflow=settings.overflow,
        )
        stats = plan.stats(masks)
        name = f"{split}.parquet"
        # complete or absent (written to a temporary, renamed); the stage's out_dir is a registry staging
        # folder, which the registry removes when it is not published (a failure, nothing changed)
        sequences = write_packed_parquet(materialize(plan, ids, masks), out_dir / name, setting=out_setting)
        result.files[split] = name
        result.splits[split] = SplitResult(len(documents), stats.real_tokens, stats.loss_tokens or 0, sequences, stats)
        log(f"{split}: {stats.summary()}")
    if not result.splits["train"].conversations:
        raise DataError(f"the blend {request.blend.source} produced no train conversations")
    result.seconds = time.perf_counter() - started
    return result


def _split_documents(data_dir: Path, receipts: list[SftReceipt], split: str) -> Iterator[PackedRow]:
    """The split's conversations, shard by shard in plan order (the order packing is seeded over)."""
    for receipt in receipts:
        output = receipt.splits[split]
        if output.conversations:
            yield from read_packed_parquet(data_dir / f"{output.prefix}{SUFFIX}")
