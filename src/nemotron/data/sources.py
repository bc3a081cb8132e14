"""Stream records out of a dataset: JSONL (optionally .gz), Parquet, plain text, or `hf://`.

Local JSONL files can be read by byte range (a shard reads the lines that start inside its
range), so one large file can be shared out to many workers. Every record carries a key that
identifies it independently of how the dataset was sharded (file and byte offset or row).
"""

from __future__ import annotations

import glob
import gzip
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from nemotron.data.blend_spec import HF_PREFIX, DatasetSpec
from nemotron.data.errors import DataError

JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet",)
TEXT_SUFFIXES = (".txt", ".txt.gz", ".md", ".rst")


@dataclass(frozen=True)
class Document:
    """One document's text and where it came from (file and line/row) for error messages."""

    text: str
    origin: str


@dataclass(frozen=True)
class Record:
    """One input record: its text, or the problem that makes it unusable (counted, not fatal)."""

    key: str  # stable identity, independent of sharding and of where the files live:
    # "<file name>:<byte offset>", "<file name>:row <n>", "<file name>", "<hub name>[<split>][<n>]"
    origin: str  # for messages: file:line, file:row n, ...
    text: str | None
    problem: str | None = None


@dataclass(frozen=True)
class SourceRange:
    """A piece of one input: bytes [start, end) of a JSONL file, or a whole file / hub dataset."""

    path: str
    start: int = 0
    end: int | None = None  # None: to the end of the input
    splittable: bool = False  # plain JSONL: may be cut at any byte (reads whole lines)


def is_splittable(path: Path) -> bool:
    return path.name.lower().endswith((".jsonl", ".json"))


def iter_documents(spec: DatasetSpec) -> Iterator[Document]:
    """All documents of `spec` in order; the first malformed record raises DataError."""
    for rng in whole_dataset_ranges(spec):
        for record in iter_records(rng, spec):
            if record.problem:
                raise DataError(record.problem)
            yield Document(record.text or "", record.origin)


def whole_dataset_ranges(spec: DatasetSpec) -> list[SourceRange]:
    if spec.is_hub:
        return [SourceRange(spec.path)]
    return [SourceRange(str(p), splittable=is_splittable(p)) for p in resolve_files(spec)]


def resolve_files(spec: DatasetSpec) -> list[Path]:
    """The local files of `spec`, sorted: the path itself, a directory's files, or a glob's matches."""
    path = Path(spec.path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        files = sorted(Path(p) for p in glob.glob(spec.path, recursive=True) if Path(p).is_file())
    if not files:
        raise DataError(
            f"dataset {spec.name}: no input files at {spec.path}; fix 'path' in the blend file "
            "(relative paths are relative to the blend file)"
        )
    supported = JSONL_SUFFIXES + PARQUET_SUFFIXES + TEXT_SUFFIXES
    for file in files:
        if not file.name.lower().endswith(supported):
            raise DataError(f"dataset {spec.name}: unsupported file type {file}; supported: {', '.join(supported)}")
    return files


def iter_records(rng: SourceRange, spec: DatasetSpec) -> Iterator[Record]:
    """The records of one range, streaming (bounded memory whatever the input size)."""
    if not is_structured(rng.path):
        yield _text_file_record(Path(rng.path))
        return
    fix = "set 'text_field' for this dataset in the blend file"
    for raw in iter_raw_records(rng, spec, (spec.text_field,), fix=fix):
        if raw.problem is not None:
            yield Record(raw.key, raw.origin, None, raw.problem)
        else:
            yield _from_mapping(raw.value, spec.text_field, raw.key, raw.origin)


def is_structured(path: str) -> bool:
    """Whether `path` holds records (JSONL, Parquet, a hub dataset), not one plain text document."""
    return path.startswith(HF_PREFIX) or path.lower().endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)


def iter_raw_records(
    rng: SourceRange, spec: DatasetSpec, columns: Sequence[str], *, fix: str, required: int = 1
) -> Iterator[RawRecord]:
    """The records of one JSONL, Parquet or hub range as read, streaming: a JSON line's value (any JSON
    value), or an object of a Parquet row's `columns` (any may be absent from the file, but a file without
    any of the first `required` is a DataError ending with `fix`), or a hub row."""
    if rng.path.startswith(HF_PREFIX):
        yield from _iter_hub(spec)
    elif rng.path.lower().endswith(PARQUET_SUFFIXES):
        yield from _iter_parquet(Path(rng.path), columns, columns[:required], fix)
    else:
        yield from iter_json_lines(rng)


