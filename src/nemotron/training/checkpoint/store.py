"""Saving and loading megatron-core distributed checkpoints: written as .partial, committed atomically, pruned."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.distributed as dist
from megatron.core import dist_checkpointing
from megatron.core.dist_checkpointing.validation import StrictHandling
from torch.distributed.checkpoint.api import CheckpointException  # a BaseException, not an Exception

from nemotron.atomic_write import write_text_atomic
from nemotron.storage_errors import storage_error
from nemotron.training.checkpoint.layout import (
    ASIDE_SUFFIX,
    FORMAT_VERSION,
    INFO_FILE,
    LATEST_FILE,
    PARTIAL_SUFFIX,
    RESERVED_KEYS,
    RESUME_FIX,
    CheckpointError,
    CheckpointInfo,
    checkpoint_name,
    complete_folders,
    fsync_dir,
    fsync_files,
    read_checkpoint_info,
    remove_tree,
    write_durably,
)
from nemotron.training.checkpoint.signals import helpers_keep_out_of_signals
from nemotron.training.checkpoint.verify import check_request, verify_files
from nemotron.training.cpu_compat import enable_cpu_compat

logger = logging.getLogger(__name__)
DIR_SETTING = "checkpoint.dir"  # the config key that moves a run's checkpoints


# --- collectives ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _process_group() -> Iterator[None]:
    """The running process group, or a one-process gloo group for the duration of the block.

    Also enables the CPU shim when no GPU is present: megatron's saver calls torch.cuda.synchronize().
    """
    enable_cpu_compat()
    if dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1, timeout=timedelta(minutes=10))
    try:
        yield
    finally:
        dist.destroy_process_group()


def _on_rank0(action: Callable[[], None], what: str, root: Path) -> None:
    """Run `action` on global rank 0 and raise CheckpointError on every rank if it failed there."""
    error: str | None = None
    if dist.get_rank() == 0:
        try:
            action()
        except Exception as err:  # noqa: BLE001 - reported to every rank below
            error = f"{what} failed on rank 0: {_reason(err, root)}"
    status = [error]
    if dist.get_world_size() > 1:
        dist.broadcast_object_list(status, src=0)
    if status[0] is not None:
        raise CheckpointError(status[0])


def _copy_structure(value: Any) -> Any:
    """Copy the nested dicts and lists (not the leaves): megatron replaces factories in the dicts it is given."""
    if isinstance(value, dict):
        return {key: _copy_structure(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_structure(item) for item in value]
    return value


# --- saving ---------------------------------------------------------------------------------------


def save_checkpoint(
    root: Path,
    iteration: int,
    sharded_state_dict: dict,
    metadata: dict,
    *,
    keep_last: int | None,
) -> CheckpointInfo:
    """Save `sharded_state_dict` as root/iter_XXXXXXX and point `latest` at it; all ranks call it.

    The data goes to iter_XXXXXXX.partial first; only when every rank has written its part does rank 0
    add nemotron_checkpoint.json, rename the folder and replace `latest`, so an interrupted save leaves
    the previous checkpoint and `latest` untouched. `keep_last` N then deletes all but the newest N
    complete checkpoints (None keeps all), never the one `latest` names. SIGTERM, SIGINT and SIGUSR1
    sent to the whole process group during the save do not stop its helper processes; this process
    receives them when the data is written (checkpoint/signals.py).
    """
    root = Path(root)
    info_text = _info_text(root, iteration, metadata, keep_last)
    name = checkpoint_name(iteration)
    partial = root / f"{name}{PARTIAL_SUFFIX}"
    final = root / name
    with _process_group():
        _on_rank0(lambda: _prepare(root, partial), f"preparing {partial}", root)
        dist.barrier()
        try:
            with helpers_keep_out_of_signals():  # a SIGTERM to the job reaches this process after the save
                dist_checkpointing.save(_copy_structure(sharded_state_dict), str(partial))
        except (Exception, CheckpointException) as err:
            reason = _reason(err, root)  # before the partial folder goes: a full disk is still full here
            if dist.get_rank() == 0:
                shutil.rmtree(partial, ignore_errors=True)
            raise CheckpointError(
                f"saving checkpoint {final} failed: {reason}; {partial.name} was removed, the previous checkpoint "
                f"and {root / LATEST_FILE} are untouched"
            ) from err
        dist.barrier()
        _on_rank0(lambda: _commit(root, partial, final, info_text, keep_last), f"committing {final}", root)
    return CheckpointInfo(path=final, iteration=iteration, metadata=dict(metadata))


def _reason(err: BaseException, root: Path) -> str:
    """Why a save step failed, in one line: the folder's problem and the fix when it refused the write
    (read-only, full), else the error (a CheckpointException's first failure, not its tracebacks)."""
    refused = storage_error(err, "checkpoints", root, DIR_SETTING)
    if refused is not None:
        return str(refused)
    return _first_failure(err)


def _first_failure(err: BaseException) -> str:
    """`Type: first line of the message` of `err`, or of the first rank's failure inside a
    CheckpointException (not its tracebacks): one line."""
    rank = ""
    if isinstance(err, CheckpointException) and err.failures:
        number, (first, _) = next(iter(err.failures.items()))
        rank, err = f"rank {number}: ", first
    line = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return f"{rank}{type(err).__name__}: {line}"


def _info_text(root: Path, iteration: int, metadata: dict, keep_last: int | None) -> str:
    """Validate the save arguments and render nemotron_checkpoint.json (before anything is written)."""
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        raise CheckpointError(f"saving under {root}: iteration must be an integer >= 0, got {iteration!r}")
    if keep_last is not None and (not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 1):
        raise CheckpointError(
            f"saving under {root}: keep_last must be a positive integer or None (keep all), got {keep_last!r}; "
            "fix checkpoint.keep_last"
        )
    if not isinstance(metadata, dict):
        raise CheckpointError(f"saving under {root}: metadata must be a dict, got {type(metadata).__name__}")
    clashes = [key for key in RESERVED_KEYS if key in metadata]
    if clashes:
        raise CheckpointError(f"saving under {root}: metadata keys {clashes} are reserved; rename them")
    try:
        return json.dumps({"format_version": FORMAT_VERSION, "iteration": iteration, **metadata}, indent=2) + "\n"
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"saving under {root}: metadata is not JSON-serialisable ({err}); pass plain values"
        ) from None


