"""`nemotron nano3 pipe` end to end on this machine: four real stages (data prep, pretrain, SFT data prep, SFT)
of a small pipe run in order; an identical re-run runs nothing; a failing stage stops the pipe with its log;
a change re-runs exactly the changed stage and what reads it; SIGTERM cancels the running stage."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nemotron.artifacts import FileRegistry

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_inherited_secrets")]

SFT_STAGES = """
  prep_sft: {stage: data-prep-sft, config: tiny, overrides: [pack_size=64, overflow=drop, num_shards=2]}
  sft:
    stage: sft
    config: tiny
    overrides: [train.train_iters=4, train.eval_interval=4, checkpoint.save_interval=4, lr.warmup_iters=1,
      guard.warmup_steps=1, answers.count=2, answers.max_new_tokens=4]
"""


def jobs(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "jobs").iterdir()) if (home / "jobs").is_dir() else []


def plan_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """STAGE -> (ACTION, WHY) from the plan table."""
    rows = {}
    for line in stdout.splitlines():
        match = re.match(r"^(\w+)\s+([0-9a-f]{16})\s+(run|skip|off)\s+\S+\s+(.*)$", line)
        if match:
            rows[match.group(1)] = (match.group(3), match.group(4))
    return rows


def test_a_pipe_runs_in_order_skips_what_is_done_and_reruns_what_failed_or_changed(
    run_cli, nemotron_home, tmp_path, small_pipe_head
):
    pipe = tmp_path / "small.yaml"
    pipe.write_text(small_pipe_head + SFT_STAGES)
    registry = FileRegistry(nemotron_home / "artifacts")

    first = run_cli("nano3", "pipe", "-c", str(pipe), timeout=900)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-3000:]
    planned = plan_rows(first.stdout)
    assert [action for action, _ in planned.values()] == ["run"] * 4
    for name, artifact in (("prep_pretrain", "nano3-pretrain-data-tiny"), ("sft", "nano3-sft-tiny")):
        assert re.search(rf"^{name}\s+COMPLETED\s+[\d.]+ min\s+\S+\s+.*{artifact}:v1$", first.stdout, re.MULTILINE)
    sft = registry.resolve("nano3-sft-tiny:latest")
    fingerprint = re.search(r"^sft\s+([0-9a-f]{16})", first.stdout, re.MULTILINE).group(1)
    assert sft.lineage.fingerprint == fingerprint and registry.resolve(f"nano3-sft-tiny:fp-{fingerprint}") == sft
    assert "nano3-pretrain-tiny:v1" in sft.lineage.inputs  # SFT read the pretrain stage's output
    [record_file] = (nemotron_home / "pipes").glob("*/pipe.json")
    record = json.loads(record_file.read_text())
    assert [(s["name"], s["state"], s["artifact"]) for s in record["stages"]][-1] == (
        "sft",
        "COMPLETED",
        "nano3-sft-tiny:v1",
    )
    lineage = run_cli("artifacts", "lineage", "nano3-sft-tiny:v1")
    assert "nano3-pretrain-data-tiny:v1" in lineage.stdout and "corpus-tiny" in lineage.stdout
    runs = run_cli("runs", "list").stdout  # a run folder per fingerprint, found again by its model artifact
    assert f"nano3-sft-tiny-{fingerprint[:8]}" in runs and "train/loss" in runs, runs
    curves = tmp_path / "curves.png"
    plotted = run_cli("runs", "plot", "nano3-pretrain-tiny", "nano3-sft-tiny", "-o", str(curves))
    assert plotted.returncode == 0 and curves.read_bytes()[:4] == b"\x89PNG", plotted.stdout + plotted.stderr

    listing = run_cli("jobs", "list").stdout  # the pipe is one entry, its stages under it
    assert re.search(rf"^{record['name']}\s+-\s+pipe: 4 of 4 stages\s+-\s+\S+\s+COMPLETED$", listing, re.MULTILINE)
    assert re.search(r"^  sft: nano3-sft-\S+\s+\d+\s+nano3/sft\s+-\s+COMPLETED$", listing, re.MULTILINE), listing

    before = jobs(nemotron_home)
    again = run_cli("nano3", "pipe", "-c", str(pipe))
    assert again.returncode == 0 and "every stage is done: nothing to run" in again.stdout, again.stdout[-2000:]
    assert all(action == "skip" for action, _ in plan_rows(again.stdout).values())
    assert jobs(nemotron_home) == before

    failing = run_cli("nano3", "pipe", "-c", str(pipe), "sft.lr.lr=1e9", timeout=600)
    assert failing.returncode == 1, failing.stdout[-3000:]
    new_jobs = sorted(set(jobs(nemotron_home)) - set(before))
    assert len(new_jobs) == 1 and new_jobs[0].startswith("nano3-sft-")  # only the changed stage ran
    log = nemotron_home / "jobs" / new_jobs[0] / "job.log"
    assert f"stage sft ended FAILED; log: {log}" in failing.stderr
    assert re.search(r"^sft\s+FAILED\s", failing.stdout, re.MULTILINE)
    retry = run_cli("nano3", "pipe", "-c", str(pipe), "sft.lr.lr=1e9", "--dry-run")
    action, why = plan_rows(retry.stdout)["sft"]
    assert action == "run" and why.startswith("failed in nano3-pipe-") and str(log) in why

    changed = run_cli("nano3", "pipe", "-c", str(pipe), "pretrain.train.train_iters=8", "--dry-run")
    actions = {name: action for name, (action, _) in plan_rows(changed.stdout).items()}
    assert actions == {"prep_pretrain": "skip", "pretrain": "run", "prep_sft": "skip", "sft": "run"}
    assert "nemotron nano3 sft -c tiny" in changed.stdout and "run.data=nano3-sft-data-tiny:v1" in changed.stdout
    assert jobs(nemotron_home) == sorted([*before, *new_jobs])  # a dry run starts nothing


def test_sigterm_to_a_local_pipe_cancels_the_running_stage_and_says_so(
    nemotron_home, tmp_path, small_pipe_head, cli_command
):
    """SIGTERM (a supervisor, `kill`, a closed session) does what Ctrl-C does: the running stage's job is
    cancelled, not left running on its own, the pipe names it and exits 143, and its record says CANCELLED."""
    pipe = tmp_path / "small.yaml"
    pipe.write_text(small_pipe_head)
    process = subprocess.Popen(  # pretrain long enough to still run when the signal comes
        [*cli_command, "nano3", "pipe", "-c", str(pipe), "pretrain.train.train_iters=100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    try:
        job_log = None
        deadline = time.monotonic() + 300
        while job_log is None and time.monotonic() < deadline and process.poll() is None:
            logs = sorted((nemotron_home / "jobs").glob("nano3-pretrain-2*/job.log"))
            if logs and "progress:" in logs[0].read_text(errors="replace"):
                job_log = logs[0]
            time.sleep(0.5)
        assert job_log is not None, "pretraining never started"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, stdout[-3000:] + stderr[-3000:]
    assert f"stage pretrain ended CANCELLED; log: {job_log}" in stderr
    [record_file] = (nemotron_home / "pipes").glob("*/pipe.json")
    states = {stage["name"]: stage["state"] for stage in json.loads(record_file.read_text())["stages"]}
    assert states == {"prep_pretrain": "COMPLETED", "pretrain": "CANCELLED"}
    job = json.loads((job_log.parent / "record.json").read_text())
    deadline = time.monotonic() + 30
    while _group_alive(int(job["job_id"])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _group_alive(int(job["job_id"])), "the stage's processes outlived the pipe"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