def iter_json_records(
    rng: SourceRange, spec: DatasetSpec, columns: Sequence[str], *, fix: str, required: int = 1
) -> Iterator[RawRecord]:
    """`iter_raw_records`, with a Parquet or hub row read as its JSON line would read: Arrow gives every object
    of a column every field of the column's struct type, null where the object had none, so null fields are
    dropped (at every depth)."""
    arrow = not rng.path.lower().endswith(JSONL_SUFFIXES)
    for record in iter_raw_records(rng, spec, columns, fix=fix, required=required):
        yield replace(record, value=_without_nulls(record.value)) if arrow else record


def _without_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def _text_file_record(path: Path) -> Record:
    try:
        with _open_text(path) as handle:
            return Record(path.name, str(path), handle.read())
    except UnicodeDecodeError as err:
        return Record(path.name, str(path), None, f"{path}: not valid UTF-8 text ({err})")


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


@dataclass(frozen=True)
class RawRecord:
    """One record as read (a JSONL line's JSON value, a Parquet or hub row as an object), or the problem
    that makes it unreadable."""

    key: str  # as Record.key
    origin: str  # file:line (or file:byte N when reading from the middle), file:row N, hub[split][N]
    value: object = None
    problem: str | None = None


def iter_json_lines(rng: SourceRange) -> Iterator[RawRecord]:
    """The parsed lines of a local JSONL range (`.jsonl`, `.json`, or gzipped), streaming."""
    path = Path(rng.path)
    with open(path, "rb") as raw_file:
        if path.name.endswith(".gz"):
            yield from _jsonl_lines(gzip.GzipFile(fileobj=raw_file), path, 0, None, 1)
            return
        start = rng.start
        if start > 0:  # the line holding byte start-1 belongs to the previous range
            raw_file.seek(start - 1)
            start += len(raw_file.readline()) - 1
        raw_file.seek(start)
        line_no = None if rng.start else 1  # line numbers are only known when reading from the top
        yield from _jsonl_lines(raw_file, path, start, rng.end, line_no)


def _jsonl_lines(
    stream: Iterable[bytes], path: Path, offset: int, end: int | None, line_no: int | None
) -> Iterator[RawRecord]:
    for raw in stream:
        if end is not None and offset >= end:
            return
        key = f"{path.name}:{offset}"
        origin = f"{path}:{line_no}" if line_no else f"{path}:byte {offset}"
        offset += len(raw)
        line_no = line_no + 1 if line_no else None
        if not raw or raw.isspace():  # (no stripped copy of a line that may hold a 50 MB document)
            continue
        try:
            yield RawRecord(key, origin, json.loads(raw))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            yield RawRecord(key, origin, None, f"{origin}: not a valid UTF-8 JSON line ({err})")


def _iter_parquet(path: Path, columns: Sequence[str], required: Sequence[str], fix: str) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    if not any(column in names for column in required):
        wanted = " or ".join(repr(column) for column in required)
        raise DataError(f"{path}: no column {wanted}; columns: {', '.join(names)}; {fix}")
    present = [column for column in columns if column in names]
    row = 0
    for batch in parquet.iter_batches(columns=present, batch_size=1024):
        for values in zip(*(batch.column(i).to_pylist() for i in range(len(present))), strict=True):
            row += 1
            yield RawRecord(f"{path.name}:row {row}", f"{path}:row {row}", dict(zip(present, values, strict=True)))


def _iter_hub(spec: DatasetSpec) -> Iterator[RawRecord]:
    import datasets

    repo = spec.path[len(HF_PREFIX) :]
    try:
        stream = datasets.load_dataset(repo, spec.subset, split=spec.split, streaming=True)
    except Exception as err:  # the hub client raises many types; report them all the same way
        raise DataError(f"dataset {spec.name}: cannot load {spec.path} from the hub: {err}") from err
    for index, record in enumerate(stream):
        origin = f"{spec.path}[{spec.split}][{index}]"
        yield RawRecord(origin, origin, record)


def _from_mapping(record: object, text_field: str, key: str, origin: str) -> Record:
    if not isinstance(record, dict):
        return Record(key, origin, None, f"{origin}: expected a JSON object with a {text_field!r} field")
    if text_field not in record:
        return Record(
            key,
            origin,
            None,
            f"{origin}: no field {text_field!r}; fields: {', '.join(map(str, record))}; "
            "set 'text_field' for this dataset in the blend file",
        )
    text = record[text_field]
    if text is None:
        return Record(key, origin, "")
    if not isinstance(text, str):
        return Record(key, origin, None, f"{origin}: field {text_field!r} must be a string, got {type(text).__name__}")
    return Record(key, origin, text)
