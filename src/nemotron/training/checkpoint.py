"""Megatron-core distributed checkpoints in iter_XXXXXXX folders, committed atomically and found through `latest`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from megatron.core import dist_checkpointing, parallel_state
from megatron.core.dist_checkpointing.mapping import ShardedObject, ShardedTensor, ShardedTensorFactory
from megatron.core.dist_checkpointing.validation import StrictHandling
from megatron.core.tensor_parallel.random import get_cuda_rng_tracker
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, TensorStorageMetadata

from nemotron.atomic_write import write_text_atomic
from nemotron.config.errors import ConfigError
from nemotron.training.cpu_compat import enable_cpu_compat

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INFO_FILE = "nemotron_checkpoint.json"
LATEST_FILE = "latest"
PARTIAL_SUFFIX = ".partial"
ASIDE_SUFFIX = ".replaced"
RNG_KEY = "rng_state"
_ITER_NAME = re.compile(r"^iter_(\d{7,})$")
_RESERVED = ("format_version", "iteration")
_RESUME_FIX = (
    "delete that iter_ folder (and `latest` if it names it), or set checkpoint.resume=false, "
    "or point checkpoint.load at another iter_ folder"
)
_SHOWN = 3


class CheckpointError(ConfigError):
    """A checkpoint cannot be saved, found or loaded; the message names the path, what is wrong and the fix."""


@dataclass(frozen=True)
class CheckpointInfo:
    """A complete checkpoint folder, its training iteration and the caller's metadata saved with it."""

    path: Path
    iteration: int
    metadata: dict


# --- names and small file helpers -----------------------------------------------------------------


def checkpoint_name(iteration: int) -> str:
    """The folder name of a complete checkpoint: iter_0000100 for iteration 100."""
    return f"iter_{iteration:07d}"


def _iteration_of(name: str) -> int | None:
    """The iteration in an iter_ folder name, None for any other name (partial folders included)."""
    match = _ITER_NAME.match(name)
    return int(match.group(1)) if match else None


def _fsync_dir(path: Path) -> None:
    """Make renames and new entries in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, text: str) -> None:
    """Write `text` to `path` and fsync it (the caller renames or fsyncs the folder)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_files(folder: Path) -> None:
    """fsync every file under `folder` (megatron fsyncs its shard files, not common.pt / metadata.json)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(folder)


def _remove_tree(path: Path) -> None:
    """Delete a checkpoint folder, its info file first so a half-deleted folder never looks complete."""
    (path / INFO_FILE).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


# --- reading --------------------------------------------------------------------------------------


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
            f"{_RESUME_FIX}"
        )
    return _parse_info(path, info_path)


def _parse_info(path: Path, info_path: Path) -> CheckpointInfo:
    """Validate the info file of `path` and turn it into a CheckpointInfo."""
    try:
        data = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path}: {info_path} is unreadable ({err}); {_RESUME_FIX}") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        found = data.get("format_version") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"checkpoint {path}: {info_path} has format_version {found!r}, this code reads {FORMAT_VERSION}; "
            f"use the nemotron version that wrote it, or {_RESUME_FIX}"
        )
    iteration = data.get("iteration")
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        raise CheckpointError(f"checkpoint {path}: {info_path} has no valid 'iteration' ({iteration!r}); {_RESUME_FIX}")
    named = _iteration_of(path.name)
    if named is not None and named != iteration:
        raise CheckpointError(
            f"checkpoint {path}: the folder name says iteration {named} but {INFO_FILE} says {iteration}; "
            f"rename the folder to {checkpoint_name(iteration)} or {_RESUME_FIX}"
        )
    metadata = {key: value for key, value in data.items() if key not in _RESERVED}
    return CheckpointInfo(path=path, iteration=iteration, metadata=metadata)


def _complete_folders(root: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the iter_ folders under `root` that hold an info file, oldest first."""
    if not root.is_dir():
        return []
    found = [(_iteration_of(child.name), child) for child in root.iterdir()]
    return sorted((it, child) for it, child in found if it is not None and (child / INFO_FILE).is_file())


