"""Shard receipts: the proof a shard is complete, checked before a rerun skips it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nemotron.atomic_write import write_text_atomic
from nemotron.checksums import sha256_file
from nemotron.data.sources import SourceRange


@dataclass(frozen=True)
class InputFingerprint:
    path: str
    size: int
    mtime_ns: int


@dataclass
class SplitOutput:
    """One split's output of a shard: counts and, when it has documents, where its files are (prefix
    relative to the data folder, see shard_files.py) and their checksums."""

    documents: int = 0
    tokens: int = 0
    bytes: int = 0
    bin_size: int = 0
    idx_size: int = 0
    bin_sha256: str = ""
    idx_sha256: str = ""
    prefix: str = ""


@dataclass
class ShardReceipt:
    """What a finished shard consumed and produced: nothing in it changes between identical runs (no
    timings), so re-running a shard rewrites its receipt with the same bytes."""

    item_id: str
    settings_hash: str
    inputs: list[InputFingerprint]
    splits: dict[str, SplitOutput]
    empty: int = 0
    short: int = 0
    truncated: int = 0
    bad: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ShardReceipt:
        raw: dict[str, Any] = json.loads(text)
        raw["inputs"] = [InputFingerprint(**i) for i in raw["inputs"]]
        raw["splits"] = {k: SplitOutput(**v) for k, v in raw["splits"].items()}
        return cls(**raw)


def fingerprint(ranges: tuple[SourceRange, ...]) -> list[InputFingerprint]:
    """Size and modification time of every local file a shard reads (hub inputs: none)."""
    found = []
    for path in sorted({r.path for r in ranges}):
        if os.path.exists(path):
            stat = os.stat(path)
            found.append(InputFingerprint(path, stat.st_size, stat.st_mtime_ns))
    return found


def receipt_path(data_dir: Path, item_id: str) -> Path:
    return data_dir / "receipts" / f"{item_id}.json"


def write_receipt(data_dir: Path, receipt: ShardReceipt) -> None:
    path = receipt_path(data_dir, receipt.item_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, receipt.to_json())


def valid_receipt(
    data_dir: Path, item_id: str, ranges: tuple[SourceRange, ...], settings_hash: str
) -> ShardReceipt | None:
    """The shard's receipt if it matches the inputs and settings and its files are intact.

    Receipts of older versions (no file prefix recorded) are not valid: their shard is redone, and
    keeps its files when the bytes come out the same.
    """
    path = receipt_path(data_dir, item_id)
    try:
        receipt = ShardReceipt.from_json(path.read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if receipt.settings_hash != settings_hash or receipt.inputs != fingerprint(ranges):
        return None
    for output in receipt.splits.values():
        if not output.documents:
            continue
        if not output.prefix:
            return None
        for suffix, size, digest in (
            (".bin", output.bin_size, output.bin_sha256),
            (".idx", output.idx_size, output.idx_sha256),
        ):
            file = data_dir / f"{output.prefix}{suffix}"
            if not file.is_file() or file.stat().st_size != size or sha256_file(file) != digest:
                return None
    return receipt
