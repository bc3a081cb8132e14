"""PreemptionWatcher with real signals, agreement across ranks (gloo, torchrun) and `scontrol requeue`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nemotron.training.distributed.preemption import (
    OTHER_RANK,
    TERMINATED,
    TIME_LIMIT,
    PreemptionWatcher,
    global_rank,
    is_global_rank_zero,
    requeue_slurm_job,
    should_stop_all,
    slurm_job_id,
)

WORKER = Path(__file__).resolve().parents[1] / "preemption_worker.py"
SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
def watcher():
    w = PreemptionWatcher().install()
    yield w
    w.uninstall()


def deliver(signum: int) -> None:
    """Send a real signal to this process; Python runs the handler at the next bytecode boundary."""
    os.kill(os.getpid(), signum)
    time.sleep(0.01)


def test_nothing_requested_at_first(watcher):
    assert (watcher.requested, watcher.reason, watcher.should_requeue) == (False, "", False)
    assert should_stop_all(watcher) is False


def test_usr1_means_save_requeue_exit(watcher):
    deliver(signal.SIGUSR1)
    assert watcher.requested and watcher.should_requeue
    assert watcher.reason == TIME_LIMIT and "SIGUSR1" in watcher.reason
    assert watcher.signal_name == "SIGUSR1" and watcher.received_at is not None
    assert should_stop_all(watcher) is True  # no process group: the local flag


def test_sigterm_means_save_and_exit_without_requeue(watcher):
    deliver(signal.SIGTERM)  # the process keeps running: the handler only sets the flag
    assert watcher.requested and not watcher.should_requeue
    assert watcher.reason == TERMINATED
    assert should_stop_all(watcher) is True


def test_sigterm_after_the_warning_keeps_the_requeue(watcher):
    deliver(signal.SIGUSR1)
    deliver(signal.SIGTERM)  # Slurm ends a job at its limit with SIGTERM
    assert watcher.should_requeue and watcher.reason == TIME_LIMIT
    assert watcher.signal_name == "SIGUSR1"


def test_warning_after_sigterm_asks_for_requeue(watcher):
    deliver(signal.SIGTERM)
    deliver(signal.SIGUSR1)
    assert watcher.should_requeue and watcher.reason == TIME_LIMIT


def test_repeated_signals_are_harmless(watcher):
    for _ in range(5):
        deliver(signal.SIGTERM)  # torchrun forwards SIGTERM to workers that already got Slurm's
    assert watcher.requested and watcher.reason == TERMINATED


def test_uninstall_restores_previous_handlers():
    seen = []
    previous = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        with PreemptionWatcher() as w:
            assert signal.getsignal(signal.SIGUSR1) == w._handle
            deliver(signal.SIGUSR1)
            assert w.requested and seen == []
        deliver(signal.SIGUSR1)
        assert seen == [signal.SIGUSR1]
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_install_overrides_an_inherited_ignore():
    """torchrun runs with SIGUSR1 ignored (trap "" USR1); the workers inherit that until they install."""
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        w = PreemptionWatcher().install()
        deliver(signal.SIGUSR1)
        assert w.requested
        w.uninstall()
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_rank_without_process_group(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert global_rank() == 0 and is_global_rank_zero()
    monkeypatch.setenv("RANK", "3")
    assert global_rank() == 3 and not is_global_rank_zero()


# -- several ranks ---------------------------------------------------------------------------------


def worker_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def results(out: Path, ranks: int) -> list[dict]:
    return [json.loads((out / f"result-{r}.json").read_text()) for r in range(ranks)]


def torchrun(out: Path, *args: str) -> subprocess.Popen:
    command = 'trap "" USR1; exec "$0" -m torch.distributed.run --standalone --nproc-per-node=2 "$@"'
    return subprocess.Popen(
        ["bash", "-c", command, sys.executable, str(WORKER), str(out), *args],
        env=worker_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_a_signal_on_one_rank_stops_all_ranks_at_the_same_step(tmp_path):
    proc = torchrun(tmp_path, "1")  # only rank 1 gets SIGUSR1
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    rank0, rank1 = results(tmp_path, 2)
    assert rank0["stopped"] and rank1["stopped"]
    assert rank0["step"] == rank1["step"] == 5
    assert rank1["reason"] == TIME_LIMIT and rank1["signal"] == "SIGUSR1"
    assert rank0["reason"].startswith(OTHER_RANK) and rank0["signal"] is None
    assert rank0["requeue"] and rank1["requeue"]  # rank 0, the one that requeues, agrees
    assert rank0["rank_zero"] and not rank1["rank_zero"]


def test_usr1_to_every_process_of_a_torchrun_job_stops_it_cleanly(tmp_path):
    """What Slurm does with `--signal=USR1@N` (no B:) or `scancel --signal=USR1`: every process of the
    job step gets SIGUSR1. torchrun ignores it and keeps running; the ranks stop together and exit 0."""
    proc = torchrun(tmp_path)
    deadline = time.monotonic() + 90
    while not all((tmp_path / f"ready-{r}").exists() for r in range(2)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0] if proc.poll() else "timeout"
        time.sleep(0.05)
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output  # torchrun survived the signal and its workers exited 0
    rank0, rank1 = results(tmp_path, 2)
    assert rank0["stopped"] and rank1["stopped"] and rank0["step"] == rank1["step"] < 600
    assert rank0["requeue"] and rank1["requeue"]


# -- scontrol requeue ------------------------------------------------------------------------------


class FakeRun:
    def __init__(self, code: int = 0, stderr: str = "", error: Exception | None = None):
        self.code, self.stderr, self.error = code, stderr, error
        self.calls: list[list[str]] = []

    def __call__(self, command, **kwargs):
        self.calls.append(command)
        if self.error:
            raise self.error
        return subprocess.CompletedProcess(command, self.code, "", self.stderr)


def slurm_env(monkeypatch, job_id: str | None = "4242", array: tuple[str, str] | None = None) -> None:
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    if job_id:
        monkeypatch.setenv("SLURM_JOB_ID", job_id)
    if array:
        monkeypatch.setenv("SLURM_ARRAY_JOB_ID", array[0])
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", array[1])


def test_requeue_outside_slurm_is_a_noop(monkeypatch, capsys):
    slurm_env(monkeypatch, None)
    run = FakeRun()
    assert requeue_slurm_job(run=run) is False
    assert run.calls == []
    assert "not running under Slurm" in capsys.readouterr().out


def test_requeue_runs_scontrol(monkeypatch, capsys):
    slurm_env(monkeypatch)
    run = FakeRun()
    assert requeue_slurm_job(run=run) is True
    assert run.calls == [["scontrol", "requeue", "4242"]]
    assert "requeued Slurm job 4242" in capsys.readouterr().out


def test_requeue_of_an_array_task(monkeypatch):
    slurm_env(monkeypatch, "4245", array=("4242", "3"))
    assert slurm_job_id() == "4242_3"
    run = FakeRun()
    requeue_slurm_job(run=run)
    assert run.calls == [["scontrol", "requeue", "4242_3"]]


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (
            FakeRun(1, "scontrol: error: Requeue of job 4242 failed: Job is no longer pending execution"),
            "scontrol requeue 4242: scontrol: error: Requeue of job 4242 failed: Job is no longer pending execution",
        ),
        (FakeRun(2), "exit code 2"),
        (FakeRun(error=FileNotFoundError("scontrol")), "scontrol not found on PATH"),
        (FakeRun(error=subprocess.TimeoutExpired("scontrol", 60)), "did not answer within 60 s"),
    ],
)
def test_requeue_errors_are_reported_clearly(monkeypatch, capsys, run, expected):
    slurm_env(monkeypatch)
    assert requeue_slurm_job(run=run) is False
    err = capsys.readouterr().err
    assert err.startswith("error: requeue of Slurm job 4242 failed: ") and expected in err
    assert "resubmit the same command to resume" in err
