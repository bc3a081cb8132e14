"""Malformed input records: counted per shard with a few examples (file and line), summed, held to a limit."""

from __future__ import annotations

from typing import Protocol

from nemotron.data.errors import DataError

BAD_EXAMPLES_KEPT = 5  # per shard, and per run in messages and metadata


class BadCounts(Protocol):
    """What counts bad records (a receipt, a result): how many, and the first few problems."""

    bad: int
    bad_examples: list[str]


def count_bad(counts: BadCounts, problem: str) -> None:
    """Count one bad record, keeping its problem (which names its file and line) among the first few."""
    counts.bad += 1
    if len(counts.bad_examples) < BAD_EXAMPLES_KEPT:
        counts.bad_examples.append(problem)


def keep_examples(kept: list[str], more: list[str]) -> None:
    """Add examples of `more` to `kept` until it holds BAD_EXAMPLES_KEPT."""
    kept.extend(more[: max(0, BAD_EXAMPLES_KEPT - len(kept))])


def check_bad_records(count: int, examples: list[str], limit: int) -> None:
    """DataError when more than `limit` (max_bad_records) records were bad, listing the first few."""
    if count > limit:
        raise DataError(
            f"{count} malformed records (max_bad_records={limit}); first: "
            + "; ".join(examples)
            + ". Fix the inputs or raise max_bad_records to skip them."
        )
