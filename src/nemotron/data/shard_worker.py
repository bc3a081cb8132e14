"""Tokenize one work item into per-split Megatron bin/idx files, written under temporary names."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nemotron.checksums import sha256_file
from nemotron.data.blend_spec import DatasetSpec
from nemotron.data.receipts import ShardReceipt, SplitOutput, fingerprint, write_receipt
from nemotron.data.shard_plan import WorkItem
from nemotron.data.sources import iter_records
from nemotron.data.splits import SPLITS, SplitFractions
from nemotron.data.tokenizer import TextTokenizer

if TYPE_CHECKING:
    import numpy as np

BAD_EXAMPLES_KEPT = 5


@dataclass(frozen=True)
class ShardSettings:
    """Everything that decides a shard's bytes; its hash names the data folder and is in receipts."""

    fractions: SplitFractions
    append_eod: bool
    min_doc_chars: int
    max_doc_tokens: int | None
    sample: int | None  # documents per dataset (the whole dataset is one item then)
    batch_size: int
    settings_hash: str


def shard_prefix(data_dir: Path, split: str, item: WorkItem) -> Path:
    return data_dir / split / item.dataset / f"shard_{item.shard:05d}"


def process_item(
    item: WorkItem,
    spec: DatasetSpec,
    settings: ShardSettings,
    tokenizer: TextTokenizer,
    data_dir: Path,
    dtype: np.dtype,
) -> ShardReceipt:
    """Write the item's split files (temporary names, then renamed) and its receipt (last)."""
    import numpy as np

    from nemotron.data.indexed_writer import IndexedWriter

    started = time.perf_counter()
    inputs = fingerprint(item.ranges)
    tag = f".tmp{os.getpid()}"
    prefixes = {split: shard_prefix(data_dir, split, item) for split in SPLITS}
    builders = {}
    for split, prefix in prefixes.items():
        prefix.parent.mkdir(parents=True, exist_ok=True)
        for stale in prefix.parent.glob(f"{prefix.name}.*.tmp*"):  # left by a killed earlier run
            stale.unlink(missing_ok=True)
        builders[split] = IndexedWriter(f"{prefix}.bin{tag}", dtype)
    receipt = ShardReceipt(item.id, settings.settings_hash, inputs, {s: SplitOutput() for s in SPLITS})
    batch: list[tuple[str, str]] = []

    limit = settings.max_doc_tokens
    eod = np.array([tokenizer.eod_id], dtype=np.uint32)

    def flush() -> None:
        # one flat uint32 array for the batch (gigatoken returns it without copies)
        encoded = tokenizer.encode_batch_flat([t for _, t in batch], append_eod=settings.append_eod and not limit)
        offsets = encoded.offsets
        for i, (split, text) in enumerate(batch):
            ids = encoded.ids[offsets[i] : offsets[i + 1]]
            if limit:
                if len(ids) > limit:
                    ids = ids[:limit]
                    receipt.truncated += 1
                if settings.append_eod:
                    ids = np.concatenate([ids, eod])
            builders[split].add_document(ids)
            out = receipt.splits[split]
            out.documents += 1
            out.tokens += len(ids)
            out.bytes += len(text.encode("utf-8"))
        batch.clear()

    accepted = 0
    for rng in item.ranges:
        for record in iter_records(rng, spec):
            if settings.sample is not None and accepted >= settings.sample:
                break
            if record.problem:
                receipt.bad += 1
                if len(receipt.bad_examples) < BAD_EXAMPLES_KEPT:
                    receipt.bad_examples.append(record.problem)
                continue
            text = record.text or ""
            if not text.strip():
                receipt.empty += 1
                continue
            if len(text) < settings.min_doc_chars:
                receipt.short += 1
                continue
            accepted += 1
            batch.append((settings.fractions.assign(spec.name, record.key), text))
            if len(batch) >= settings.batch_size:
                flush()
    if batch:
        flush()
    for split, prefix in prefixes.items():
        builders[split].finalize(f"{prefix}.idx{tag}")
        _commit(prefix, tag, receipt.splits[split])
    receipt.seconds = round(time.perf_counter() - started, 3)
    write_receipt(data_dir, receipt)  # written last: a shard without a valid receipt is redone
    return receipt


def _commit(prefix: Path, tag: str, output: SplitOutput) -> None:
    """Rename the temporary files into place, or drop them when the split got no documents."""
    for suffix in (".bin", ".idx"):
        tmp, final = Path(f"{prefix}{suffix}{tag}"), Path(f"{prefix}{suffix}")
        if not output.documents:  # Megatron cannot map empty files; blend.json omits the split
            tmp.unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            continue
        size, digest = tmp.stat().st_size, sha256_file(tmp)
        os.replace(tmp, final)
        if suffix == ".bin":
            output.bin_size, output.bin_sha256 = size, digest
        else:
            output.idx_size, output.idx_sha256 = size, digest


# A worker process loads its tokenizer once; the pool's initializer stores it here.
_WORKER: dict[str, TextTokenizer] = {}


def init_worker(load_tokenizer: Callable[[], TextTokenizer]) -> None:
    from nemotron.quiet import silence_megatron_fallback_warnings

    silence_megatron_fallback_warnings()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _WORKER["tokenizer"] = load_tokenizer()


def run_in_worker(args: tuple[WorkItem, DatasetSpec, ShardSettings, Path, np.dtype]) -> ShardReceipt:
    item, spec, settings, data_dir, dtype = args
    return process_item(item, spec, settings, _WORKER["tokenizer"], data_dir, dtype)
