"""A lease on a folder: one process at a time writes it (a training run's folder, a data prep output).

The lease is the file `<folder>/.lease.json`, created atomically (a complete temporary file hard-linked
to the name, which fails when the name exists). It records who holds it: host, pid, the process's
start time and boot id (so a reused pid does not count), the Slurm job id and since when. The holder
renews it by touching the file (its mtime is the heartbeat) and deletes it on release.

A lease is stale, and is taken over, when its holder is gone: on the same host when the pid is dead
or names another process (other start time or boot); a Slurm job when `squeue` no longer lists it
as pending or running (where squeue answers); else when the heartbeat is older than `stale_after_s`.
A Slurm job that is requeued (same $SLURM_JOB_ID, new process) takes over its own lease.

The tasks of one Slurm job array share one lease (its group is $SLURM_ARRAY_JOB_ID): the first
task takes it, the others join it and renew it, and none deletes it, since others may still run; it
turns stale when squeue no longer lists the array (so the finalize job that follows takes it over).
Anyone else is refused, at once or after waiting up to `wait_s`, with an error naming the folder, the
holder and the fix.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from nemotron.errors import NemotronError
from nemotron.processes import boot_id, pid_alive, slurm_job_active, start_time
from nemotron.storage_errors import STORAGE_ERRNOS

LEASE_FILE = ".lease.json"
HEARTBEAT_S = 30.0  # how often the holder touches the lease file
STALE_AFTER_S = 600.0  # a lease of another host with no heartbeat for this long is stale
_GUARD_STALE_S = 60.0  # a takeover guard older than this was left by a taker that died mid-takeover
_ATTEMPTS = 100


class LeaseError(NemotronError):
    """The folder's lease is held by a live process (or cannot be read or written)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as written in the lease file."""

    host: str
    pid: int
    start_time: str | None
    boot_id: str | None
    slurm_job_id: str | None
    since: str  # ISO 8601, UTC
    token: str  # tells this taking of the lease apart from every other
    group: str | None = None  # the Slurm job array whose tasks share the lease

    @property
    def slurm_job(self) -> str | None:
        """The Slurm job to ask about (and to cancel): the array for a shared lease."""
        return self.group or self.slurm_job_id

    def describe(self) -> str:
        job = f", Slurm job array {self.group}" if self.group else ""
        job = job or (f", Slurm job {self.slurm_job_id}" if self.slurm_job_id else "")
        return f"host {self.host}, pid {self.pid}{job}, since {self.since}"


def _me(environ: Mapping[str, str]) -> Holder:
    pid = os.getpid()
    return Holder(
        host=socket.gethostname(),
        pid=pid,
        start_time=start_time(pid),
        boot_id=boot_id(),
        slurm_job_id=environ.get("SLURM_JOB_ID") or None,
        since=datetime.now(UTC).isoformat(timespec="seconds"),
        token=uuid.uuid4().hex,
        group=environ.get("SLURM_ARRAY_JOB_ID") or None,
    )


def _parse(text: str) -> Holder | None:
    try:
        data = json.loads(text)
        return Holder(
            host=str(data["host"]),
            pid=int(data["pid"]),
            start_time=None if data.get("start_time") is None else str(data["start_time"]),
            boot_id=None if data.get("boot_id") is None else str(data["boot_id"]),
            slurm_job_id=None if data.get("slurm_job_id") is None else str(data["slurm_job_id"]),
            since=str(data.get("since", "?")),
            token=str(data.get("token", "")),
            group=None if data.get("group") is None else str(data["group"]),
        )
    except (ValueError, TypeError, KeyError):
        return None


def read_holder(folder: Path) -> Holder | None:
    """The holder of `folder`'s lease; None when there is no lease (or it cannot be read)."""
    try:
        return _parse((folder / LEASE_FILE).read_text(encoding="utf-8"))
    except OSError:
        return None


def _gone(holder: Holder, me: Holder, age_s: float, stale_after_s: float) -> bool:
    """Whether the holder is surely gone (the lease is stale)."""
    same_boot = holder.host == me.host and (holder.boot_id is None or holder.boot_id == me.boot_id)
    if holder.slurm_job and (holder.group or not same_boot):  # one pid does not tell for an array
        active = slurm_job_active(holder.slurm_job)
        if active is not None:
            return not active
        return age_s > stale_after_s
    if same_boot:
        if not pid_alive(holder.pid):
            return True
        now = start_time(holder.pid)
        return holder.start_time is not None and now is not None and now != holder.start_time
    if holder.host == me.host and holder.boot_id != me.boot_id and me.boot_id is not None:
        return True  # this machine restarted since: every process of the lease is gone
    return age_s > stale_after_s


