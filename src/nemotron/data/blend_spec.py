"""The input blend JSON: which datasets to prepare, with weights and text fields (typed, validated)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from nemotron.data.errors import DataError
from nemotron.ranges import is_positive_number

HF_PREFIX = "hf://"
_DATASET_KEYS = {"name", "path", "weight", "text_field", "split", "subset"}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a blend: a local file/glob or an `hf://` dataset, its weight and text field."""

    name: str
    path: str  # absolute local path or glob, or hf://org/name
    weight: float
    text_field: str
    split: str = "train"  # for hf:// datasets
    subset: str | None = None  # for hf:// datasets (the `name` argument of load_dataset)

    @property
    def is_hub(self) -> bool:
        return self.path.startswith(HF_PREFIX)


@dataclass(frozen=True)
class BlendSpec:
    """A validated blend: its source file and datasets in file order."""

    source: Path
    datasets: tuple[DatasetSpec, ...]


def load_blend_spec(path: str | Path, default_text_field: str = "text") -> BlendSpec:
    """Read and validate a blend JSON file; local paths in it are relative to the file."""
    path = Path(path).expanduser()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"blend file {path} does not exist; check the config key 'blend_path'") from None
    except json.JSONDecodeError as err:
        raise DataError(f"blend file {path} is not valid JSON: {err}") from None
    entries = raw.get("datasets") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DataError(
            f"blend file {path}: expected an object with a non-empty list 'datasets', "
            'e.g. {"datasets": [{"name": "web", "path": "web.jsonl", "weight": 1.0}]}'
        )
    datasets = tuple(_dataset(path, i, e, default_text_field) for i, e in enumerate(entries))
    names = [d.name for d in datasets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"blend file {path}: dataset names must be unique; repeated: {', '.join(duplicates)}")
    return BlendSpec(path.resolve(), datasets)


def _dataset(blend_path: Path, index: int, entry: object, default_text_field: str) -> DatasetSpec:
    where = f"blend file {blend_path}, datasets[{index}]"
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected an object with 'name', 'path' and 'weight'")
    unknown = sorted(set(entry) - _DATASET_KEYS)
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_DATASET_KEYS))}")
    for key in ("name", "path", "weight"):
        if key not in entry:
            raise DataError(f"{where}: missing key '{key}'")
    name, path, weight = entry["name"], entry["path"], entry["weight"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise DataError(f"{where}: 'name' must be a string of letters, digits, '.', '_', '-'; got {name!r}")
    if not isinstance(path, str) or not path:
        raise DataError(f"{where}: 'path' must be a non-empty string")
    if not is_positive_number(weight):
        raise DataError(f"{where} ({name}): 'weight' must be a number > 0 and finite, got {weight!r}")
    text_field = entry.get("text_field", default_text_field)
    if not isinstance(text_field, str) or not text_field:
        raise DataError(f"{where} ({name}): 'text_field' must be a non-empty string")
    if not path.startswith(HF_PREFIX):
        resolved = Path(path).expanduser()
        if not resolved.is_absolute():
            resolved = blend_path.parent / resolved
        path = str(resolved.resolve())
    return DatasetSpec(
        name=name,
        path=path,
        weight=float(weight),
        text_field=text_field,
        split=str(entry.get("split", "train")),
        subset=entry.get("subset"),
    )
