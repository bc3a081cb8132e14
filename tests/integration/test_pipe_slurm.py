"""`nemotron nano3 pipe --batch` on the local Slurm cluster: a 3-stage tiny pipe (data prep as a job array and
its finalize job, pretraining under torchrun, eval reading both) as one submission with afterok dependencies;
`nemotron jobs` shows it as one entry; a failing stage cancels the stage after it; a re-run submits only the
failed stage and what follows; an identical re-run submits nothing; `jobs cancel PIPE` cancels its jobs."""

from __future__ import annotations

import json
import re

import pytest

from nemotron.artifacts import FileRegistry

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.usefixtures("slurm_cluster")]

EVAL_STAGE = """
  eval:
    stage: eval
    config: tiny
    overrides: ["run.models=[nano3-pretrain-tiny:latest]", run.data.sft=null, run.data.rl=null,
      perplexity.batches=2, perplexity.micro_batch_size=4]
"""
# the divergence guard stops pretraining at its second step (a loss over 1.01x the step before): a real failure
DIVERGES = (
    "pretrain.lr.lr=1.0",
    "pretrain.guard.warmup_steps=0",
    "pretrain.guard.spike_factor=1.01",
    "pretrain.guard.window=1",
)
SUBMITTED = re.compile(r"^  (\w+): (\S+) = Slurm job (\d+)(?: after (.*))?$", re.MULTILINE)


def submitted(stdout: str) -> dict[str, str]:
    """stage -> the stages it waits for ("" for none), from the --batch output."""
    return {stage: after or "" for stage, _, _, after in SUBMITTED.findall(stdout)}


def pipe_name(stdout: str) -> str:
    return re.search(r"^submitted pipe (\S+) ", stdout, re.MULTILINE).group(1)


def stage_states(status_stdout: str) -> dict[str, str]:
    return {line.split("\t")[0].strip(): line.split("\t")[-1] for line in status_stdout.splitlines()[1:]}


def test_a_pipe_is_one_submission_whose_failures_cancel_what_follows(
    run_cli, slurm_env_file, nemotron_home, tmp_path, small_pipe_head
):
    pipe = tmp_path / "pipe.yaml"
    pipe.write_text(small_pipe_head + EVAL_STAGE)
    batch = ("nano3", "pipe", "-c", str(pipe), "--batch", "local-slurm")

    first = run_cli(*batch)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert submitted(first.stdout) == {
        "prep_pretrain": "",
        "pretrain": "prep_pretrain",
        "eval": "prep_pretrain, pretrain",
    }
    name = pipe_name(first.stdout)
    listing = run_cli("jobs", "list").stdout
    assert re.search(rf"^{name}\s+-\s+pipe: 3 of 3 stages\s+local-slurm", listing, re.MULTILINE), listing
    stage_jobs = [job for _, job, _, _ in SUBMITTED.findall(first.stdout)]
    for job in stage_jobs:  # each stage is listed under the pipe, not as an entry of its own
        assert re.search(rf"^  \w+: {job}\s", listing, re.MULTILINE) and not re.search(
            rf"^{job}", listing, re.MULTILINE
        )
    done = run_cli("jobs", "status", name, "--wait", timeout=600)
    assert done.returncode == 0, done.stdout + run_cli("jobs", "logs", stage_jobs[-1]).stdout[-3000:]
    assert stage_states(done.stdout) == {"prep_pretrain": "COMPLETED", "pretrain": "COMPLETED", "eval": "COMPLETED"}
    registry = FileRegistry(nemotron_home / "artifacts")
    evaluation = registry.resolve("nano3-eval-tiny:latest")
    assert evaluation.metadata["models"] == ["nano3-pretrain-tiny:v1"]  # resolved when the eval job started
    lineage = run_cli("artifacts", "lineage", evaluation.ref).stdout
    assert "nano3-pretrain-tiny:v1" in lineage and "nano3-pretrain-data-tiny:v1" in lineage and "corpus-tiny" in lineage
    logs = run_cli("jobs", "logs", name).stdout  # every stage's log, in pipe order
    assert logs.index("== prep_pretrain: ") < logs.index("== pretrain: ") < logs.index("== eval: "), logs[-2000:]
    eval_log = logs.split("== eval: ")[1]
    assert "start: run.models[0]: nano3-pretrain-tiny:fp-" in eval_log and "-> nano3-pretrain-tiny:v1" in eval_log

    jobs_before = sorted((nemotron_home / "jobs").iterdir())
    again = run_cli(*batch)
    assert again.returncode == 0 and "every stage is done: nothing to submit" in again.stdout, again.stdout[-2000:]
    assert sorted((nemotron_home / "jobs").iterdir()) == jobs_before
    recorded = json.loads((nemotron_home / "pipes" / name / "pipe.json").read_text())
    seconds = {stage["name"]: stage["seconds"] for stage in recorded["stages"]}  # from sacct: start to end
    assert all(isinstance(value, float) and 0 < value < 600 for value in seconds.values()), seconds

    failing = run_cli(*batch, *DIVERGES)
    assert failing.returncode == 0, failing.stdout[-3000:] + failing.stderr[-3000:]
    assert submitted(failing.stdout) == {"pretrain": "", "eval": "pretrain"}  # the data prep is done
    failed = run_cli("jobs", "status", pipe_name(failing.stdout), "--wait", timeout=600)
    assert failed.returncode == 1
    assert stage_states(failed.stdout) == {"prep_pretrain": "skipped", "pretrain": "FAILED", "eval": "CANCELLED"}

    preview = run_cli("nano3", "pipe", "-c", str(pipe), "--dry-run", "-b", "local-slurm", *DIVERGES)
    assert re.search(
        r"^pretrain\s+[0-9a-f]{16}\s+run\s+\S+\s+failed in nano3-pipe-\S+ \(FAILED; log ", preview.stdout, re.MULTILINE
    )
    assert "=== stage eval: dependency afterok on the jobs of pretrain, kill-on-invalid-dep=yes ===" in preview.stdout
    assert "#SBATCH --kill-on-invalid-dep=yes" in preview.stdout.split("=== stage eval")[1]
    assert "resolved when the job starts" in preview.stdout

    retry = run_cli(*batch, *DIVERGES)
    assert submitted(retry.stdout) == {"pretrain": "", "eval": "pretrain"}, retry.stdout[-2000:]
    busy = run_cli(*batch, *DIVERGES)  # the same stages again while they are queued or running: refused
    assert busy.returncode == 2 and "is still" in busy.stderr and "nemotron jobs cancel" in busy.stderr
    retry_name = pipe_name(retry.stdout)
    cancelled = run_cli("jobs", "cancel", retry_name)
    assert cancelled.returncode == 0 and cancelled.stdout.count("cancelled ") >= 1, cancelled.stdout + cancelled.stderr
    after = run_cli("jobs", "status", retry_name, "--wait", timeout=300)
    assert stage_states(after.stdout)["eval"] == "CANCELLED", after.stdout
