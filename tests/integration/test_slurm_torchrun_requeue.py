"""A distributed stage (torchrun, 2 ranks) through nemotron's launcher on the local Slurm cluster: Slurm's
time-limit warning (SIGUSR1, as `scancel --signal=USR1` sends it) makes it save, requeue itself and
resume; SIGTERM (scancel) makes it save and stop. The stage is tests/integration/requeue_stage.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TIMEOUT = 120
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "LOST"}


def nemotron_cli() -> list[str]:
    script = Path(sys.executable).with_name("nemotron")
    return [str(script)] if script.exists() else [sys.executable, "-m", "nemotron"]


def sh(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)} failed: {done.stderr}"
    return done.stdout


def stage_env() -> dict[str, str]:
    """The test's environment (NEMOTRON_HOME, env file...) with the test stage importable."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def submit(profile: str, *overrides: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "requeue_stage", "submit", profile, *overrides],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=stage_env(),
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(r"submitted (\S+) as \w+ job (\d+)", done.stdout)
    assert match, done.stdout
    return match.group(1), match.group(2)


def add_profiles(add_env_profile) -> None:
    # requeue-slurm: no GPUs, so torchrun starts 2 processes on the node
    add_env_profile("requeue-slurm", ntasks_per_node=2, env_vars={"PYTHONPATH": str(HERE)})
    add_env_profile(
        "torchrun-local",
        extends=None,
        executor="local",
        python=sys.executable,
        nproc_per_node=2,
        env_vars={"PYTHONPATH": str(HERE)},
    )


def wait_for_steps(job_dir: Path, count: int, timeout: float = 180) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = (job_dir / "steps.txt").read_text().splitlines() if (job_dir / "steps.txt").exists() else []
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, (
            f"the job made no progress in {timeout} s; files: {list(job_dir.rglob('*'))}"
        )
        time.sleep(0.2)


