"""The real `nemotron` CLI against the local Slurm cluster: --run, --batch, `nemotron jobs`, dry run, secrets."""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.usefixtures("slurm_cluster")]

PREP = ("nano3", "data", "prep", "pretrain")
ARTIFACT = "nano3-pretrain-data-tiny"
TIMEOUT = 300
SECRET = "hf_secret_abc123"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL"}


# -- helpers ---------------------------------------------------------------------------------------


def sh(*args: str) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(args)} failed: {done.stderr}"
    return done.stdout


def sacct_state(job_id: str) -> str:
    """The job's state word from accounting ('CANCELLED by 0' -> 'CANCELLED'); '' while unknown."""
    lines = sh("sacct", "-j", job_id, "-X", "-n", "-P", "--format=State").split()
    return lines[0].rstrip("+") if lines else ""


def wait_sacct(job_id: str, wanted: set[str], timeout: float = 60) -> str:
    """Poll sacct until the state is in `wanted` (or terminal); return the last state seen."""
    deadline = time.monotonic() + timeout
    state = sacct_state(job_id)
    while state not in wanted and state not in TERMINAL and time.monotonic() < deadline:
        time.sleep(1)
        state = sacct_state(job_id)
    return state


def squeue_ids() -> set[str]:
    return set(sh("squeue", "-h", "-u", getpass.getuser(), "-o", "%i").split())


def sacct_ids_since(start: str) -> set[str]:
    return set(sh("sacct", "-X", "-n", "-P", "-u", getpass.getuser(), "-S", start, "--format=JobID").split())


def flat(text: str) -> str:
    """Undo Rich's wrapping: collapse whitespace."""
    return " ".join(text.split())


def submitted(stdout: str) -> tuple[str, str]:
    match = re.search(r"submitted (\S+) as Slurm job (\d+)", flat(stdout))
    assert match, f"no 'submitted ... as Slurm job ...' line in:\n{stdout}"
    return match.group(1), match.group(2)


def versions(home: Path) -> list[str]:
    name_dir = home / "artifacts" / ARTIFACT
    if not name_dir.is_dir():
        return []
    return sorted(p.name for p in name_dir.iterdir() if re.fullmatch(r"v\d+", p.name))


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def status_line(run_cli, job: str, *extra: str) -> tuple[int, list[str]]:
    done = run_cli("jobs", "status", job, *extra, timeout=TIMEOUT)
    return done.returncode, done.stdout.strip().split("\t")


def poll_status(run_cli, job: str, wanted: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        code, fields = status_line(run_cli, job)
        assert code == 0, fields
        if fields[-1] == wanted or fields[-1] in TERMINAL or time.monotonic() > deadline:
            return fields[-1]
        time.sleep(1)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch):
    """No secrets inherited from the caller's environment; wide output so Rich does not truncate."""
    for name in ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "250")


@pytest.fixture
def submit(run_cli):
    """Run a submitting CLI command; every Slurm job it starts is cancelled at teardown if still queued."""
    started: list[str] = []

    def run(*args: str) -> tuple[subprocess.CompletedProcess, str, str]:
        done = run_cli(*args, timeout=TIMEOUT)
        name, job_id = submitted(done.stdout)
        started.append(job_id)
        return done, name, job_id

    yield run
    leftover = squeue_ids() & set(started)
    if leftover:
        subprocess.run(["scancel", *sorted(leftover)], capture_output=True, timeout=60)


# -- tests -----------------------------------------------------------------------------------------


