"""Tokenize one work item into per-split Megatron bin/idx files, written under temporary names."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nemotron.data.bad_records import count_bad
from nemotron.data.blend_spec import DatasetSpec
from nemotron.data.long_text import DEFAULT_PIECE_CHARS, LongTextSplitter, splitter_for
from nemotron.data.receipts import ShardReceipt, SplitOutput, fingerprint, write_receipt
from nemotron.data.shard_files import SUFFIXES, base_prefix, commit_files
from nemotron.data.shard_plan import WorkItem
from nemotron.data.sources import iter_records
from nemotron.data.splits import SPLITS, SplitFractions
from nemotron.data.tokenizer import TextTokenizer

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ShardSettings:
    """Everything that decides a shard's bytes; its hash names the data folder and is in receipts.

    `piece_chars` is not in the hash: it bounds memory (documents longer than that are tokenized in
    pieces, see long_text.py) without changing the ids.
    """

    fractions: SplitFractions
    append_eod: bool
    min_doc_chars: int
    max_doc_tokens: int | None
    sample: int | None  # documents per dataset (the whole dataset is one item then)
    batch_size: int
    settings_hash: str
    piece_chars: int = DEFAULT_PIECE_CHARS


def staging_prefix(data_dir: Path, split: str, item: WorkItem) -> Path:
    """Where a shard's split is written under temporary names (its first-generation prefix)."""
    return data_dir / base_prefix(split, item.dataset, item.shard)


def _staged_files(data_dir: Path, split: str, item: WorkItem, tag: str) -> dict[str, Path]:
    """The split's .bin/.idx under this process's temporary names (suffix -> path)."""
    prefix = staging_prefix(data_dir, split, item)
    return {suffix: Path(f"{prefix}{suffix}{tag}") for suffix in SUFFIXES}


def process_item(
    item: WorkItem,
    spec: DatasetSpec,
    settings: ShardSettings,
    tokenizer: TextTokenizer,
    data_dir: Path,
    dtype: np.dtype,
) -> ShardReceipt:
    """Write the item's split files (temporary names, then committed) and its receipt (last).

    Whatever stops it (a full disk, a signal), its temporary files are removed.
    """
    tag = f".tmp{os.getpid()}"
    try:
        return _write_item(item, spec, settings, tokenizer, data_dir, dtype, tag)
    except BaseException:
        for split in SPLITS:
            for path in _staged_files(data_dir, split, item, tag).values():
                path.unlink(missing_ok=True)
        raise


def _write_item(
    item: WorkItem,
    spec: DatasetSpec,
    settings: ShardSettings,
    tokenizer: TextTokenizer,
    data_dir: Path,
    dtype: np.dtype,
    tag: str,
) -> ShardReceipt:
    import numpy as np

    from nemotron.data.indexed_writer import IndexedWriter

    inputs = fingerprint(item.ranges)
    prefixes = {split: staging_prefix(data_dir, split, item) for split in SPLITS}
    builders = {}
    for split, prefix in prefixes.items():
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for stale in prefix.parent.glob(f"{prefix.name}.*.tmp*"):  # left by a killed earlier run
            stale.unlink(missing_ok=True)
        builders[split] = IndexedWriter(_staged_files(data_dir, split, item, tag)[".bin"], dtype)
    receipt = ShardReceipt(item.id, settings.settings_hash, inputs, {s: SplitOutput() for s in SPLITS})
    batch: list[tuple[str, str]] = []

    limit = settings.max_doc_tokens or None
    eod = np.array([tokenizer.eod_id], dtype=np.uint32)
    splitter: LongTextSplitter | None = None  # made for the item's first document longer than a piece

    def add(split: str, text: str, parts: Iterable[np.ndarray], suffix: np.ndarray | None) -> None:
        """Write one document from its ids in parts: at most `limit` of them, then `suffix`; count it."""
        writer = builders[split]
        writer.start_document()
        written = 0
        for ids in parts:  # a long document's pieces are encoded one at a time, as this loop asks
            if limit is not None and written + len(ids) > limit:
                writer.extend(ids[: limit - written])
                receipt.truncated += 1
                break  # the rest of the document is not even encoded
            writer.extend(ids)
            written += len(ids)
        if suffix is not None:
            writer.extend(suffix)
        out = receipt.splits[split]
        out.documents += 1
        out.tokens += writer.end_document()
        out.bytes += len(text) if text.isascii() else len(text.encode("utf-8"))

    def flush() -> None:
        # one flat uint32 array for the batch (gigatoken returns it without copies)
        encoded = tokenizer.encode_batch_flat([t for _, t in batch], append_eod=settings.append_eod and not limit)
        suffix = eod if settings.append_eod and limit else None
        for (split, text), ids in zip(batch, encoded.arrays(), strict=True):
            add(split, text, (ids,), suffix)
        batch.clear()

    def add_long(split: str, text: str) -> None:
        nonlocal splitter
        splitter = splitter or splitter_for(tokenizer, settings.piece_chars)
        pieces = (tokenizer.encode_batch_flat([piece]).ids for piece in splitter.pieces(text))
        add(split, text, pieces, eod if settings.append_eod else None)

    accepted = 0
    for rng in item.ranges:
        for record in iter_records(rng, spec):
            if settings.sample is not None and accepted >= settings.sample:
                break
            if record.problem:
                count_bad(receipt, record.problem)
                continue
            text = record.text or ""
            if not text or text.isspace():  # not text.strip(): that copies a long document
                receipt.empty += 1
                continue
            if len(text) < settings.min_doc_chars:
                receipt.short += 1
                continue
            accepted += 1
            split = settings.fractions.assign(spec.name, record.key)
            if len(text) > settings.piece_chars:  # in pieces, after the documents before it
                if batch:
                    flush()
                add_long(split, text)
                continue
            batch.append((split, text))
            if len(batch) >= settings.batch_size:
                flush()
    if batch:
        flush()
    for split in SPLITS:
        staged = _staged_files(data_dir, split, item, tag)
        builders[split].finalize(staged[".idx"])
        _commit(data_dir, base_prefix(split, item.dataset, item.shard), staged, receipt.splits[split])
    write_receipt(data_dir, receipt)  # written last: a shard without a valid receipt is redone
    return receipt


def _commit(data_dir: Path, base: str, staged: dict[str, Path], output: SplitOutput) -> None:
    """Commit the split's temporary files to `base`'s generations (see shard_files.py), or drop them when it
    got no documents."""
    if not output.documents:  # Megatron cannot map empty files; blend.json omits the split
        for path in staged.values():
            path.unlink(missing_ok=True)
        return
    output.prefix, sums = commit_files(data_dir, base, staged)
    (output.bin_size, output.bin_sha256), (output.idx_size, output.idx_sha256) = sums[".bin"], sums[".idx"]


@dataclass(frozen=True)
class TokenizeItem:
    """Pretraining's per-item process for the shard runner (picklable): `process_item` with the worker's
    tokenizer."""

    specs: dict[str, DatasetSpec]
    settings: ShardSettings
    data_dir: Path
    dtype: np.dtype

    def __call__(self, item: WorkItem, tokenizer: TextTokenizer) -> ShardReceipt:
        return process_item(item, self.specs[item.dataset], self.settings, tokenizer, self.data_dir, self.dtype)
