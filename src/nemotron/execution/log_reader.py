"""Incremental reading of a job's log files: a cursor remembers how far each file was read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

LogCursor = dict[str, int]  # path -> bytes already read


def read_from(path: Path, offset: int) -> tuple[str, int]:
    """Text appended to `path` since byte `offset`, and the new offset ('' if the file is absent)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return "", offset
    return data.decode("utf-8", errors="replace"), offset + len(data)


def read_new(
    paths: Iterable[str],
    cursor: LogCursor,
    reader: Callable[[str, int], tuple[str, int]] = lambda p, o: read_from(Path(p), o),
) -> tuple[str, LogCursor]:
    """New text of each file in order, and the advanced cursor (files that appear later start at 0)."""
    cursor = dict(cursor)
    chunks = []
    for path in paths:
        text, cursor[path] = reader(path, cursor.get(path, 0))
        chunks.append(text)
    return "".join(chunks), cursor
