"""A folder that refuses writes (read-only, full, over quota) is reported in one line, not a traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from nemotron.errors import run_reporting_errors
from nemotron.storage_errors import StorageError, storage_errno, storage_error, storage_errors


def _raiser(error: BaseException):
    def main() -> None:
        raise error

    return main


def _os_error(code: int, filename: str | None = None) -> OSError:
    return OSError(code, os.strerror(code), *([filename] if filename else []))


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.EROFS, "make it writable, or point NEMOTRON_HOME, NEMOTRON_ARTIFACTS_ROOT"),
        (errno.ENOSPC, "free space there, or point NEMOTRON_HOME, NEMOTRON_ARTIFACTS_ROOT"),
    ],
)
def test_an_unexplained_storage_failure_is_one_line_with_the_path_and_a_fix(code, fix, capsys):
    """The last resort, for a write no caller explained: the path, the reason, where to move things."""
    with pytest.raises(SystemExit) as exit_info:
        run_reporting_errors(_raiser(_os_error(code, "/data/runs/x/metrics.jsonl")), exit_code=1)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot write /data/runs/x/metrics.jsonl: ")
    assert os.strerror(code) in err and fix in err


def test_other_os_errors_keep_their_traceback():
    with pytest.raises(FileNotFoundError):
        run_reporting_errors(_raiser(_os_error(errno.ENOENT, "/missing")), exit_code=1)


def test_storage_errors_names_what_where_and_the_setting(tmp_path):
    folder = tmp_path / "jobs" / "job-1"
    with pytest.raises(StorageError) as caught, storage_errors("the job folder", folder, "NEMOTRON_HOME"):
        raise _os_error(errno.EROFS, str(tmp_path / "jobs"))  # mkdir of a folder above it failed
    assert str(caught.value) == (
        f"cannot write the job folder at {folder}: Read-only file system; "
        "make it writable, or set NEMOTRON_HOME to a writable folder"
    )
    with pytest.raises(StorageError, match="No space left on device; free space there, or set output_dir"):
        with storage_errors("data prep shards", folder, "output_dir"):
            raise _os_error(errno.ENOSPC)  # a failed write() names no file


def test_storage_errors_leaves_other_files_and_other_failures_alone(tmp_path):
    """A file elsewhere that cannot be read is not the folder's fault; nor is a missing file."""
    folder = tmp_path / "out"
    with pytest.raises(PermissionError), storage_errors("shards", folder, "output_dir"):
        raise _os_error(errno.EACCES, "/etc/shadow")
    with pytest.raises(FileNotFoundError), storage_errors("shards", folder, "output_dir"):
        raise _os_error(errno.ENOENT, str(folder / "x"))


class _LibraryError(Exception):
    """Like safetensors' SafetensorError: an OSError reported as text, without an errno."""


def test_a_hidden_errno_is_found_in_the_cause_chain_or_the_message():
    assert storage_errno(_LibraryError("I/O error: No space left on device (os error 28)")) == errno.ENOSPC
    try:
        try:
            raise _os_error(errno.EDQUOT)
        except OSError as inner:
            raise RuntimeError("worker failure") from inner
    except RuntimeError as outer:
        assert storage_errno(outer) == errno.EDQUOT
    assert storage_errno(RuntimeError("unexpected pos 704 vs 598")) is None


def test_a_failure_without_an_errno_counts_as_a_full_disk_only_when_the_disk_is_full(tmp_path, monkeypatch):
    failure = RuntimeError("unexpected pos 704 vs 598")  # torch's writer on a full disk
    assert storage_error(failure, "checkpoints", tmp_path / "ckpt", "checkpoint.dir") is None
    monkeypatch.setattr("nemotron.storage_errors.FULL_BELOW_BYTES", 1 << 62)  # every disk is "full" now
    explained = storage_error(failure, "checkpoints", tmp_path / "ckpt", "checkpoint.dir")
    assert explained is not None
    assert str(explained) == (
        f"cannot write checkpoints at {tmp_path / 'ckpt'}: No space left on device; "
        "free space there, or set checkpoint.dir to a folder on a disk with room"
    )


def test_storage_error_is_a_nemotron_error_reported_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_reporting_errors(_raiser(StorageError("cannot write x at /y: Read-only file system; fix")), exit_code=2)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: cannot write x at /y: Read-only file system; fix\n"


def test_paths_compare_after_making_them_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError), storage_errors("shards", Path("out"), "output_dir"):
        raise _os_error(errno.EROFS, "out/train")