def _refusal(folder: Path, what: str, holder: Holder | None, age_s: float) -> str:
    path = folder / LEASE_FILE
    if holder is None:
        return (
            f"{what} {folder} is locked by {path}, which cannot be read; if no other process uses the folder, "
            f"delete {path} and retry"
        )
    stop = f"`scancel {holder.slurm_job}`" if holder.slurm_job else f"`kill {holder.pid}` on {holder.host}"
    return (
        f"{what} {folder} is in use by another process ({holder.describe()}; lease renewed {age_s:.0f}s ago); "
        f"wait for it to end, or stop it ({stop}); if you are sure it is dead, delete {path} and retry"
    )


class Lease:
    """A lease this process holds; renewed by a daemon thread until `release` (or the end of a `with`).

    A task of a Slurm job array renews the array's shared lease and leaves it in place on release.
    """

    def __init__(self, folder: Path, holder: Holder, heartbeat_s: float) -> None:
        self.folder = folder
        self.path = folder / LEASE_FILE
        self.holder = holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, args=(heartbeat_s,), name="nemotron-lease", daemon=True)
        self._thread.start()

    def _ours(self) -> bool:
        held = read_holder(self.folder)
        if held is None:
            return False
        return held.token == self.holder.token or (self.holder.group is not None and held.group == self.holder.group)

    def _renew(self, heartbeat_s: float) -> None:
        while not self._stop.wait(heartbeat_s):
            try:
                if self._ours():
                    os.utime(self.path)
            except OSError:
                pass  # a missed heartbeat only makes the lease look older to other hosts

    def release(self) -> None:
        """Stop renewing and delete the lease file, if it is still ours; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            if self.holder.group is None and self._ours():
                self.path.unlink(missing_ok=True)
        except OSError:
            pass

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _link(source: Path, path: Path) -> bool:
    try:
        os.link(source, path)
    except FileExistsError:
        return False
    return True


def _take_over(path: Path, seen: bytes, source: Path) -> bool:
    """Replace the stale lease `seen` with ours, under a guard so that two takers never both succeed."""
    guard = path.with_name(path.name + ".takeover")
    try:
        os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        try:
            if time.time() - guard.stat().st_mtime > _GUARD_STALE_S:
                guard.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    try:
        try:
            if path.read_bytes() != seen:
                return False  # someone else took it meanwhile: look again
        except FileNotFoundError:
            pass
        path.unlink(missing_ok=True)
        return _link(source, path)
    finally:
        guard.unlink(missing_ok=True)


def take_lease(
    folder: Path,
    *,
    what: str,
    error: type[Exception] = LeaseError,
    heartbeat_s: float = HEARTBEAT_S,
    stale_after_s: float = STALE_AFTER_S,
    wait_s: float = 0.0,
    environ: Mapping[str, str] | None = None,
) -> Lease:
    """Take the lease on `folder` (created if missing) or raise `error` naming its live holder and the fix.

    `what` names the folder in messages ("training run 'x'"). A stale lease, or one of the same Slurm
    job (a requeue), is taken over; one of the same job array is joined. A live holder is waited for
    up to `wait_s` seconds before the refusal.
    """
    me = _me(os.environ if environ is None else environ)
    path = folder / LEASE_FILE
    source = folder / f".{LEASE_FILE}.{me.token}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        source.write_text(json.dumps(asdict(me), indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        _unlink_quietly(source)  # half written on a full disk
        _raise_unwritable(err, error, what, folder)
    deadline = time.monotonic() + wait_s
    try:
        attempts = 0
        while attempts < _ATTEMPTS:
            attempts += 1
            if _link(source, path):
                return Lease(folder, me, heartbeat_s)
            try:
                seen = path.read_bytes()
                age_s = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            holder = _parse(seen.decode("utf-8", errors="replace"))
            if holder is None:
                raise error(_refusal(folder, what, None, age_s))
            if me.group is not None and holder.group == me.group:
                return Lease(folder, me, heartbeat_s)  # another task of this job array holds it for all
            requeued = me.slurm_job_id is not None and holder.slurm_job_id == me.slurm_job_id
            if not requeued and not _gone(holder, me, age_s, stale_after_s):
                if time.monotonic() >= deadline:
                    raise error(_refusal(folder, what, holder, age_s))
                attempts = 0  # waiting for a live holder is not a failed attempt
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))
                continue
            if _take_over(path, seen, source):
                return Lease(folder, me, heartbeat_s)
            time.sleep(0.05)
        raise error(f"cannot take the lease on {what} {folder}: {path} keeps changing; retry")
    except OSError as err:
        _raise_unwritable(err, error, what, folder)
    finally:
        _unlink_quietly(source)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _raise_unwritable(err: OSError, error: type[Exception], what: str, folder: Path) -> NoReturn:
    """A folder that refuses writes (read-only, full) is re-raised as it is, for the caller's storage_errors
    to name the setting that moves it; any other failure becomes `error`."""
    if err.errno in STORAGE_ERRNOS:
        raise err
    raise error(f"cannot take the lease on {what} {folder}: {err.strerror or err}; check the folder") from None