def _prepare(root: Path, partial: Path) -> None:
    """Rank 0: create the root, clear up after interrupted saves, create an empty partial folder.

    Partial folders are deleted. A folder moved aside by an interrupted re-save goes back to its name
    when that name is free (the new version never arrived), else it is deleted.
    """
    root.mkdir(parents=True, exist_ok=True)
    for stale in sorted(root.iterdir()):
        if not stale.is_dir():
            continue
        if stale.name.endswith(ASIDE_SUFFIX) and not (original := root / stale.name[: -len(ASIDE_SUFFIX)]).exists():
            logger.warning("restoring %s, moved aside by an interrupted save", original)
            os.replace(stale, original)
        elif stale.name.endswith((PARTIAL_SUFFIX, ASIDE_SUFFIX)):
            logger.warning("removing %s left by an interrupted save", stale)
            shutil.rmtree(stale)
    partial.mkdir()


def _commit(root: Path, partial: Path, final: Path, info_text: str, keep_last: int | None) -> None:
    """Rank 0: mark the partial folder complete, move it into place, update `latest`, prune.

    A partial folder that cannot be marked complete (a full disk) is removed.
    """
    try:
        fsync_files(partial)
        write_durably(partial / INFO_FILE, info_text)
        fsync_dir(partial)
    except BaseException:
        remove_tree(partial)
        raise
    aside = final.with_name(final.name + ASIDE_SUFFIX)
    if final.exists():
        os.replace(final, aside)
    os.replace(partial, final)
    fsync_dir(root)
    _point_latest(root, final.name)
    if aside.exists():
        shutil.rmtree(aside)
    if keep_last is not None:
        prune_checkpoints(root, keep_last)


def _point_latest(root: Path, name: str) -> None:
    """Replace root/latest atomically with `name`."""
    write_text_atomic(root / LATEST_FILE, name + "\n", durable=True)
    fsync_dir(root)


def prune_checkpoints(root: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` complete checkpoints, never the one `latest` names; return the deleted."""
    latest = root / LATEST_FILE
    protected = latest.read_text(encoding="utf-8").strip() if latest.is_file() else None
    found = [path for _, path in complete_folders(root)]
    doomed = [path for path in found[: max(len(found) - keep_last, 0)] if path.name != protected]
    for path in doomed:
        remove_tree(path)
    return doomed


# --- loading --------------------------------------------------------------------------------------


def load_checkpoint(
    info_or_path: CheckpointInfo | Path | str, sharded_state_dict: dict, *, strict: bool = True
) -> dict:
    """Load the parts of a checkpoint that `sharded_state_dict` asks for; all ranks call it.

    The files are checked first (all present, none truncated, readable metadata) and the requested
    tensors are compared with the checkpoint's shapes; any problem is a CheckpointError naming the
    folder and the file or key. strict=False skips requested keys the checkpoint lacks (they are
    absent from the result); shape mismatches are errors either way.
    """
    info = info_or_path if isinstance(info_or_path, CheckpointInfo) else read_checkpoint_info(Path(info_or_path))
    path = info.path
    request = _copy_structure(sharded_state_dict)
    metadata = verify_files(path)
    check_request(path, metadata, request, strict)
    handling = StrictHandling.ASSUME_OK_UNEXPECTED if strict else StrictHandling.LOG_UNEXPECTED
    with _process_group():
        try:
            return dist_checkpointing.load(request, str(path), strict=handling)
        except (Exception, CheckpointException) as err:
            raise CheckpointError(_load_failure(path, err)) from err


def _load_failure(path: Path, err: BaseException) -> str:
    """The message for a load that failed inside megatron / torch.distributed.checkpoint."""
    if isinstance(err, ValueError) and ("Cannot merge" in str(err) or "Duplicate non-dict" in str(err)):
        return (
            f"checkpoint {path} does not match this run: its plain values (common.pt) have another structure "
            f"({err}), e.g. another number of optimizer param groups, so the config differs from the one the "
            "checkpoint was saved with; use that config, or set checkpoint.resume=false, or point checkpoint.load "
            "at a matching iter_ folder"
        )
    return (
        f"loading checkpoint {path} failed ({_first_failure(err)}); its files are damaged or were written "
        f"by another program: {RESUME_FIX}"
    )
