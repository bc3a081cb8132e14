"""Shard receipts: the proof a shard is complete, checked before a rerun skips it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from nemotron.atomic_write import write_text_atomic
from nemotron.checksums import sha256_file
from nemotron.data.errors import DataError
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

    def progress_counts(self) -> tuple[int, int]:
        """Documents and tokens, for progress lines."""
        return sum(s.documents for s in self.splits.values()), sum(s.tokens for s in self.splits.values())


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


class _Writable(Protocol):
    @property
    def item_id(self) -> str: ...

    def to_json(self) -> str: ...


def write_receipt(data_dir: Path, receipt: _Writable) -> None:
    """Write the receipt atomically (a crash leaves the old receipt or the new one, never half of one)."""
    path = receipt_path(data_dir, receipt.item_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, receipt.to_json())


class _Receipt(Protocol):
    settings_hash: str
    inputs: list[InputFingerprint]


R = TypeVar("R", bound=_Receipt)


def matching_receipt(
    data_dir: Path, item_id: str, ranges: tuple[SourceRange, ...], settings_hash: str, parse: Callable[[str], R]
) -> R | None:
    """The item's receipt (read with `parse`) when it exists and matches the settings and the inputs."""
    try:
        receipt = parse(receipt_path(data_dir, item_id).read_text())
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if receipt.settings_hash != settings_hash or receipt.inputs != fingerprint(ranges):
        return None
    return receipt


def files_intact(data_dir: Path, files: Iterable[tuple[str, int, str]]) -> bool:
    """Whether each (path relative to `data_dir`, size, sha256) a receipt records is there with those bytes."""
    for relative, size, digest in files:
        file = data_dir / relative
        if not file.is_file() or file.stat().st_size != size or sha256_file(file) != digest:
            return False
    return True


def refuse_other_settings(data_dir: Path, settings_hash: str) -> None:
    """Never overwrite shards made with other settings: a published artifact may point at them."""
    for path in sorted((data_dir / "receipts").glob("*/*.json")):
        try:
            other = json.loads(path.read_text()).get("settings_hash")
        except (OSError, ValueError, AttributeError):
            continue  # unreadable: that shard is redone like any invalid one
        if other != settings_hash:
            raise DataError(
                f"data folder {data_dir} holds shards made with other settings ({path} has settings "
                f"hash {str(other)[:16]}, this run {settings_hash[:16]}), and a published "
                "artifact may use them; set output_dir to another folder (or null: one folder per settings) "
                "or delete that folder first"
            )


def valid_receipt(
    data_dir: Path, item_id: str, ranges: tuple[SourceRange, ...], settings_hash: str
) -> ShardReceipt | None:
    """The shard's receipt if it matches the inputs and settings and its files are intact.

    Receipts of older versions (no file prefix recorded) are not valid: their shard is redone, and
    keeps its files when the bytes come out the same.
    """
    receipt = matching_receipt(data_dir, item_id, ranges, settings_hash, ShardReceipt.from_json)
    if receipt is None:
        return None
    outputs = [output for output in receipt.splits.values() if output.documents]
    if any(not output.prefix for output in outputs):
        return None
    files = [
        (f"{output.prefix}{suffix}", size, digest)
        for output in outputs
        for suffix, size, digest in (
            (".bin", output.bin_size, output.bin_sha256),
            (".idx", output.idx_size, output.idx_sha256),
        )
    ]
    return receipt if files_intact(data_dir, files) else None
