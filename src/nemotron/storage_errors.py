"""Filesystem failures (a read-only, full or over-quota folder, a write not permitted) as one-line errors.

They are not bugs: `storage_errors` turns them into a StorageError saying what could not be written,
where, and which setting moves it; `errors.run_reporting_errors` reports any that got past those
places in one line too (`unexplained_storage_failure`).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nemotron.errors import NemotronError
from nemotron.paths import nearest_existing

# The errnos of a folder that refuses writes: read-only, full, over quota, not permitted.
STORAGE_ERRNOS = (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM)
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)
# A disk with less room than this after a failed write is taken as full (some libraries hide the errno).
FULL_BELOW_BYTES = 1 << 20
# Where nemotron writes, for the last-resort message that cannot name the one setting at fault.
FOLDER_SETTINGS = "NEMOTRON_HOME, NEMOTRON_ARTIFACTS_ROOT, output_dir or checkpoint.dir"


class StorageError(NemotronError):
    """A folder nemotron writes to refused the write: read-only, full, over quota, or not permitted."""


def unexplained_storage_failure(err: OSError) -> str:
    """The one line for a folder that refused a write where no caller said which setting moves it."""
    where = f" {err.filename}" if err.filename else ""
    if err.errno in _NO_ROOM:
        return f"cannot write{where}: {err.strerror}; free space there, or point {FOLDER_SETTINGS} at a disk with room"
    return f"cannot write{where}: {err.strerror}; make it writable, or point {FOLDER_SETTINGS} at a writable folder"


def storage_errno(err: BaseException) -> int | None:
    """The errno of the filesystem failure behind `err`, or None when it is another failure.

    Looks along the cause chain for an OSError, then in the messages for the errno's text:
    safetensors and torch.distributed.checkpoint report an OSError as their own exception.
    """
    chain = list(_chain(err))
    for item in chain:
        if isinstance(item, OSError) and item.errno in STORAGE_ERRNOS:
            return item.errno
    text = " ".join(str(item) for item in chain)
    return next((code for code in STORAGE_ERRNOS if os.strerror(code) in text), None)


def disk_full(path: Path) -> bool:
    """Whether the filesystem holding `path` (or its nearest existing parent) has almost no room left."""
    try:
        return shutil.disk_usage(nearest_existing(path)).free < FULL_BELOW_BYTES
    except OSError:
        return False


def storage_error(err: BaseException, what: str, where: Path, setting: str) -> StorageError | None:
    """`cannot write <what> at <where>: <reason>; <fix naming setting>` for a filesystem failure, else None.

    A failure whose errno is hidden counts as a full disk when `where`'s disk is full now: call this
    before deleting what the failed write left. `setting` is what moves the folder (a config key,
    an environment variable, an argument).
    """
    code = storage_errno(err)
    if code is None and disk_full(where):
        code = errno.ENOSPC
    if code is None:
        return None
    if code in _NO_ROOM:
        fix = f"free space there, or set {setting} to a folder on a disk with room"
    else:
        fix = f"make it writable, or set {setting} to a writable folder"
    return StorageError(f"cannot write {what} at {where}: {os.strerror(code)}; {fix}")


@contextmanager
def storage_errors(what: str, where: Path, setting: str) -> Iterator[None]:
    """Turn an OSError of a folder that refuses writes into a StorageError naming `what`, `where`, `setting`.

    Only errors about `where`, a folder above it or a file in it (or naming no file, as a failed
    write() does) are explained: a file elsewhere that cannot be read is not this folder's fault.
    """
    try:
        yield
    except OSError as err:
        explained = storage_error(err, what, where, setting) if _about(err, where) else None
        if explained is None:
            raise
        raise explained from err


def _about(err: OSError, where: Path) -> bool:
    if err.errno not in STORAGE_ERRNOS:
        return False
    if not err.filename:
        return True
    path, folder = Path(os.fsdecode(err.filename)).absolute(), Path(where).absolute()
    return path.is_relative_to(folder) or folder.is_relative_to(path)


def _chain(err: BaseException) -> Iterator[BaseException]:
    """`err`, its causes and contexts, and the per-rank failures a CheckpointException carries."""
    seen: set[int] = set()
    pending = [err]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        pending += [e for e in (item.__cause__, item.__context__) if e is not None]
        failures = getattr(item, "failures", None)
        if isinstance(failures, dict):
            pending += [f[0] for f in failures.values() if isinstance(f, tuple) and isinstance(f[0], BaseException)]
