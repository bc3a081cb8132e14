"""Where a shard's finished files go: a file once written is never rewritten (published versions point at it).

A split of a shard lands at `<split>/<dataset>/shard_NNNNN.{bin,idx}` (an SFT or RL shard's: one file
under its own folder, see sft_shard.py and rl_shard.py), written first under a temporary name
(`staged_file`). When a re-run (`force`, a repair, changed inputs) produces the same bytes, the existing
files stay as they are (not even their mtime changes); when it produces other bytes, they go to the next
free generation, `shard_NNNNN.g1`, `.g2`, ... The receipt records which prefix the shard's files are at.
"""

from __future__ import annotations

import os
from pathlib import Path

from nemotron.checksums import sha256_file

SUFFIXES = (".bin", ".idx")


def base_prefix(split: str, dataset: str, shard: int) -> str:
    """The first-generation prefix of a shard's split, relative to the data folder."""
    return f"{split}/{dataset}/shard_{shard:05d}"


def staged_path(data_dir: Path, base: str, suffix: str, tag: str) -> Path:
    """`base`'s `suffix` file under this process's temporary name (`tag`)."""
    return data_dir / f"{base}{suffix}{tag}"


def staged_file(data_dir: Path, base: str, suffix: str, tag: str) -> Path:
    """Where this process (`tag`, e.g. `.tmp<pid>`) writes `base`'s `suffix` file before committing it: its
    folder made, and the temporaries a killed earlier run left for that file removed (its own, and those of
    writers that write beside their target: `.<name>.tmp*`)."""
    staged = staged_path(data_dir, base, suffix, tag)
    staged.parent.mkdir(parents=True, exist_ok=True)
    name = f"{Path(base).name}{suffix}"
    for pattern in (f"{name}.tmp*", f".{name}.tmp*"):
        for stale in staged.parent.glob(pattern):
            stale.unlink(missing_ok=True)
    return staged


def _generation(base: str, number: int) -> str:
    return base if number == 0 else f"{base}.g{number}"


def _same_file(existing: Path, size: int, digest: str) -> bool:
    return existing.stat().st_size == size and sha256_file(existing) == digest


def commit_files(data_dir: Path, base: str, staged: dict[str, Path]) -> tuple[str, dict[str, tuple[int, str]]]:
    """Move the staged `.bin`/`.idx` (suffix -> temporary file) to the first generation of `base` whose
    files are absent or hold the same bytes; returns that prefix (relative) and suffix -> (size, sha256).

    A temporary file whose bytes are already in place is deleted, so the existing file is untouched.
    """
    sums = {suffix: (path.stat().st_size, sha256_file(path)) for suffix, path in staged.items()}
    number = 0
    while True:
        prefix = _generation(base, number)
        targets = {suffix: data_dir / f"{prefix}{suffix}" for suffix in staged}
        if all(not t.exists() or _same_file(t, *sums[s]) for s, t in targets.items()):
            break
        number += 1
    for suffix, target in targets.items():
        if target.exists():
            staged[suffix].unlink()
        else:
            os.replace(staged[suffix], target)
    return prefix, sums
