"""The per-split `blend.json` that Megatron's dataset builder reads: weight/prefix lists per split.

Format: `{"train": [w1, "prefix1", w2, "prefix2"], "valid": [...], "test": [...]}`; a split with no
data is `null`. Prefixes are relative to the blend file so an artifact can move; `read_blend`
returns absolute prefixes in the `(prefixes, weights)` form of `BlendedMegatronDatasetConfig`.
"""

from __future__ import annotations

import json
from pathlib import Path

from nemotron.atomic_write import write_text_atomic
from nemotron.data.errors import DataError
from nemotron.data.splits import SPLITS

SplitBlend = tuple[list[str], list[float]]


def write_blend(path: Path, per_split: dict[str, list[tuple[float, str]]]) -> None:
    """Write `blend.json` atomically; `per_split` maps split -> [(weight, prefix relative to path)]."""
    content = {
        split: ([x for weight, prefix in per_split.get(split, []) for x in (weight, prefix)] or None)
        for split in SPLITS
    }
    write_text_atomic(path, json.dumps(content, indent=2) + "\n")


def read_blend(path: str | Path) -> dict[str, SplitBlend | None]:
    """Read `blend.json` into split -> (absolute prefixes, weights), or None for an empty split."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read blend {path}: {err}") from None
    if not isinstance(raw, dict):
        raise DataError(
            f"{path} is not a per-split Megatron blend: expected "
            '{"train": [weight, prefix, ...], "valid": ..., "test": ...}'
        )
    for split, entries in raw.items():
        if entries and (
            not isinstance(entries, list) or len(entries) % 2 or not all(isinstance(p, str) for p in entries[1::2])
        ):
            raise DataError(
                f"blend {path}: split {split!r} must alternate weight and prefix; it must be a list "
                'alternating weight and path prefix (e.g. [0.5, "train/web", 0.5, "train/code"])'
            )
    unknown = sorted(set(raw) - set(SPLITS))
    if unknown:
        raise DataError(
            f"blend {path}: unknown split(s) {', '.join(unknown)}; a per-split blend has {', '.join(SPLITS)}"
        )
    result: dict[str, SplitBlend | None] = {}
    for split in SPLITS:
        entries = raw.get(split)
        if not entries:
            result[split] = None
            continue
        weights = [float(w) for w in entries[0::2]]
        prefixes = [str((path.parent / p).resolve()) for p in entries[1::2]]
        result[split] = (prefixes, weights)
    return result
