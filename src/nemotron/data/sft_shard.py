"""Render one SFT work item's chat records with their loss masks into per-split conversation files and a receipt.

A shard writes, per split, one parquet file of its conversations (one row each, `seq_start_id` [0]) at
`conversations/<split>/<dataset>/shard_NNNNN.parquet` (committed like pretraining's files: never
rewritten, see shard_files.py), then its receipt (last): a shard without a valid receipt is redone.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nemotron.data.bad_records import count_bad
from nemotron.data.blend_spec import DatasetSpec
from nemotron.data.chat_template import ChatTemplate, render_batch_with_mask, validate_conversation
from nemotron.data.packing import PackedRow, write_packed_parquet
from nemotron.data.receipts import (
    InputFingerprint,
    files_intact,
    fingerprint,
    matching_receipt,
    write_receipt,
)
from nemotron.data.shard_files import commit_files, staged_file, staged_path
from nemotron.data.shard_plan import WorkItem
from nemotron.data.sources import RawRecord, iter_json_records
from nemotron.data.splits import SPLITS, SplitFractions
from nemotron.data.tokenizer import TextTokenizer

SUFFIX = ".parquet"
RECORD_FIELDS = ("messages", "tools")  # what a chat record is read for (a Parquet file needs `messages`)
# Records rendered together (`render_batch_with_mask`: the Rust tokenizer encodes their pieces in one call).
RENDER_BATCH = 64
_NO_MESSAGES = "SFT data needs a 'messages' column (a list of {role, content} objects) and optionally 'tools'"


@dataclass(frozen=True)
class SftSettings:
    """What decides the shards' and packs' bytes; `settings_hash` names the data folder."""

    fractions: SplitFractions
    last_turn_only: bool
    pack_size: int
    packing: str
    overflow: str
    settings_hash: str


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
    """What a finished SFT shard consumed and produced (no timings: identical runs write identical bytes)."""

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

    def progress_counts(self) -> tuple[int, int]:
        """Conversations and tokens, for progress lines."""
        return sum(s.conversations for s in self.splits.values()), sum(s.tokens for s in self.splits.values())


def valid_sft_receipt(data_dir: Path, item: WorkItem, settings_hash: str) -> SftReceipt | None:
    """The shard's receipt when it matches the inputs and settings and its files are intact."""
    receipt = matching_receipt(data_dir, item.id, item.ranges, settings_hash, SftReceipt.from_json)
    if receipt is None:
        return None
    files = [(f"{o.prefix}{SUFFIX}", o.size, o.sha256) for o in receipt.splits.values() if o.conversations]
    return receipt if files_intact(data_dir, files) else None


@dataclass(frozen=True)
class RenderItem:
    """SFT's per-item process for the shard runner (picklable): `render_item` with the worker's tokenizer."""

    specs: dict[str, DatasetSpec]
    settings: SftSettings
    template: ChatTemplate
    data_dir: Path

    def __call__(self, item: WorkItem, tokenizer: TextTokenizer) -> SftReceipt:
        spec = self.specs[item.dataset]
        return render_item(item, spec, self.settings, self.template, tokenizer.hf_tokenizer, self.data_dir)


def render_item(
    item: WorkItem,
    spec: DatasetSpec,
    settings: SftSettings,
    template: ChatTemplate,
    hf_tokenizer: Any,
    data_dir: Path,
) -> SftReceipt:
    """Render the item's conversations, write one conversations file per split, then the receipt (last).

    Whatever stops it (an error, a full disk, a signal), its temporary files are removed.
    """
    tag = f".tmp{os.getpid()}"
    try:
        return _render_item(item, spec, settings, template, hf_tokenizer, data_dir, tag)
    except BaseException:
        for split in SPLITS:
            staged_path(data_dir, _base(item, split), SUFFIX, tag).unlink(missing_ok=True)
        raise


def _base(item: WorkItem, split: str) -> str:
    """The first-generation prefix of the item's conversations file of `split` (relative to the data folder)."""
    return f"conversations/{split}/{item.dataset}/shard_{item.shard:05d}"


def _render_item(
    item: WorkItem,
    spec: DatasetSpec,
    settings: SftSettings,
    template: ChatTemplate,
    hf_tokenizer: Any,
    data_dir: Path,
    tag: str,
) -> SftReceipt:
    receipt = SftReceipt(
        item.id, settings.settings_hash, fingerprint(item.ranges), {s: ConversationsOutput() for s in SPLITS}
    )
    rows: dict[str, list[PackedRow]] = {split: [] for split in SPLITS}
    batch: list[tuple[RawRecord, str | None]] = []  # records read, with their problem, not handled yet

    def handle_batch() -> None:
        """Render the batch's usable records together, then handle every record in the order read."""
        conversations = []
        for line, problem in batch:
            if problem is None:
                assert isinstance(line.value, dict)
                conversations.append((line.value["messages"], line.value.get("tools")))
        results = iter(
            render_batch_with_mask(conversations, template, hf_tokenizer, last_turn_only=settings.last_turn_only)
        )
        for line, problem in batch:
            rendered = None
            if problem is None:
                result = next(results)
                if isinstance(result, str):
                    problem = f"{line.origin}: {result}"
                else:
                    rendered = result
            if rendered is None:
                count_bad(receipt, str(problem))
                continue
            split = settings.fractions.assign(item.dataset, line.key)
            rows[split].append(
                PackedRow(
                    rendered.input_ids.astype(np.int32),
                    rendered.loss_mask.astype(np.uint8),
                    np.zeros(1, dtype=np.int32),
                )
            )
        batch.clear()

    for rng in item.ranges:
        for line in iter_json_records(rng, spec, RECORD_FIELDS, fix=_NO_MESSAGES):
            batch.append((line, line.problem or _conversation_problem(line.value, line.origin)))
            if len(batch) == RENDER_BATCH:
                handle_batch()
    handle_batch()
    for split, split_rows in rows.items():
        if split_rows:
            receipt.splits[split] = _write_conversations(data_dir, item, split, split_rows, tag)
    write_receipt(data_dir, receipt)  # written last: a shard without a valid receipt is redone
    return receipt


def _conversation_problem(value: object, origin: str) -> str | None:
    problem = validate_conversation(value)
    return None if problem is None else f"{origin}: {problem}"


def _write_conversations(
    data_dir: Path, item: WorkItem, split: str, rows: list[PackedRow], tag: str
) -> ConversationsOutput:
    """Write the rows under a temporary name and commit them (see shard_files.py)."""
    base = _base(item, split)
    staged = staged_file(data_dir, base, SUFFIX, tag)  # (a killed earlier run's temporaries removed)
    write_packed_parquet(rows, staged)  # complete or absent: it writes to its own temporary first
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