def test_run_attached_streams_log_and_publishes(submit, run_cli, slurm_env_file, nemotron_home):
    done, name, job_id = submit(*PREP, "--run", "local-slurm", "-c", "tiny", "array_tasks=0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"published {ARTIFACT}:v1" in done.stdout  # the stage's log, streamed from the job
    assert "data prep: 2 dataset(s)" in done.stdout
    assert f"job {name} COMPLETED" in flat(done.stdout)
    assert sacct_state(job_id) == "COMPLETED"
    assert versions(nemotron_home) == ["v1"]
    artifact_dir = nemotron_home / "artifacts" / ARTIFACT / "v1"
    record = json.loads((artifact_dir / "artifact.json").read_text())
    assert record["lineage"]["job_name"] == name
    assert record["lineage"]["job_id"] == job_id  # SLURM_JOB_ID reached the stage
    blend = json.loads((artifact_dir / "blend.json").read_text())
    for split in ("train", "valid", "test"):
        for prefix in blend[split][1::2]:
            for suffix in (".bin", ".idx"):
                assert (artifact_dir / f"{prefix}{suffix}").is_file()

    job_dir = nemotron_home / "jobs" / name
    job = yaml.safe_load((job_dir / "job.yaml").read_text())
    assert job["job"]["executor"] == "slurm" and job["job"]["profile_name"] == "local-slurm"
    assert job["profile"]["slurm"]["partition"] == "debug" and job["profile"]["slurm"]["account"] == "local"
    assert yaml.safe_load((job_dir / "config.yaml").read_text()) == job["config"]
    assert (job_dir / "secrets.env").stat().st_mode & 0o777 == 0o600


def test_batch_returns_and_jobs_commands_follow_the_job(submit, run_cli, slurm_env_file, nemotron_home):
    done, name, job_id = submit(*PREP, "--batch", "local-slurm", "-c", "tiny", "array_tasks=0")
    assert done.returncode == 0, done.stdout + done.stderr
    for verb in ("status", "logs --follow", "cancel"):
        assert f"nemotron jobs {verb} {name}" in done.stdout
    assert "published" not in done.stdout  # it did not wait for the job
    # Slurm knows the job right after the command returned.
    assert job_id in squeue_ids() or sacct_state(job_id) in {"PENDING", "RUNNING", "COMPLETED"}
    code, fields = status_line(run_cli, name)
    assert code == 0
    assert fields[:2] == [name, job_id] and fields[2] in {"PENDING", "RUNNING", "COMPLETED"}

    code, fields = status_line(run_cli, name, "--wait")
    assert code == 0, fields
    assert fields == [name, job_id, "COMPLETED"]
    assert sacct_state(job_id) == "COMPLETED"
    assert versions(nemotron_home) == ["v1"]

    logs = run_cli("jobs", "logs", name, timeout=TIMEOUT)
    assert logs.returncode == 0, logs.stderr
    assert f"published {ARTIFACT}:v1" in logs.stdout
    followed = run_cli("jobs", "logs", name, "-f", timeout=TIMEOUT)
    assert followed.returncode == 0, followed.stderr
    assert f"published {ARTIFACT}:v1" in followed.stdout

    code, fields = status_line(run_cli, job_id)  # by numeric Slurm id
    assert code == 0 and fields == [name, job_id, "COMPLETED"]

    listed = run_cli("jobs", "list", timeout=TIMEOUT)
    assert listed.returncode == 0, listed.stderr
    row = next((line for line in listed.stdout.splitlines() if name in line), None)
    assert row is not None, listed.stdout
    assert job_id in row and "COMPLETED" in row and "local-slurm" in row


def test_failing_job_reports_failed_everywhere(submit, run_cli, slurm_env_file, nemotron_home):
    done, name, job_id = submit(
        *PREP, "--run", "local-slurm", "-c", "tiny", "array_tasks=0", "blend_path=/nonexistent/blend.json"
    )
    assert done.returncode != 0, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and name in errors[0] and "FAILED" in errors[0], done.stderr
    assert "/nonexistent/blend.json" in done.stdout  # the stage's reason, streamed from its log
    assert "Traceback" not in done.stdout + done.stderr
    assert sacct_state(job_id) == "FAILED"
    code, fields = status_line(run_cli, name)
    assert code == 0 and fields == [name, job_id, "FAILED"]
    code, fields = status_line(run_cli, name, "--wait")
    assert code != 0 and fields[-1] == "FAILED"
    assert versions(nemotron_home) == []


def test_cancel_running_job(submit, run_cli, slurm_env_file, nemotron_home):
    done, name, job_id = submit(*PREP, "--batch", "local-slurm-slow", "-c", "tiny", "array_tasks=0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert poll_status(run_cli, name, "RUNNING", timeout=60) == "RUNNING"
    assert wait_sacct(job_id, {"RUNNING"}) == "RUNNING"

    cancelled = run_cli("jobs", "cancel", name, timeout=TIMEOUT)
    assert cancelled.returncode == 0, cancelled.stderr
    assert name in cancelled.stdout and job_id in cancelled.stdout

    assert poll_status(run_cli, name, "CANCELLED", timeout=60) == "CANCELLED"
    assert wait_sacct(job_id, {"CANCELLED"}) == "CANCELLED"
    assert job_id not in squeue_ids()
    code, fields = status_line(run_cli, job_id, "--wait")
    assert code != 0 and fields[-1] == "CANCELLED"

    again = run_cli("jobs", "cancel", name, timeout=TIMEOUT)
    assert again.returncode != 0
    assert "Traceback" not in again.stderr
    assert again.stderr.startswith("error:") and "already ended" in again.stderr and "CANCELLED" in again.stderr
    assert versions(nemotron_home) == []


def test_dry_run_slurm_prints_sbatch_script_and_submits_nothing(run_cli, slurm_env_file, nemotron_home):
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
    queued_before, accounted_before = squeue_ids(), sacct_ids_since(start)

    done = run_cli(*PREP, "--dry-run", "-b", "local-slurm", "-c", "tiny", "array_tasks=0", timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "--- sbatch script ---\n" in out
    script = out.split("--- sbatch script ---\n", 1)[1].split("\n--- dry run:", 1)[0]
    assert script.startswith("#!/bin/bash\n")
    lines = script.splitlines()
    assert "#SBATCH --partition=debug" in lines
    assert "#SBATCH --account=local" in lines
    assert "#SBATCH --time=00:10:00" in lines
    assert re.search(r"-m nemotron\.stages\.data_prep_pretrain --config /\S+/config\.yaml", script), script
    assert f"artifact_name: {ARTIFACT}" in out  # resolved config shown too
    assert "nothing was written or submitted" in out

    time.sleep(2)  # let accounting catch up with anything that might have been submitted
    assert squeue_ids() == queued_before
    assert sacct_ids_since(start) == accounted_before
    assert files_under(nemotron_home / "jobs") == []
    assert files_under(nemotron_home) == []  # NeMo-Run's dry-run experiment was removed as well


def secret_profile(add_env_profile, setup_check: bool = True) -> str:
    """Add a profile carrying HF_TOKEN; its setup fails the job (exit 7) unless the job sees the value.

    The check compares a hash, with tracing off, so the value itself is never written anywhere by us.
    """
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    check = (
        f'{{ set +x; }} 2>/dev/null; test "$(printf %s "$HF_TOKEN" | sha256sum | cut -c1-64)" = {digest} '
        "|| exit 7; set -x"
    )
    settings: dict[str, object] = {"env_vars": {"HF_TOKEN": SECRET, "NEMOTRON_TEST_PUBLIC": "visible"}}
    if setup_check:
        settings["setup"] = [check]
    return add_env_profile("secret-slurm", **settings)


def test_secrets_reach_the_job_but_no_file_or_output(submit, run_cli, add_env_profile, nemotron_home):
    profile = secret_profile(add_env_profile)

    preview = run_cli(*PREP, "--dry-run", "-b", profile, "-c", "tiny", "array_tasks=0", timeout=TIMEOUT)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert SECRET not in preview.stdout + preview.stderr
    assert "HF_TOKEN" in preview.stdout  # named, masked
    assert "NEMOTRON_TEST_PUBLIC" in preview.stdout and "visible" in preview.stdout

    done, name, job_id = submit(*PREP, "--run", profile, "-c", "tiny", "array_tasks=0")
    assert done.returncode == 0, done.stdout + done.stderr  # setup exits 7 unless the job saw HF_TOKEN
    assert SECRET not in done.stdout + done.stderr, done.stdout + done.stderr
    assert sacct_state(job_id) == "COMPLETED"

    job_dir = nemotron_home / "jobs" / name
    job_yaml = (job_dir / "job.yaml").read_text()
    assert SECRET not in job_yaml
    assert yaml.safe_load(job_yaml)["profile"]["env_vars"]["HF_TOKEN"] == "***"
    secrets_file = job_dir / "secrets.env"
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    assert "HF_TOKEN" in secrets_file.read_text()

    scripts = list((nemotron_home / "nemo_run").rglob("*_sbatch.sh"))
    assert scripts, "NeMo-Run's sbatch script not found"
    for script in scripts:
        text = script.read_text()
        assert SECRET not in text, script
        assert "NEMOTRON_TEST_PUBLIC=visible" in text  # public env_vars do go into the script
    # Nothing NeMo-Run or the launcher wrote keeps the value (job logs: see the next test).
    for path in files_under(nemotron_home / "nemo_run") + files_under(job_dir):
        if path == secrets_file or path.parent.name == "logs":
            continue
        assert SECRET not in path.read_text(errors="replace"), path


def test_secrets_do_not_appear_in_job_logs(submit, run_cli, add_env_profile, nemotron_home):
    """NeMo-Run's sbatch script runs under `set -evx`: sourcing secrets.env must not echo its lines."""
    profile = secret_profile(add_env_profile, setup_check=False)
    done, name, _ = submit(*PREP, "--run", profile, "-c", "tiny", "array_tasks=0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert SECRET not in done.stdout + done.stderr
    logs = files_under(nemotron_home / "jobs" / name / "logs")
    assert logs
    leaked = [str(p) for p in logs if SECRET in p.read_text(errors="replace")]
    assert leaked == []


def test_run_streams_stage_log_when_setup_is_slow(submit, run_cli, add_env_profile, nemotron_home):
    """`--run` first streams the sbatch trace (no stage log yet); the stage's whole log must still follow."""
    profile = add_env_profile("slow-start", setup=["sleep 5"])
    done, name, _ = submit(*PREP, "--run", profile, "-c", "tiny", "array_tasks=0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sleep 5" in done.stdout  # the trace was streamed while the stage had not started
    assert "data prep: 2 dataset(s)" in done.stdout, done.stdout
    assert f"published {ARTIFACT}:v1" in done.stdout, done.stdout
    followed = run_cli("jobs", "logs", name, "-f", timeout=TIMEOUT)
    assert followed.returncode == 0 and f"published {ARTIFACT}:v1" in followed.stdout


def data_files(data_dir: Path) -> dict[str, bytes]:
    """The bytes of every shard (bin/idx) of a data folder, by relative path."""
    return {
        str(p.relative_to(data_dir)): p.read_bytes()
        for p in sorted(data_dir.rglob("shard_*.*"))
        if p.suffix in (".bin", ".idx")
    }


def test_job_array_then_finalize_gives_the_bytes_of_a_local_run(
    submit, run_cli, slurm_env_file, nemotron_home, tmp_path
):
    """On Slurm the stage runs as a job array (shards) and a finalize job; the data equals a local run's."""
    local = run_cli(
        *PREP, "-c", "tiny", f"output_dir={tmp_path / 'local-data'}", "artifact_name=local-copy", timeout=TIMEOUT
    )
    assert local.returncode == 0, local.stdout + local.stderr
    done, name, job_id = submit(
        *PREP, "--run", "local-slurm", "-c", "tiny", "array_tasks=2", f"output_dir={tmp_path / 'slurm-data'}"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "array task 1/2" in done.stdout and "array task 2/2" in done.stdout  # both tasks' logs streamed
    assert f"published {ARTIFACT}:v1" in done.stdout
    jobs = sh("sacct", "-n", "-X", "-P", "--format=JobID,JobName,State", "-S", "now-10minutes").splitlines()
    mine = [line.split("|") for line in jobs if name in line]
    assert sorted(j[1].rsplit("-", 1)[1] for j in mine) == ["finalize", "shards", "shards"], mine
    assert all(j[2] == "COMPLETED" for j in mine), mine
    assert any(j[0] == job_id and j[1].endswith("-finalize") for j in mine)  # the printed id is finalize's
    slurm_bytes, local_bytes = data_files(tmp_path / "slurm-data"), data_files(tmp_path / "local-data")
    assert slurm_bytes and slurm_bytes == local_bytes
    # the array's tasks shared the folder's lease, the finalize job took it over and released it
    assert not (tmp_path / "slurm-data" / ".lease.json").exists()


def test_failed_job_array_cancels_finalize_and_fails(submit, run_cli, slurm_env_file, nemotron_home):
    done, name, job_id = submit(
        *PREP, "--run", "local-slurm", "-c", "tiny", "array_tasks=2", "blend_path=/nonexistent/blend.json"
    )
    assert done.returncode != 0
    assert "FAILED" in done.stderr and name in done.stderr
    deadline = time.monotonic() + 90  # Slurm cancels the dependent finalize job shortly after
    while sacct_state(job_id) != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(2)
    assert sacct_state(job_id) == "CANCELLED"  # finalize never ran (kill-on-invalid-dep)
    code, fields = status_line(run_cli, name)
    assert fields == [name, job_id, "FAILED"]  # the job's state is its failed array's
    assert versions(nemotron_home) == []
