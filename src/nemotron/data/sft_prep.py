"""SFT data prep: render chat records with a loss mask per shard (receipted), then pack each split.

Shards come from the same plan as pretraining's (`shard_plan.plan_work`). A shard writes, per split,
one parquet file of its conversations (one row each, `seq_start_id` [0]) at
`conversations/<split>/<dataset>/shard_NNNNN.parquet` (committed like pretraining's files: never
rewritten, see shard_files.py) and then its receipt; a rerun skips shards with a valid receipt.
`finalize` reads every shard's conversations of a split, plans the packs over all of them (seeded)
and writes the split's packed parquet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nemotron.atomic_write import write_text_atomic
from nemotron.checksums import sha256_file
from nemotron.data.blend_spec import BlendSpec
from nemotron.data.chat_template import ChatTemplate, render_with_mask, validate_conversation
from nemotron.data.errors import DataError
from nemotron.data.packing import (
    PackedRow,
    PackingStats,
    materialize,
    plan_packs,
    read_packed_parquet,
    write_packed_parquet,
)
from nemotron.data.receipts import InputFingerprint, fingerprint, receipt_path
from nemotron.data.shard_files import commit_files
from nemotron.data.shard_plan import WorkItem, plan_work
from nemotron.data.sources import iter_json_lines
from nemotron.data.splits import SPLITS, SplitFractions

BAD_EXAMPLES_KEPT = 5
SUFFIX = ".parquet"


@dataclass(frozen=True)
class SftSettings:
    """What decides the shards' and packs' bytes; `settings_hash` names the data folder."""

    fractions: SplitFractions
    last_turn_only: bool
    pack_size: int
    packing: str
    overflow: str
    settings_hash: str


@dataclass(frozen=True)
class SftRequest:
    blend: BlendSpec
    settings: SftSettings
    data_dir: Path
    num_shards: int
    force: bool = False
    max_bad_records: int = 0


@dataclass
class ConversationsOutput:
    """One split of a shard: counts and its conversations file (prefix relative to the data folder)."""

    conversations: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    prefix: str = ""
    size: int = 0
    sha256: str = ""


@dataclass
class SftReceipt:
    item_id: str
    settings_hash: str
    inputs: list[InputFingerprint]
    splits: dict[str, ConversationsOutput]
    bad: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SftReceipt:
        raw: dict[str, Any] = json.loads(text)
        raw["inputs"] = [InputFingerprint(**i) for i in raw["inputs"]]
        raw["splits"] = {k: ConversationsOutput(**v) for k, v in raw["splits"].items()}
        return cls(**raw)


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
    hf_tokenizer: Any,
    log: Callable[[str], None] = print,
    only: Callable[[int], bool] = lambda i: True,
) -> tuple[int, dict[str, SftReceipt]]:
    """Render the selected shards that lack a valid receipt; (shards rendered now, receipts checked/written)."""
    items = plan_work(request.blend, request.num_shards)
    mine = [item for index, item in enumerate(items) if only(index)]
    receipts: dict[str, SftReceipt] = {}
    if not request.force:
        for item in mine:
            if (receipt := valid_sft_receipt(request, item)) is not None:
                receipts[item.id] = receipt
    pending = [item for item in mine if item.id not in receipts]
    log(f"{len(items)} shards planned, {len(mine) - len(pending)} of {len(mine)} already done, {len(pending)} to do")
    for item in pending:
        receipts[item.id] = process_sft_item(item, request, template, hf_tokenizer)
    return len(pending), receipts


def process_sft_item(item: WorkItem, request: SftRequest, template: ChatTemplate, hf_tokenizer: Any) -> SftReceipt:
    """Render the item's conversations, write one conversations file per split, then the receipt (last)."""
    settings = request.settings
    for rng in item.ranges:
        if rng.path.startswith("hf://") or not rng.path.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz")):
            raise DataError(f"dataset {item.dataset}: {rng.path}: SFT data prep reads local JSONL files only (for now)")
    receipt = SftReceipt(
        item.id, settings.settings_hash, fingerprint(item.ranges), {s: ConversationsOutput() for s in SPLITS}
    )
    rows: dict[str, list[PackedRow]] = {split: [] for split in SPLITS}
    for rng in item.ranges:
        for line in iter_json_lines(rng):
            problem = line.problem or _conversation_problem(line.value, line.origin)
            rendered = None
            if problem is None:
                assert isinstance(line.value, dict)
                result = render_with_mask(
                    line.value["messages"],
                    line.value.get("tools"),
                    template,
                    hf_tokenizer,
                    last_turn_only=settings.last_turn_only,
                )
                if isinstance(result, str):
                    problem = f"{line.origin}: {result}"
                else:
                    rendered = result
            if rendered is None:
                receipt.bad += 1
                if len(receipt.bad_examples) < BAD_EXAMPLES_KEPT:
                    receipt.bad_examples.append(str(problem))
                continue
            split = settings.fractions.assign(item.dataset, line.key)
            rows[split].append(
                PackedRow(
                    rendered.input_ids.astype(np.int32),
                    rendered.loss_mask.astype(np.uint8),
                    np.zeros(1, dtype=np.int32),
                )
            )
    for split, split_rows in rows.items():
        if split_rows:
            receipt.splits[split] = _write_conversations(request.data_dir, item, split, split_rows)
    path = receipt_path(request.data_dir, item.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, receipt.to_json())
    return receipt


