"""Stream documents out of a dataset: JSONL (optionally .gz), Parquet, plain text, or `hf://`."""

from __future__ import annotations

import glob
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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


def iter_documents(spec: DatasetSpec) -> Iterator[Document]:
    """Yield the documents of `spec` in a deterministic order, streaming (no whole file in RAM)."""
    if spec.is_hub:
        yield from _iter_hub(spec)
        return
    for path in resolve_files(spec):
        name = path.name.lower()
        if name.endswith(JSONL_SUFFIXES):
            yield from _iter_jsonl(path, spec.text_field)
        elif name.endswith(PARQUET_SUFFIXES):
            yield from _iter_parquet(path, spec.text_field)
        elif name.endswith(TEXT_SUFFIXES):
            try:
                with _open_text(path) as handle:
                    text = handle.read()
            except UnicodeDecodeError as err:
                raise DataError(f"{path}: not valid UTF-8 text ({err})") from None
            yield Document(text, str(path))
        else:
            raise DataError(
                f"dataset {spec.name}: unsupported file type {path}; "
                f"supported: {', '.join(JSONL_SUFFIXES + PARQUET_SUFFIXES + TEXT_SUFFIXES)}"
            )


def resolve_files(spec: DatasetSpec) -> list[Path]:
    """The local files of `spec`, sorted: the path itself, a directory's files, or a glob's matches."""
    path = Path(spec.path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        files = sorted(Path(p) for p in glob.glob(spec.path, recursive=True) if Path(p).is_file())
    if not files:
        raise DataError(
            f"dataset {spec.name}: no input files at {spec.path}; fix 'path' in the blend file "
            "(relative paths are relative to the blend file)"
        )
    return files


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _iter_jsonl(path: Path, text_field: str) -> Iterator[Document]:
    with open(path, "rb") as raw_file:
        stream = gzip.GzipFile(fileobj=raw_file) if path.name.endswith(".gz") else raw_file
        for line_no, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            origin = f"{path}:{line_no}"
            try:
                record = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise DataError(f"{origin}: not a valid UTF-8 JSON line ({err})") from None
            yield Document(_text_of(record, text_field, origin), origin)


def _iter_parquet(path: Path, text_field: str) -> Iterator[Document]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if text_field not in parquet.schema_arrow.names:
        raise DataError(
            f"{path}: no column {text_field!r}; columns: {', '.join(parquet.schema_arrow.names)}; "
            "set 'text_field' for this dataset in the blend file"
        )
    row = 0
    for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
        for value in batch.column(0).to_pylist():
            row += 1
            yield Document(_text_of({text_field: value}, text_field, f"{path}:row {row}"), f"{path}:row {row}")


def _iter_hub(spec: DatasetSpec) -> Iterator[Document]:
    import datasets

    repo = spec.path[len(HF_PREFIX):]
    try:
        stream = datasets.load_dataset(repo, spec.subset, split=spec.split, streaming=True)
    except Exception as err:  # the hub client raises many types; report them all the same way
        raise DataError(f"dataset {spec.name}: cannot load {spec.path} from the hub: {err}") from err
    for index, record in enumerate(stream):
        origin = f"{spec.path}[{spec.split}][{index}]"
        yield Document(_text_of(record, spec.text_field, origin), origin)


def _text_of(record: object, text_field: str, origin: str) -> str:
    if not isinstance(record, dict):
        raise DataError(f"{origin}: expected a JSON object with a {text_field!r} field")
    if text_field not in record:
        raise DataError(
            f"{origin}: no field {text_field!r}; fields: {', '.join(map(str, record))}; "
            "set 'text_field' for this dataset in the blend file"
        )
    text = record[text_field]
    if text is None:
        return ""
    if not isinstance(text, str):
        raise DataError(f"{origin}: field {text_field!r} must be a string, got {type(text).__name__}")
    return text
