"""Split a blend into deterministic, size-balanced work items (shards) per dataset."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path

from nemotron.data.blend_spec import BlendSpec, DatasetSpec
from nemotron.data.sources import SourceRange, is_splittable, resolve_files
from nemotron.ranges import require_int_in_range


@dataclass(frozen=True)
class WorkItem:
    """One shard: the input ranges of one dataset that one worker tokenizes into bin/idx files."""

    dataset: str
    shard: int
    ranges: tuple[SourceRange, ...]

    @property
    def id(self) -> str:
        return f"{self.dataset}/shard_{self.shard:05d}"


def plan_work(blend: BlendSpec, num_shards: int, *, sample: int | None = None) -> list[WorkItem]:
    """About `num_shards` items over the blend, shared out by input bytes (>= 1 per dataset).

    The plan depends only on the blend, the input files' sizes and `num_shards`, so a rerun
    plans the same items and can skip those whose receipts are valid. With `sample`, each
    dataset is one item (its first `sample` documents).
    """
    require_int_in_range("num_shards", num_shards, ValueError, minimum=1)
    sizes = {spec.name: _files(spec) for spec in blend.datasets}
    total = sum(size for files in sizes.values() for _, size, _ in files) or 1
    items: list[WorkItem] = []
    for spec in blend.datasets:
        files = sizes[spec.name]
        dataset_bytes = sum(size for _, size, _ in files)
        wanted = 1 if sample or spec.is_hub else max(1, round(num_shards * dataset_bytes / total))
        for index, ranges in enumerate(_split(files, wanted)):
            items.append(WorkItem(spec.name, index, tuple(ranges)))
    return items


def _files(spec: DatasetSpec) -> list[tuple[str, int, bool]]:
    if spec.is_hub:
        return [(spec.path, 0, False)]
    return [(str(p), os.stat(p).st_size, is_splittable(Path(p))) for p in resolve_files(spec)]


def _split(files: list[tuple[str, int, bool]], wanted: int) -> list[list[SourceRange]]:
    """Cut the concatenated files at `wanted - 1` equally spaced byte positions."""
    total = sum(size for _, size, _ in files)
    cuts = [total * i // wanted for i in range(1, wanted)]
    shards: list[list[SourceRange]] = [[] for _ in range(wanted)]
    position = 0
    for path, size, splittable in files:
        if not splittable or size == 0:
            shards[bisect.bisect_right(cuts, position)].append(SourceRange(path))
        else:
            start = position
            while start < position + size:
                shard = bisect.bisect_right(cuts, start)
                end = min(cuts[shard] if shard < len(cuts) else total, position + size)
                shards[shard].append(SourceRange(path, start - position, end - position, splittable=True))
                start = end
        position += size
    return [ranges for ranges in shards if ranges]
