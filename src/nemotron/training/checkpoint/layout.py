"""The on-disk layout of training checkpoints: iter_XXXXXXX folders, their info file and `latest`, and reading them."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from nemotron.artifacts.importing import NEMOTRON_CHECKPOINT_INFO
from nemotron.training.errors import TrainingError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INFO_FILE = NEMOTRON_CHECKPOINT_INFO  # beside each checkpoint's files; `artifacts import` reads it
LATEST_FILE = "latest"
PARTIAL_SUFFIX = ".partial"
ASIDE_SUFFIX = ".replaced"
_ITER_NAME = re.compile(r"^iter_(\d{7,})$")
RESERVED_KEYS = ("format_version", "iteration")
RESUME_FIX = (
    "delete that iter_ folder (and `latest` if it names it), or set checkpoint.resume=false, "
    "or point checkpoint.load at another iter_ folder"
)


class CheckpointError(TrainingError):
    """A checkpoint cannot be saved, found or loaded; the message names the path, what is wrong and the fix."""


@dataclass(frozen=True)
class CheckpointInfo:
    """A complete checkpoint folder, its training iteration and the caller's metadata saved with it."""

    path: Path
    iteration: int
    metadata: dict


def checkpoint_name(iteration: int) -> str:
    """The folder name of a complete checkpoint: iter_0000100 for iteration 100."""
    return f"iter_{iteration:07d}"


def iteration_of(name: str) -> int | None:
    """The iteration in an iter_ folder name, None for any other name (partial folders included)."""
    match = _ITER_NAME.match(name)
    return int(match.group(1)) if match else None


def fsync_dir(path: Path) -> None:
    """Make renames and new entries in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, text: str) -> None:
    """Write `text` to `path` and fsync it (the caller renames or fsyncs the folder)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_files(folder: Path) -> None:
    """fsync every file under `folder` (megatron fsyncs its shard files, not common.pt / metadata.json)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    fsync_dir(folder)


def remove_tree(path: Path) -> None:
    """Delete a checkpoint folder, its info file first so a half-deleted folder never looks complete."""
    (path / INFO_FILE).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


def read_checkpoint_info(path: Path) -> CheckpointInfo:
    """The CheckpointInfo of an explicit checkpoint folder; CheckpointError unless it is complete."""
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        raise CheckpointError(
            f"checkpoint {path} is an unfinished save ({PARTIAL_SUFFIX} folders are never loaded); "
            "point checkpoint.load at a complete iter_ folder (the next save deletes this one)"
        )
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; point checkpoint.load at an existing iter_ folder")
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint {path} is a file, not a checkpoint folder; point checkpoint.load at an iter_ folder"
        )
    info_path = path / INFO_FILE
    if not info_path.is_file():
        raise CheckpointError(
            f"checkpoint {path} has no {INFO_FILE}, so its save never completed or it is not a nemotron checkpoint; "
            f"{RESUME_FIX}"
        )
    return _parse_info(path, info_path)


def _parse_info(path: Path, info_path: Path) -> CheckpointInfo:
    """Validate the info file of `path` and turn it into a CheckpointInfo."""
    try:
        data = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path}: {info_path} is unreadable ({err}); {RESUME_FIX}") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        found = data.get("format_version") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"checkpoint {path}: {info_path} has format_version {found!r}, this code reads {FORMAT_VERSION}; "
            f"use the nemotron version that wrote it, or {RESUME_FIX}"
        )
    iteration = data.get("iteration")
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        raise CheckpointError(f"checkpoint {path}: {info_path} has no valid 'iteration' ({iteration!r}); {RESUME_FIX}")
    named = iteration_of(path.name)
    if named is not None and named != iteration:
        raise CheckpointError(
            f"checkpoint {path}: the folder name says iteration {named} but {INFO_FILE} says {iteration}; "
            f"rename the folder to {checkpoint_name(iteration)} or {RESUME_FIX}"
        )
    metadata = {key: value for key, value in data.items() if key not in RESERVED_KEYS}
    return CheckpointInfo(path=path, iteration=iteration, metadata=metadata)


def complete_folders(root: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the iter_ folders under `root` that hold an info file, oldest first."""
    if not root.is_dir():
        return []
    found = [(iteration_of(child.name), child) for child in root.iterdir()]
    return sorted((it, child) for it, child in found if it is not None and (child / INFO_FILE).is_file())


def latest_checkpoint(root: Path) -> CheckpointInfo | None:
    """The checkpoint `root/latest` names, else the newest complete one; None when there is none at all."""
    root = Path(root)
    if not root.is_dir():
        return None
    latest = root / LATEST_FILE
    if not latest.exists():
        found = complete_folders(root)
        if not found:
            return None
        newest = found[-1][1]
        logger.warning("%s is missing; resuming from the newest complete checkpoint %s", latest, newest)
        return _parse_info(newest, newest / INFO_FILE)
    try:
        name = latest.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{latest} is unreadable ({err}); delete it to resume from the newest complete checkpoint"
        ) from None
    if iteration_of(name) is None:
        raise CheckpointError(
            f"{latest} contains {name!r}, not an iter_XXXXXXX folder name; delete it to resume from the newest "
            "complete checkpoint, or set checkpoint.resume=false"
        )
    path = root / name
    aside = root / f"{name}{ASIDE_SUFFIX}"
    if not path.is_dir() and (aside / INFO_FILE).is_file():
        # A re-save of this iteration was interrupted between moving the old folder aside and renaming the new one.
        logger.warning("%s is missing but its previous version %s is complete; using that", path, aside)
        return _parse_info(aside, aside / INFO_FILE)
    if not path.is_dir():
        raise CheckpointError(
            f"{latest} names {name} but {path} does not exist; delete {latest} to resume from the newest complete "
            "checkpoint, or set checkpoint.resume=false, or point checkpoint.load at another iter_ folder"
        )
    if not (path / INFO_FILE).is_file():
        raise CheckpointError(
            f"{latest} names {path}, which has no {INFO_FILE} (an incomplete or foreign folder); "
            f"delete {latest} to resume from the newest complete checkpoint, or {RESUME_FIX}"
        )
    return _parse_info(path, path / INFO_FILE)
