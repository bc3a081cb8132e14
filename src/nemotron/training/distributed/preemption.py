"""Stop a training run cleanly when Slurm warns of the time limit (SIGUSR1) or ends the job (SIGTERM).

Slurm sends SIGUSR1 `requeue_signal_seconds` before a self-requeueing stage's time limit
(`#SBATCH --signal=USR1@N`, see execution/slurm_executor.py) to every process of the job step, and
SIGTERM when the job is cancelled, preempted or reaches its limit. The handlers here only set flags;
the training loop checks them at step boundaries:

    watcher = PreemptionWatcher().install()
    for step in ...:
        train_step()
        if should_stop_all(watcher):      # every rank agrees on the same step
            save_checkpoint()             # all ranks
            break
    ...
    if watcher.should_requeue and is_global_rank_zero():   # after the save has completed everywhere
        requeue_slurm_job()               # the same Slurm job runs again (SLURM_RESTART_COUNT + 1)

SIGUSR1 means "time limit near: save, requeue, exit"; SIGTERM means "preempted or cancelled: save,
exit" (with PreemptMode=REQUEUE Slurm requeues the job itself; a cancelled job must not come back).
A signal that arrives during a checkpoint save does not stop the save's helper processes
(checkpoint/signals.py): the save completes, then the loop sees the flag.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

TIME_LIMIT = "time limit near (SIGUSR1): saving and requeueing"
TERMINATED = "terminated (SIGTERM: preempted, cancelled or out of time): saving"
OTHER_RANK = "stop requested on another rank"

_REASONS = {signal.SIGUSR1: TIME_LIMIT, signal.SIGTERM: TERMINATED}


class PreemptionWatcher:
    """Flags set by SIGUSR1 / SIGTERM handlers, read by the training loop between steps.

    `requested`: a stop was asked for (locally, or agreed across ranks by `should_stop_all`);
    `reason`: why, in words ('' while nothing was requested); `should_requeue`: the stop came from
    the time-limit warning, so the job should be requeued after saving. A SIGTERM after a SIGUSR1
    keeps `should_requeue` (Slurm ends a job at its limit with SIGTERM).
    """

    def __init__(self) -> None:
        self._requested = False
        self._requeue = False
        self._reason = ""
        self.signal_name: str | None = None  # the first signal received, e.g. "SIGUSR1"
        self.received_at: float | None = None  # time.time() of that signal
        self._previous: dict[int, Any] = {}

    # -- handlers ------------------------------------------------------------------------------

    def install(self) -> PreemptionWatcher:
        """Handle SIGUSR1 and SIGTERM in this process (main thread only); returns self."""
        for signum in _REASONS:
            previous = signal.signal(signum, self._handle)
            self._previous.setdefault(signum, previous)
        return self

    def uninstall(self) -> None:
        """Put back the handlers that were there before `install()`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def __enter__(self) -> PreemptionWatcher:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    def _handle(self, signum: int, frame: object) -> None:
        # Only flags: the handler may interrupt anything (a print, a collective); the loop acts on them.
        self.request(_REASONS[signal.Signals(signum)], requeue=signum == signal.SIGUSR1)
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
            self.received_at = time.time()

    # -- state ---------------------------------------------------------------------------------

    def request(self, reason: str, requeue: bool = False) -> None:
        """Ask for a stop (what the handlers do; also used when the ranks agree on one)."""
        if not self._requested or (requeue and not self._requeue):
            self._reason = reason  # the requeue reason wins: it decides what happens after the save
        self._requested = True
        self._requeue = self._requeue or requeue

    @property
    def requested(self) -> bool:
        return self._requested

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def should_requeue(self) -> bool:
        return self._requeue


# -- across ranks ------------------------------------------------------------------------------


def _initialised_group() -> Any | None:
    """torch.distributed when a process group with more than one rank is up, else None."""
    dist = sys.modules.get("torch.distributed")  # no process group without it: never import torch here
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() <= 1:
        return None
    return dist


def _flag_device(dist: Any) -> Any:
    """Where the flag tensor must live for the default group's backend: the GPU for NCCL, else the CPU."""
    import torch

    backend = str(dist.get_backend()).lower()
    if "nccl" in backend and "cpu:" not in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def should_stop_all(watcher: PreemptionWatcher) -> bool:
    """True on every rank as soon as any rank was asked to stop; call it at the same step on all ranks.

    With torch.distributed initialised (more than one rank) the flags are all-reduced (MAX), so every
    rank stops after the same step and agrees on `should_requeue`; a rank that got no signal itself
    takes the agreed state (`watcher.reason` is then OTHER_RANK). Without a process group it is
    `watcher.requested`.
    """
    dist = _initialised_group()
    if dist is None:
        return watcher.requested
    import torch

    flags = torch.tensor(
        [int(watcher.requested), int(watcher.should_requeue)], dtype=torch.int32, device=_flag_device(dist)
    )
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    stop, requeue = (bool(v) for v in flags.tolist())
    if stop and (not watcher.requested or (requeue and not watcher.should_requeue)):
        watcher.request(f"{OTHER_RANK} ({TIME_LIMIT if requeue else TERMINATED})", requeue=requeue)
    return stop


def global_rank() -> int:
    """This process's global rank: torch.distributed's when initialised, else $RANK (torchrun), else 0."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_global_rank_zero() -> bool:
    """Only global rank 0 requeues the job."""
    return global_rank() == 0


# -- Slurm -------------------------------------------------------------------------------------


def slurm_job_id(environ: dict[str, str] | None = None) -> str | None:
    """The id `scontrol requeue` takes for this job: `<array id>_<task>` for an array task."""
    env = os.environ if environ is None else environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def requeue_slurm_job(
    job_id: str | None = None,
    *,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> bool:
    """`scontrol requeue <job>`: the job goes back to the queue and runs again with the same id.

    Call it once (global rank 0), after the checkpoint is saved everywhere: Slurm ends the running
    job right away. Outside Slurm it does nothing but say so. Returns True when Slurm accepted it;
    a failure is reported on stderr (the caller then exits; the job is not resumed automatically).
    """
    job_id = job_id or slurm_job_id()
    if not job_id:
        print("requeue: not running under Slurm (no SLURM_JOB_ID); nothing to requeue", flush=True)
        return False
    command = ["scontrol", "requeue", job_id]
    try:
        done = run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return _requeue_failed(job_id, "scontrol not found on PATH")
    except subprocess.TimeoutExpired:
        return _requeue_failed(job_id, "`scontrol requeue` did not answer within 60 s")
    if done.returncode != 0:
        detail = (done.stderr or done.stdout or "").strip() or f"exit code {done.returncode}"
        return _requeue_failed(job_id, f"{' '.join(command)}: {detail}")
    print(f"requeued Slurm job {job_id}: it restarts and resumes from the saved checkpoint", flush=True)
    return True


def _requeue_failed(job_id: str, why: str) -> bool:
    print(
        f"error: requeue of Slurm job {job_id} failed: {why}; the checkpoint is saved: "
        "resubmit the same command to resume",
        file=sys.stderr,
        flush=True,
    )
    return False
