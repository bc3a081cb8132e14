"""Which process a pid names (alive, start time, boot id: from /proc), and whether a Slurm job is active.

A pid is reused once its process is gone; a pid names the process recorded earlier only while its
start time (field 22 of /proc/<pid>/stat, clock ticks after boot) and the boot id still match.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether `pid` names a running process (a zombie, exited but not yet reaped, counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; the command name before it may hold spaces and ')'."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (clock ticks after boot); None without /proc or the process."""
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def boot_id() -> str | None:
    """/proc/sys/kernel/random/boot_id: start times count from this boot; None without /proc."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


_SLURM_ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "CONFIGURING"}
_SLURM_ACTIVE |= {"RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD", "SPECIAL_EXIT"}


def slurm_job_active(job_id: str) -> bool | None:
    """Whether `squeue` lists the Slurm job (any task of an array) as pending or running; None when
    squeue cannot tell (not installed, no answer)."""
    import shutil
    import subprocess

    if shutil.which("squeue") is None:
        return None
    try:
        done = subprocess.run(
            ["squeue", "--noheader", "--jobs", job_id, "--format", "%T"],
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return False if "invalid job id" in done.stderr.lower() else None
    return any(state.strip() in _SLURM_ACTIVE for state in done.stdout.splitlines())