def status(run_cli, name: str) -> str:
    done = run_cli("jobs", "status", name, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split("\t")[-1]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def cleanup():
    """Cancel, at teardown, the Slurm jobs a test started and that are still queued."""
    started: list[str] = []
    yield started
    if started:
        subprocess.run(["scancel", *started], capture_output=True, timeout=60)


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.usefixtures("slurm_cluster")
def test_time_limit_warning_saves_requeues_and_resumes(run_cli, add_env_profile, nemotron_home, cleanup):
    add_profiles(add_env_profile)
    name, job_id = submit("requeue-slurm", "steps=40")
    cleanup.append(job_id)
    job_dir = nemotron_home / "jobs" / name
    follower = subprocess.Popen(
        [*nemotron_cli(), "jobs", "logs", name, "-f"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        wait_for_steps(job_dir, 5)
        seen = [status(run_cli, name)]
        assert seen == ["RUNNING"]
        # What Slurm sends at `--signal=USR1@N` (no B:): SIGUSR1 to the processes of the job steps
        sh("scancel", "--signal=USR1", job_id)
        deadline = time.monotonic() + TIMEOUT
        while seen[-1] not in TERMINAL:
            assert time.monotonic() < deadline, f"job states so far: {seen}"
            state = status(run_cli, name)
            if seen[-1] != state:
                seen.append(state)
            time.sleep(0.5)
        follow_out, follow_err = follower.communicate(timeout=TIMEOUT)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert seen[-1] == "COMPLETED", seen
    assert seen[:2] == ["RUNNING", "PENDING"], f"the requeue was never seen: {seen}"
    assert not set(seen) & (TERMINAL - {"COMPLETED"}), seen  # never reported failed on the way

    starts = jsonl(job_dir / "starts.jsonl")
    assert [s["restart"] for s in starts] == [0, 1] and all(s["world"] == 2 for s in starts), starts
    resumed_at = starts[1]["start"]
    assert resumed_at >= 5  # from the saved step, not from 0
    steps = [tuple(map(int, line.split())) for line in (job_dir / "steps.txt").read_text().splitlines()]
    first = [s for r, s in steps if r == 0]
    second = [s for r, s in steps if r == 1]
    assert first == list(range(1, resumed_at + 1))  # the first run saved the last step it made
    assert second == list(range(resumed_at + 1, 41))
    progress = json.loads((job_dir / "progress.json").read_text())
    assert progress == {"step": 40, "restart": 1, "reason": "", "requeue": False, "done": True}

    records = sh("sacct", "-j", job_id, "-X", "-n", "-P", "-D", "--format=State").split()
    assert records == ["REQUEUED", "COMPLETED"], records
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=60)
    if shown.returncode == 0:  # until Slurm forgets the finished job (MinJobAge)
        assert "Restarts=1" in shown.stdout

    logs_dir = job_dir / "logs"
    assert sorted(p.name for p in logs_dir.glob("log-*.out")) == [
        f"log-{name}_{job_id}_0.out",
        f"log-{name}_{job_id}_1.out",
    ]
    first_log = (logs_dir / f"log-{name}_{job_id}_0.out").read_text()
    assert "stopped after step" in first_log and "SIGUSR1" in first_log
    logs = run_cli("jobs", "logs", name, timeout=TIMEOUT)
    assert logs.returncode == 0, logs.stderr
    order = [
        logs.stdout.index("run 0 starts at step 0"),
        logs.stdout.index("stopped after step"),
        logs.stdout.index(f"run 1 starts at step {resumed_at}"),
        logs.stdout.index("finished 40 steps in run 1"),
    ]
    assert order == sorted(order), logs.stdout
    assert follower.returncode == 0, follow_out + follow_err  # `logs -f` followed both runs to COMPLETED
    assert "run 0 starts at step 0" in follow_out and "finished 40 steps in run 1" in follow_out

    done = run_cli("jobs", "status", name, "--wait", timeout=TIMEOUT)
    assert done.returncode == 0 and done.stdout.strip().split("\t") == [name, job_id, "COMPLETED"]


@pytest.mark.slurm
@pytest.mark.integration
@pytest.mark.usefixtures("slurm_cluster")
def test_sigterm_saves_and_stops_without_requeue(run_cli, add_env_profile, nemotron_home, cleanup):
    add_profiles(add_env_profile)
    name, job_id = submit("requeue-slurm", "steps=1000")
    cleanup.append(job_id)
    job_dir = nemotron_home / "jobs" / name
    wait_for_steps(job_dir, 3)
    cancelled = run_cli("jobs", "cancel", name, timeout=TIMEOUT)  # scancel: SIGTERM to the job
    assert cancelled.returncode == 0, cancelled.stderr
    done = run_cli("jobs", "status", name, "--wait", timeout=TIMEOUT)
    assert done.stdout.strip().split("\t")[-1] == "CANCELLED" and done.returncode != 0
    deadline = time.monotonic() + 30
    while not (job_dir / "progress.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    progress = json.loads((job_dir / "progress.json").read_text())
    assert progress["requeue"] is False and progress["done"] is False and "SIGTERM" in progress["reason"]
    assert progress["step"] >= 3
    assert [s["restart"] for s in jsonl(job_dir / "starts.jsonl")] == [0]
    time.sleep(2)
    assert sh("sacct", "-j", job_id, "-X", "-n", "-P", "-D", "--format=State").split()[0].startswith("CANCELLED")


@pytest.mark.integration
def test_local_profile_runs_the_stage_under_torchrun(run_cli, add_env_profile, nemotron_home):
    """nproc_per_node = 2 on a local profile: torchrun --standalone, two ranks, to completion."""
    add_profiles(add_env_profile)
    name, _ = submit("torchrun-local", "steps=5", "step_seconds=0.05")
    done = run_cli("jobs", "status", name, "--wait", timeout=TIMEOUT)
    job_dir = nemotron_home / "jobs" / name
    log = (job_dir / "job.log").read_text()
    assert done.returncode == 0, log
    assert jsonl(job_dir / "starts.jsonl") == [{"restart": 0, "start": 0, "world": 2}]
    assert "rank 0: finished 5 steps" in log and "rank 1: finished 5 steps" in log