def _conversation_problem(value: object, origin: str) -> str | None:
    problem = validate_conversation(value)
    return None if problem is None else f"{origin}: {problem}"


def _write_conversations(data_dir: Path, item: WorkItem, split: str, rows: list[PackedRow]) -> ConversationsOutput:
    base = f"conversations/{split}/{item.dataset}/shard_{item.shard:05d}"
    staged = data_dir / f"{base}{SUFFIX}.tmp"
    staged.parent.mkdir(parents=True, exist_ok=True)
    write_packed_parquet(rows, staged)
    prefix, sums = commit_files(data_dir, base, {SUFFIX: staged})
    size, digest = sums[SUFFIX]
    return ConversationsOutput(
        conversations=len(rows),
        tokens=sum(len(r.input_ids) for r in rows),
        loss_tokens=sum(int(np.count_nonzero(r.loss_mask)) for r in rows),
        prefix=prefix,
        size=size,
        sha256=digest,
    )


def valid_sft_receipt(request: SftRequest, item: WorkItem) -> SftReceipt | None:
    """The shard's receipt when it matches the inputs and settings and its files are intact."""
    try:
        receipt = SftReceipt.from_json(receipt_path(request.data_dir, item.id).read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if receipt.settings_hash != request.settings.settings_hash or receipt.inputs != fingerprint(item.ranges):
        return None
    for output in receipt.splits.values():
        if output.conversations:
            file = request.data_dir / f"{output.prefix}{SUFFIX}"
            if not file.is_file() or file.stat().st_size != output.size or sha256_file(file) != output.sha256:
                return None
    return receipt


def finalize_sft(
    request: SftRequest,
    out_dir: Path,
    receipts: dict[str, SftReceipt],
    done_now: int,
    started: float,
    log: Callable[[str], None] = print,
) -> SftResult:
    """Check every receipt, enforce `max_bad_records`, pack each split into `out_dir/<split>.parquet`."""
    settings = request.settings
    items = plan_work(request.blend, request.num_shards)
    result = SftResult(len(items), done_now, {split: SplitResult() for split in SPLITS})
    checked: list[SftReceipt] = []
    for item in items:
        receipt = receipts.get(item.id) or valid_sft_receipt(request, item)
        if receipt is None:
            raise DataError(
                f"shard {item.id} in {request.data_dir} is missing or does not match its receipt; "
                "re-run the stage to redo it"
            )
        checked.append(receipt)
        result.bad_records += receipt.bad
        result.bad_examples.extend(receipt.bad_examples[: max(0, BAD_EXAMPLES_KEPT - len(result.bad_examples))])
    if result.bad_records > request.max_bad_records:
        raise DataError(
            f"{result.bad_records} malformed records (max_bad_records={request.max_bad_records}); first: "
            + "; ".join(result.bad_examples)
            + ". Fix the inputs or raise max_bad_records to skip them."
        )
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
        sequences = write_packed_parquet(materialize(plan, ids, masks), out_dir / name)
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
