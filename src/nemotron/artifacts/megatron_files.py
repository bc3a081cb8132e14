"""Reading Megatron's on-disk formats without importing megatron: blend.json, .idx headers, checkpoints."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from nemotron.artifacts.errors import ArtifactError
from nemotron.data.errors import DataError
from nemotron.data.indexed_format import DTYPE_NAMES, DTYPE_SIZES, HEADER
from nemotron.data.megatron_blend import read_blend

BLEND_FILE = "blend.json"
CHECKPOINT_TRACKER = "latest_checkpointed_iteration.txt"  # Megatron's "which iteration is latest"
DIST_METADATA = "metadata.json"  # written by megatron.core.dist_checkpointing into each checkpoint
_ITER_DIR = re.compile(r"^iter_([0-9]+)$")


@dataclass(frozen=True)
class IndexedFile:
    """One Megatron indexed dataset (`prefix.bin` + `prefix.idx`) as its header describes it."""

    prefix: Path
    dtype: str
    sequences: int
    documents: int
    tokens: int
    bin_bytes: int


def blend_prefixes(blend_file: Path) -> dict[str, list[Path]]:
    """split -> absolute data prefixes of a per-split blend.json, for the splits that have data."""
    try:
        blend = read_blend(blend_file)
    except DataError as err:
        raise ArtifactError(str(err)) from None
    return {split: [Path(p) for p in entry[0]] for split, entry in blend.items() if entry}


def read_indexed(prefix: Path) -> IndexedFile:
    """The header of `prefix.idx` and the size of `prefix.bin`; errors name the file."""
    idx, bin_ = Path(f"{prefix}.idx"), Path(f"{prefix}.bin")
    for path in (idx, bin_):
        if not path.is_file():
            raise ArtifactError(f"data file {path} referenced by the blend does not exist")
    with open(idx, "rb") as handle:
        header = handle.read(len(HEADER) + 8 + 1 + 8 + 8)
    if len(header) < 34 or header[:9] != HEADER:
        raise ArtifactError(f"{idx} is not a Megatron index file (bad header)")
    _version, code, sequences, doc_count = struct.unpack("<QBQQ", header[9:34])
    dtype = DTYPE_NAMES.get(code)
    if dtype is None:
        raise ArtifactError(f"{idx} has unknown dtype code {code}")
    size = bin_.stat().st_size
    return IndexedFile(prefix, dtype, sequences, max(doc_count - 1, 0), size // DTYPE_SIZES[dtype], size)


def is_checkpoint_dir(path: Path) -> bool:
    """A Megatron checkpoint root (tracker file) or one distributed checkpoint (metadata.json)."""
    return (path / CHECKPOINT_TRACKER).is_file() or (path / DIST_METADATA).is_file()


def checkpoint_step(path: Path) -> int | None:
    """The iteration from the tracker file, else from an `iter_NNNNNNN` directory name, else None."""
    tracker = path / CHECKPOINT_TRACKER
    if tracker.is_file():
        text = tracker.read_text().strip()
        if text.isdigit():
            return int(text)
    match = _ITER_DIR.match(path.name)
    return int(match.group(1)) if match else None


def checkpoint_format(path: Path) -> str:
    """ "megatron-dist" (torch_dist/zarr sharded) when metadata.json says so, else "megatron"."""
    candidates = [path / DIST_METADATA, *sorted(path.glob(f"iter_*/{DIST_METADATA}"))]
    for meta in candidates:
        try:
            if "sharded_backend" in json.loads(meta.read_text()):
                return "megatron-dist"
        except (OSError, json.JSONDecodeError, TypeError):
            continue
    return "megatron"
