"""Checks of a checkpoint before loading it: every file present and intact, the requested keys and shapes held."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from megatron.core.dist_checkpointing.mapping import ShardedObject, ShardedTensor, ShardedTensorFactory
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, Metadata, TensorStorageMetadata

from nemotron.training.checkpoint.layout import RESUME_FIX, CheckpointError
from nemotron.training.checkpoint.rng import RNG_KEY

_SHOWN = 3  # examples named in a mismatch message


def verify_files(path: Path) -> Metadata:
    """Check the megatron files of a checkpoint folder and return its torch.distributed.checkpoint metadata."""
    config = path / "metadata.json"
    if not config.is_file():
        raise CheckpointError(
            f"checkpoint {path}: metadata.json is missing, so it is no megatron distributed checkpoint; {RESUME_FIX}"
        )
    try:
        backend = json.loads(config.read_text(encoding="utf-8")).get("sharded_backend")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path}: metadata.json is unreadable ({err}); {RESUME_FIX}") from None
    if backend != "torch_dist":
        raise CheckpointError(
            f"checkpoint {path}: metadata.json names backend {backend!r}, expected 'torch_dist'; {RESUME_FIX}"
        )
    _check_common(path / "common.pt")
    try:
        metadata = FileSystemReader(str(path)).read_metadata()
    except Exception as err:  # noqa: BLE001 - any unpickling error means a damaged file
        raise CheckpointError(
            f"checkpoint {path}: {path / '.metadata'} is missing or corrupted ({type(err).__name__}: {err}); "
            f"{RESUME_FIX}"
        ) from None
    _check_shard_files(path, metadata)
    return metadata


def _check_common(common: Path) -> None:
    """common.pt is a torch zip archive: check that it exists and that every member's CRC is right."""
    folder = common.parent
    if not common.is_file():
        raise CheckpointError(f"checkpoint {folder}: {common} is missing; {RESUME_FIX}")
    try:
        with zipfile.ZipFile(common) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as err:
        raise CheckpointError(f"checkpoint {folder}: {common} is corrupted ({err}); {RESUME_FIX}") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {folder}: {common} is corrupted (bad CRC in {bad}); {RESUME_FIX}")


def _check_shard_files(path: Path, metadata: Metadata) -> None:
    """Every __*.distcp file that .metadata refers to exists and is long enough."""
    needed: dict[str, int] = {}
    for item in (metadata.storage_data or {}).values():
        end = item.offset + item.length
        needed[item.relative_path] = max(needed.get(item.relative_path, 0), end)
    for name, size in sorted(needed.items()):
        shard = path / name
        if not shard.is_file():
            raise CheckpointError(f"checkpoint {path}: shard file {shard} is missing; {RESUME_FIX}")
        actual = shard.stat().st_size
        if actual < size:
            raise CheckpointError(
                f"checkpoint {path}: shard file {shard} is truncated ({actual} bytes, needs {size}); {RESUME_FIX}"
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


def check_request(path: Path, metadata: Metadata, request: dict, strict: bool) -> None:
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
