"""What registering an existing directory means: which files to reference in place, what metadata to detect."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.artifacts.errors import ArtifactError
from nemotron.artifacts.kinds import ArtifactKind
from nemotron.artifacts.megatron_files import (
    BLEND_FILE,
    CHECKPOINT_TRACKER,
    DIST_METADATA,
    blend_prefixes,
    checkpoint_format,
    checkpoint_step,
    is_checkpoint_dir,
    read_indexed,
)


@dataclass(frozen=True)
class ImportPlan:
    """Files (role -> absolute path), paths to record in the manifest, and detected metadata."""

    files: dict[str, str]
    references: tuple[Path, ...]
    detected: dict[str, Any] = field(default_factory=dict)


def plan_import(kind: ArtifactKind, path: Path | str) -> ImportPlan:
    """Inspect `path` for registering it as `kind` without copying; clear errors when it does not fit."""
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        raise ArtifactError(f"cannot import {path}: not a directory (give the blend or checkpoint directory)")
    if kind is ArtifactKind.PRETRAIN_DATA:
        return _plan_blend_dir(path)
    if kind is ArtifactKind.MODEL_CHECKPOINT:
        return _plan_checkpoint_dir(path)
    raise ArtifactError(
        f"importing {kind.value} is not supported yet; importable kinds: "
        f"{ArtifactKind.PRETRAIN_DATA.value} (a dir with {BLEND_FILE}), "
        f"{ArtifactKind.MODEL_CHECKPOINT.value} (a Megatron checkpoint dir)"
    )


def _plan_blend_dir(path: Path) -> ImportPlan:
    blend = path / BLEND_FILE
    if not blend.is_file():
        raise ArtifactError(
            f"cannot import {path} as {ArtifactKind.PRETRAIN_DATA.value}: it has no {BLEND_FILE} "
            '(Megatron per-split blend: {"train": [weight, prefix, ...], ...}); point at the directory holding it'
        )
    references: list[Path] = [blend]
    splits: dict[str, dict[str, int]] = {}
    dtypes: set[str] = set()
    for split, prefixes in blend_prefixes(blend).items():
        totals = {"documents": 0, "tokens": 0, "bytes": 0}
        for prefix in prefixes:
            indexed = read_indexed(prefix)
            references += [Path(f"{prefix}.bin"), Path(f"{prefix}.idx")]
            dtypes.add(indexed.dtype)
            totals["documents"] += indexed.documents
            totals["tokens"] += indexed.tokens
            totals["bytes"] += indexed.bin_bytes
        splits[split] = totals
    if len(dtypes) > 1:
        raise ArtifactError(f"{blend} mixes token dtypes {sorted(dtypes)}; one artifact must use one dtype")
    detected: dict[str, Any] = {"splits": splits, "blend_source": str(blend)}
    if dtypes:
        detected["dtype"] = dtypes.pop()
    return ImportPlan({"blend": str(blend)}, tuple(dict.fromkeys(references)), detected)


def _plan_checkpoint_dir(path: Path) -> ImportPlan:
    if not is_checkpoint_dir(path):
        raise ArtifactError(
            f"cannot import {path} as {ArtifactKind.MODEL_CHECKPOINT.value}: it has neither "
            f"{CHECKPOINT_TRACKER} (a Megatron checkpoint root) nor {DIST_METADATA} (one distributed "
            "checkpoint, e.g. iter_0001000/); point at one of those directories"
        )
    detected: dict[str, Any] = {"format": checkpoint_format(path)}
    step = checkpoint_step(path)
    if step is not None:
        detected["step"] = step
    detected.update(_nemotron_checkpoint_fields(path))
    return ImportPlan({"checkpoint": str(path)}, (path,), detected)


NEMOTRON_CHECKPOINT_INFO = "nemotron_checkpoint.json"  # written beside each checkpoint by nemotron's training stages


def _nemotron_checkpoint_fields(path: Path) -> dict[str, Any]:
    """Architecture, parallelism, tokenizer and tokens seen of a checkpoint a nemotron stage wrote (else nothing),
    so that a fine-tuning stage can read its model settings from the imported artifact."""
    try:
        info = json.loads((path / NEMOTRON_CHECKPOINT_INFO).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict) or not isinstance(info.get("model"), dict):
        return {}
    fields: dict[str, Any] = {"architecture": info["model"]}
    for key in ("parallelism", "tokenizer"):
        if isinstance(info.get(key), dict):
            fields[key] = info[key]
    tokens = (info.get("train_state") or {}).get("tokens_seen")
    if isinstance(tokens, int):
        fields["tokens_seen"] = tokens
    return fields