def latest_checkpoint(root: Path) -> CheckpointInfo | None:
    """The checkpoint `root/latest` names, else the newest complete one; None when there is none at all."""
    root = Path(root)
    if not root.is_dir():
        return None
    latest = root / LATEST_FILE
    if not latest.exists():
        found = _complete_folders(root)
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
    if _iteration_of(name) is None:
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
            f"delete {latest} to resume from the newest complete checkpoint, or {_RESUME_FIX}"
        )
    return _parse_info(path, path / INFO_FILE)


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


def _on_rank0(action: Callable[[], None], what: str) -> None:
    """Run `action` on global rank 0 and raise CheckpointError on every rank if it failed there."""
    error: str | None = None
    if dist.get_rank() == 0:
        try:
            action()
        except Exception as err:  # noqa: BLE001 - reported to every rank below
            error = f"{what} failed on rank 0: {type(err).__name__}: {err}"
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
    complete checkpoints (None keeps all), never the one `latest` names.
    """
    root = Path(root)
    info_text = _info_text(root, iteration, metadata, keep_last)
    name = checkpoint_name(iteration)
    partial = root / f"{name}{PARTIAL_SUFFIX}"
    final = root / name
    with _process_group():
        _on_rank0(lambda: _prepare(root, partial), f"preparing {partial}")
        dist.barrier()
        try:
            dist_checkpointing.save(_copy_structure(sharded_state_dict), str(partial))
        except Exception as err:
            raise CheckpointError(
                f"saving checkpoint {partial} failed ({type(err).__name__}: {err}); the previous checkpoint and "
                f"{root / LATEST_FILE} are untouched and the next save removes {partial.name}"
            ) from err
        dist.barrier()
        _on_rank0(lambda: _commit(root, partial, final, info_text, keep_last), f"committing {final}")
    return CheckpointInfo(path=final, iteration=iteration, metadata=dict(metadata))


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
    clashes = [key for key in _RESERVED if key in metadata]
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
    """Rank 0: mark the partial folder complete, move it into place, update `latest`, prune."""
    _fsync_files(partial)
    _write_durably(partial / INFO_FILE, info_text)
    _fsync_dir(partial)
    aside = final.with_name(final.name + ASIDE_SUFFIX)
    if final.exists():
        os.replace(final, aside)
    os.replace(partial, final)
    _fsync_dir(root)
    _point_latest(root, final.name)
    if aside.exists():
        shutil.rmtree(aside)
    if keep_last is not None:
        prune_checkpoints(root, keep_last)


def _point_latest(root: Path, name: str) -> None:
    """Replace root/latest atomically with `name`."""
    write_text_atomic(root / LATEST_FILE, name + "\n", durable=True)
    _fsync_dir(root)


def prune_checkpoints(root: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` complete checkpoints, never the one `latest` names; return the deleted."""
    latest = root / LATEST_FILE
    protected = latest.read_text(encoding="utf-8").strip() if latest.is_file() else None
    found = [path for _, path in _complete_folders(root)]
    doomed = [path for path in found[: max(len(found) - keep_last, 0)] if path.name != protected]
    for path in doomed:
        _remove_tree(path)
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
    _check_request(path, metadata, request, strict)
    handling = StrictHandling.ASSUME_OK_UNEXPECTED if strict else StrictHandling.LOG_UNEXPECTED
    with _process_group():
        try:
            return dist_checkpointing.load(request, str(path), strict=handling)
        except Exception as err:
            raise CheckpointError(_load_failure(path, err)) from err


def _load_failure(path: Path, err: Exception) -> str:
    """The message for a load that failed inside megatron / torch.distributed.checkpoint."""
    if isinstance(err, ValueError) and ("Cannot merge" in str(err) or "Duplicate non-dict" in str(err)):
        return (
            f"checkpoint {path} does not match this run: its plain values (common.pt) have another structure "
            f"({err}), e.g. another number of optimizer param groups, so the config differs from the one the "
            "checkpoint was saved with; use that config, or set checkpoint.resume=false, or point checkpoint.load "
            "at a matching iter_ folder"
        )
    return (
        f"loading checkpoint {path} failed ({type(err).__name__}: {err}); its files are damaged or were written "
        f"by another program: {_RESUME_FIX}"
    )


