"""Submit stage jobs to Slurm through NeMo-Run, and follow, query and cancel them afterwards."""

from __future__ import annotations

import posixpath
from datetime import datetime
from pathlib import Path

from nemotron.config.job_files import write_job_files
from nemotron.env import Profile
from nemotron.execution.errors import ExecutionError
from nemotron.execution.job import StageJob
from nemotron.execution.job_env import SECRETS_FILE, write_secrets_file
from nemotron.execution.local_backend import read_from
from nemotron.execution.records import JobRecord, save_record
from nemotron.execution.slurm_commands import LocalShell, SlurmClient, SSHShell
from nemotron.execution.slurm_executor import build_slurm_plan
from nemotron.execution.states import JobState

TASK_NAME = "main"


class SlurmBackend:
    """One NeMo-Run experiment per job, submitted detached; state comes from Slurm accounting."""

    name = "slurm"

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def submit(self, job: StageJob) -> JobRecord:
        plan = build_slurm_plan(self.profile, job)
        self._write_job_files(job, plan.job_dir, plan.executor.tunnel)
        run = _nemo_run()
        with run.Experiment(job.name, executor=plan.executor, log_level="WARN") as experiment:
            experiment.add(plan.script, name=TASK_NAME, tail_logs=False)
            try:
                experiment.run(detach=True)
            except Exception as err:  # NeMo-Run surfaces sbatch failures as assorted exception types
                raise ExecutionError(f"submission to Slurm failed (profile {self.profile.name!r}): {err}") from err
            handle = experiment.jobs[0].handle
            log_dir = experiment.jobs[0].executor.job_dir
            experiment_id = experiment._id
        job_id = handle.rstrip("/").rsplit("/", 1)[-1] if handle else ""
        if not job_id.isdigit():
            raise ExecutionError(
                f"Slurm did not accept job {job.name} (NeMo-Run handle {handle!r}); "
                f"see the sbatch script under {log_dir}"
            )
        details = {"experiment_id": experiment_id}
        if self.profile.slurm and self.profile.slurm.ssh:
            ssh = self.profile.slurm.ssh
            details.update(host=ssh.host, user=ssh.user or "", identity=ssh.identity or "", port=str(ssh.port))
        record = JobRecord(
            name=job.name,
            stage=job.stage,
            backend=self.name,
            profile=self.profile.name,
            job_id=job_id,
            submitted_at=datetime.now().isoformat(timespec="seconds"),
            job_dir=plan.job_dir,
            log_dir=log_dir,
            details=details,
        )
        save_record(record)
        return record

    def _write_job_files(self, job: StageJob, job_dir: str, tunnel) -> None:
        """Put config.yaml, job.yaml and the 0600 secrets file where the job will read them."""
        if self.profile.slurm is None or self.profile.slurm.ssh is None:
            write_job_files(Path(job_dir), job.config, job.provenance)
            write_secrets_file(Path(job_dir), job.secret_env)
            return
        import tempfile

        tunnel.connect()
        tunnel.run(f"mkdir -p {job_dir}")
        with tempfile.TemporaryDirectory() as staging:
            local = Path(staging)
            write_job_files(local, job.config, job.provenance)
            write_secrets_file(local, job.secret_env)
            for name in ("config.yaml", "job.yaml", SECRETS_FILE):
                tunnel.put(str(local / name), posixpath.join(job_dir, name))
        tunnel.run(f"chmod 600 {posixpath.join(job_dir, SECRETS_FILE)}")


class SlurmJobControl:
    """State, logs and cancellation of a recorded Slurm job (no NeMo-Run import on this machine)."""

    name = "slurm"

    def __init__(self, record: JobRecord) -> None:
        details = record.details
        if details.get("host"):
            self.shell = SSHShell(details["host"], details.get("user", ""), details.get("identity") or None,
                                  int(details.get("port", "22")))
        else:
            self.shell = LocalShell()
        self.client = SlurmClient(self.shell)
        self.remote = bool(details.get("host"))

    def status(self, record: JobRecord) -> JobState:
        return self.client.state(record.job_id)

    def cancel(self, record: JobRecord) -> None:
        state = self.status(record)
        if state.is_terminal:
            raise ExecutionError(f"job {record.name} ({record.job_id}) already ended ({state.value})")
        self.client.cancel(record.job_id)

    def log_paths(self, record: JobRecord) -> list[str]:
        """The job's output files: one per (re)start, in order; the sbatch trace when there is none."""
        logs = self.client.list_files(record.log_dir, f"log-*_{record.job_id}_*.out")
        if logs:
            return sorted(logs, key=lambda p: int(p.rsplit("_", 1)[-1].split(".")[0]))
        return self.client.list_files(record.log_dir, f"sbatch_*_{record.job_id}.out")

    def read_log(self, record: JobRecord, offset: int) -> tuple[str, int]:
        """Text of all output files after byte `offset` of their concatenation."""
        chunks, position = [], 0
        for path in self.log_paths(record):
            size_before = position
            if self.remote:
                text, end = self.client.read(path, max(offset - size_before, 0))
            else:
                text, end = read_from(Path(path), max(offset - size_before, 0))
            chunks.append(text)
            position = size_before + end
        return "".join(chunks), max(position, offset)


def _nemo_run():
    from nemotron.execution.nemo_run_import import import_nemo_run

    return import_nemo_run()


def render_sbatch_preview(profile: Profile, job: StageJob) -> str:
    """The literal sbatch script NeMo-Run would submit for `job`, rendered in a temporary folder."""
    import tempfile

    plan = build_slurm_plan(profile, job)
    run = _nemo_run()
    with tempfile.TemporaryDirectory(prefix="nemotron-dryrun-") as base_dir:
        experiment = run.Experiment(job.name, executor=plan.executor, base_dir=base_dir, log_level="ERROR")
        with experiment:
            experiment.add(plan.script, name=TASK_NAME, tail_logs=False)
            experiment.dryrun(log=False, delete_exp_dir=False)
            scripts = sorted(Path(base_dir).rglob("*_sbatch.sh"))
            if not scripts:
                raise ExecutionError("NeMo-Run produced no sbatch script in its dry run")
            return scripts[0].read_text().replace(base_dir, "<nemo_run experiment dir>")