def verify_files(path: Path) -> Metadata:
    """Check the megatron files of a checkpoint folder and return its torch.distributed.checkpoint metadata."""
    config = path / "metadata.json"
    if not config.is_file():
        raise CheckpointError(
            f"checkpoint {path}: metadata.json is missing, so it is no megatron distributed checkpoint; {_RESUME_FIX}"
        )
    try:
        backend = json.loads(config.read_text(encoding="utf-8")).get("sharded_backend")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path}: metadata.json is unreadable ({err}); {_RESUME_FIX}") from None
    if backend != "torch_dist":
        raise CheckpointError(
            f"checkpoint {path}: metadata.json names backend {backend!r}, expected 'torch_dist'; {_RESUME_FIX}"
        )
    _check_common(path / "common.pt")
    try:
        metadata = FileSystemReader(str(path)).read_metadata()
    except Exception as err:  # noqa: BLE001 - any unpickling error means a damaged file
        raise CheckpointError(
            f"checkpoint {path}: {path / '.metadata'} is missing or corrupted ({type(err).__name__}: {err}); "
            f"{_RESUME_FIX}"
        ) from None
    _check_shard_files(path, metadata)
    return metadata


def _check_common(common: Path) -> None:
    """common.pt is a torch zip archive: check that it exists and that every member's CRC is right."""
    folder = common.parent
    if not common.is_file():
        raise CheckpointError(f"checkpoint {folder}: {common} is missing; {_RESUME_FIX}")
    try:
        with zipfile.ZipFile(common) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        raise CheckpointError(f"checkpoint {folder}: {common} is corrupted ({err}); {_RESUME_FIX}") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {folder}: {common} is corrupted (bad CRC in {bad}); {_RESUME_FIX}")


def _check_shard_files(path: Path, metadata: Metadata) -> None:
    """Every __*.distcp file that .metadata refers to exists and is long enough."""
    needed: dict[str, int] = {}
    for item in (metadata.storage_data or {}).values():
        end = item.offset + item.length
        needed[item.relative_path] = max(needed.get(item.relative_path, 0), end)
    for name, size in sorted(needed.items()):
        shard = path / name
        if not shard.is_file():
            raise CheckpointError(f"checkpoint {path}: shard file {shard} is missing; {_RESUME_FIX}")
        actual = shard.stat().st_size
        if actual < size:
            raise CheckpointError(
                f"checkpoint {path}: shard file {shard} is truncated ({actual} bytes, needs {size}); {_RESUME_FIX}"
            )


def _requested(request: dict) -> Iterator[ShardedTensor | ShardedObject]:
    """The ShardedTensors and ShardedObjects a load asks for (factories expanded)."""
    stack: list[Any] = [request]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, ShardedTensorFactory):
            stack.append(value.build())
        elif isinstance(value, (ShardedTensor, ShardedObject)):
            yield value


def _check_request(path: Path, metadata: Metadata, request: dict, strict: bool) -> None:
    """Raise CheckpointError when the requested keys or shapes do not match what the checkpoint holds."""
    stored = metadata.state_dict_metadata
    wrong_shape: list[str] = []
    absent: list[str] = []
    for shard in _requested(request):
        if isinstance(shard, ShardedObject):
            if not isinstance(stored.get(shard.unique_key), BytesStorageMetadata):
                absent.append(shard.unique_key)
            continue
        entry = stored.get(shard.key)
        if not isinstance(entry, TensorStorageMetadata):
            absent.append(shard.key)
        elif tuple(entry.size) != tuple(shard.global_shape) and not shard.allow_shape_mismatch:
            wrong_shape.append(f"{shard.key}: checkpoint {tuple(entry.size)}, this run {tuple(shard.global_shape)}")
    if wrong_shape or (absent and strict):
        wrong_shape = sorted(set(wrong_shape), key=_model_first)
        absent = sorted(set(absent), key=_model_first) if strict else []
        raise CheckpointError(_mismatch_message(path, wrong_shape, absent))


def _model_first(key: str) -> tuple[bool, str]:
    """Sort key showing model keys before the optimizer keys derived from them."""
    return key.startswith("optimizer."), key


def _mismatch_message(path: Path, wrong_shape: list[str], absent: list[str]) -> str:
    """Explain a key/shape mismatch between a checkpoint and the run asking for it: likely cause, examples, fix."""
    parts = []
    if wrong_shape:
        parts.append(f"{len(wrong_shape)} tensors have other shapes ({'; '.join(wrong_shape[:_SHOWN])})")
    if absent:
        parts.append(f"{len(absent)} requested keys are not in it ({', '.join(absent[:_SHOWN])})")
    model_keys = [key for key in wrong_shape + absent if not key.startswith(("optimizer.", RNG_KEY))]
    causes = []
    if model_keys:
        causes.append("the model config differs from the one the checkpoint was saved with")
    elif any(key.startswith("optimizer.") for key in absent):
        causes.append(
            "it holds no optimizer state for these parameters (saved without the optimizer or with other "
            "param groups; to start a fresh optimizer, load the model alone)"
        )
    if any(key.startswith(RNG_KEY) for key in absent):
        causes.append(
            "the RNG state was saved with another tensor/pipeline-parallel layout (leave rng_state out of the load)"
        )
    cause = "; ".join(causes) or "the model or optimizer config differs from the one the checkpoint was saved with"
    return (
        f"checkpoint {path} does not match this run: {cause}: {' and '.join(parts)}; build the model with the "
        "config it was saved with, or set checkpoint.resume=false, or point checkpoint.load at a matching "
        "iter_ folder"
    )


# --- RNG state ------------------------------------------------------------------------------------


def _parallel_position() -> tuple[int, int, int, int, int]:
    """(pp size, tp size, pp rank, tp rank, dp rank), all 1 / 0 when megatron's groups are not built."""
    if not parallel_state.model_parallel_is_initialized():
        return 1, 1, 0, 0, 0
    return (
        parallel_state.get_pipeline_model_parallel_world_size(),
        parallel_state.get_tensor_model_parallel_world_size(),
        parallel_state.get_pipeline_model_parallel_rank(),
        parallel_state.get_tensor_model_parallel_rank(),
        parallel_state.get_data_parallel_rank(with_context_parallel=True),
    )


def rng_state() -> dict:
    """This process's RNG states: Python, NumPy, torch CPU, torch CUDA and megatron's tracked states."""
    on_gpu = torch.cuda.is_available()
    return {
        "device": "cuda" if on_gpu else "cpu",
        "random": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if on_gpu else None,
        "tracker": {name: state.clone() for name, state in get_cuda_rng_tracker().get_states().items()},
    }


def rng_sharded_state(key: str = RNG_KEY) -> ShardedObject:
    """The RNG states as a ShardedObject over (pipeline, tensor) ranks; data-parallel replicas share one copy."""
    pp_size, tp_size, pp_rank, tp_rank, dp_rank = _parallel_position()
    return ShardedObject(key, rng_state(), (pp_size, tp_size), (pp_rank, tp_rank), replica_id=dp_rank)


def restore_rng(state: dict) -> None:
    """Restore the states of rng_state() / a loaded rng_sharded_state(); CUDA parts only on the device type saved."""
    if not isinstance(state, dict) or not {"random", "numpy", "torch", "tracker"} <= state.keys():
        raise CheckpointError(
            f"the checkpoint's {RNG_KEY} is not an RNG state saved by nemotron (got {type(state).__name__}); "
            "leave rng_state out of the load to start with fresh RNG states"
        )
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if state.get("device") != device:
        saved_on = state.get("device")
        logger.warning("RNG state saved on %s, running on %s: CUDA/tracker states not restored", saved_on, device)
        return
    if device == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    get_cuda_rng_tracker().set_states({name: value.clone() for name, value in state["tracker"].items()})
