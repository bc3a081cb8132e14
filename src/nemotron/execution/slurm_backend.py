"""Submit stage jobs to Slurm through NeMo-Run, and follow, query and cancel them afterwards."""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nemotron.config.job_files import write_job_files
from nemotron.env import Profile
from nemotron.execution.errors import ExecutionError
from nemotron.execution.job import StageJob
from nemotron.execution.job_env import SECRETS_FILE, write_secrets_file
from nemotron.execution.log_reader import LogCursor, read_new
from nemotron.execution.nemo_run_import import NemoRun
from nemotron.execution.records import JobRecord, save_record, writing_job_folder
from nemotron.execution.slurm_commands import LocalShell, SlurmClient, SSHShell
from nemotron.execution.slurm_executor import LOG_SUBDIR, SlurmPlan, build_slurm_plan
from nemotron.execution.states import JobState, from_slurm
from nemotron.storage_errors import StorageError

SUBMIT_LOG = "submit.log"
# Queue states of a job that Slurm put back in the queue (scontrol requeue, preemption, node
# failure with --requeue): accounting may still show the ended run's state for a moment.
_BACK_IN_QUEUE = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RUNNING", "SUSPENDED"}


@dataclass(frozen=True)
class PlannedSubmission:
    """A job to submit with the jobs (by name) whose success it waits for, and a label for its tasks."""

    job: StageJob
    after: tuple[str, ...] = ()
    label: str = "job"  # prefixes its task names when several jobs share one experiment (a pipe's stage)
    details: dict[str, str] = field(default_factory=dict)  # kept in its record (e.g. the pipe it belongs to)


class SlurmBackend:
    """One NeMo-Run experiment per job, submitted detached; state comes from Slurm accounting."""

    name = "slurm"

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def submit(self, job: StageJob) -> JobRecord:
        return self.submit_all([PlannedSubmission(job)], title=job.name)[0]

    def submit_all(self, submissions: Sequence[PlannedSubmission], *, title: str) -> list[JobRecord]:
        """Submit several jobs in one NeMo-Run experiment (one `pipe`): each job's first task waits for the
        last task of the jobs it names in `after` (afterok; a failure cancels the waiting jobs). Returns one
        record per job, in order."""
        plans = [
            (item, build_slurm_plan(self.profile, item.job, waits_for_other_jobs=bool(item.after)))
            for item in submissions
        ]
        run = _nemo_run()
        chatter = io.StringIO()  # NeMo-Run's own progress output, kept in the job dir instead
        prefix = len(plans) > 1  # task names are unique within an experiment
        try:
            with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                for item, plan in plans:
                    self._write_job_files(item.job, plan.job_dir, plan.tasks[0].executor.tunnel)
                with run.Experiment(title, executor=plans[0][1].tasks[0].executor, log_level="WARN") as experiment:
                    last_task: dict[str, str] = {}
                    for item, plan in plans:
                        after = [last_task[name] for name in item.after]
                        ids = add_tasks(experiment, plan, prefix=f"{item.label}-" if prefix else "", after=after)
                        last_task[item.job.name] = ids[-1]
                    experiment.run(detach=True)
                    handles = [j.handle for j in experiment.jobs]
                    experiment_id, _ = experiment_location(experiment)
        except StorageError:
            raise  # the local job folder cannot be written: its own one-line message
        except Exception as err:  # NeMo-Run surfaces sbatch failures as assorted exception types
            raise ExecutionError(
                f"submission to Slurm failed (profile {self.profile.name!r}): {err}\n{chatter.getvalue()[-2000:]}"
            ) from err
        finally:
            self._keep_submission_output(plans[0][1].job_dir, chatter.getvalue())
        records = []
        for item, plan in plans:
            task_handles, handles = handles[: len(plan.tasks)], handles[len(plan.tasks) :]
            records.append(self._record(item, plan, task_handles, experiment_id))
        return records

    def _record(self, item: PlannedSubmission, plan: SlurmPlan, handles: list[str], experiment_id: str) -> JobRecord:
        job = item.job
        log_dir = posixpath.join(plan.job_dir, LOG_SUBDIR)
        ids = [
            (task.name, (handle or "").rstrip("/").rsplit("/", 1)[-1])
            for task, handle in zip(plan.tasks, handles, strict=True)
        ]
        if not all(job_id.isdigit() for _, job_id in ids):
            raise ExecutionError(
                f"Slurm did not accept job {job.name} (NeMo-Run handles {handles!r}); "
                f"see the sbatch script under {log_dir}"
            )
        details = {"experiment_id": experiment_id, **item.details}
        if len(ids) > 1:  # the last task decides the outcome; the others are checked on failure
            details["phases"] = ",".join(f"{name}:{job_id}" for name, job_id in ids)
        if self.profile.slurm and self.profile.slurm.ssh:
            ssh = self.profile.slurm.ssh
            details.update(host=ssh.host, user=ssh.user or "", identity=ssh.identity or "", port=str(ssh.port))
        record = JobRecord(
            name=job.name,
            stage=job.stage,
            backend=self.name,
            profile=self.profile.name,
            job_id=ids[-1][1],
            submitted_at=datetime.now().isoformat(timespec="seconds"),
            job_dir=plan.job_dir,
            log_dir=log_dir,
            details=details,
        )
        save_record(record)
        return record

    def _keep_submission_output(self, job_dir: str, text: str) -> None:
        if self.profile.slurm and self.profile.slurm.ssh:
            return  # the job dir is on the cluster; the text was only progress chatter
        if Path(job_dir).is_dir():  # absent when submission failed before the job dir was made
            Path(job_dir, SUBMIT_LOG).write_text(text)

    def _write_job_files(self, job: StageJob, job_dir: str, tunnel: Any) -> None:
        """Put config.yaml, job.yaml and the 0600 secrets file where the job will read them."""
        if self.profile.slurm is None or self.profile.slurm.ssh is None:
            with writing_job_folder(Path(job_dir)):
                write_job_files(Path(job_dir), job.config, job.provenance)
                write_secrets_file(Path(job_dir), job.secret_env)
                Path(job_dir, LOG_SUBDIR).mkdir(exist_ok=True)  # Slurm does not create output folders
            return
        import tempfile

        tunnel.connect()
        tunnel.run(f"mkdir -p {shlex.quote(posixpath.join(job_dir, LOG_SUBDIR))}")
        with tempfile.TemporaryDirectory() as staging:
            local = Path(staging)
            write_job_files(local, job.config, job.provenance)
            write_secrets_file(local, job.secret_env)
            for name in ("config.yaml", "job.yaml", SECRETS_FILE):
                tunnel.put(str(local / name), posixpath.join(job_dir, name))
        tunnel.run(f"chmod 600 {shlex.quote(posixpath.join(job_dir, SECRETS_FILE))}")


class SlurmJobControl:
    """State, logs and cancellation of a recorded Slurm job (no NeMo-Run import on this machine)."""

    name = "slurm"

    def __init__(self, record: JobRecord) -> None:
        details = record.details
        self.shell: LocalShell | SSHShell
        if details.get("host"):
            self.shell = SSHShell(
                details["host"],
                details.get("user", ""),
                details.get("identity") or None,
                int(details.get("port", "22")),
            )
        else:
            self.shell = LocalShell()
        self.client = SlurmClient(self.shell)
        self.remote = bool(details.get("host"))

    def status(self, record: JobRecord) -> JobState:
        state = self.client.state(record.job_id)
        if state in (JobState.CANCELLED, JobState.PENDING) and len(self._phase_ids(record)) > 1:
            for job_id in self._phase_ids(record)[:-1]:  # a failed earlier phase fails the job
                earlier = self.client.state(job_id)
                if earlier.is_terminal and earlier is not JobState.COMPLETED:
                    return earlier
        if state is JobState.PENDING or (state.is_terminal and state is not JobState.COMPLETED):
            return self._queue_state(record.job_id) or state
        return state

    def _queue_state(self, job_id: str) -> JobState | None:
        """The queue's live state where accounting lags: a job already running that sacct still shows
        PENDING, or a job back in the queue (requeued) whose last run sacct shows as ended (PREEMPTED,
        NODE_FAIL, ...); None when the job is not in the queue."""
        queue = self.shell.run(f"squeue -h -j {shlex.quote(job_id)} -o %T")
        words = queue.stdout.split() if queue.code == 0 else []
        if words and words[0].upper() in _BACK_IN_QUEUE:
            return from_slurm(words[0])
        return None

    def run_seconds(self, record: JobRecord) -> float | None:
        """The job's time on the cluster: first phase's start to last phase's end (None until it ended)."""
        return self.client.run_span(self._phase_ids(record))

    def cancel(self, record: JobRecord) -> None:
        state = self.status(record)
        if state.is_terminal:
            raise ExecutionError(f"job {record.name} ({record.job_id}) already ended ({state.value})")
        for job_id in self._phase_ids(record):
            self.client.cancel(job_id)

    @staticmethod
    def _phase_ids(record: JobRecord) -> list[str]:
        phases = record.details.get("phases")
        return [item.split(":")[1] for item in phases.split(",")] if phases else [record.job_id]

    def log_paths(self, record: JobRecord) -> list[str]:
        """The job's output files (every phase, array task and restart, in that order: NeMo-Run
        names them `log-<name>_<job id>_<restart count>.out`); the sbatch traces when none."""
        logs = self.client.list_files(record.log_dir, "log-*.out")
        if logs:
            return sorted(logs, key=_natural_key)
        return sorted(self.client.list_files(record.log_dir, "sbatch_*.out"), key=_natural_key)

    def read_log(self, record: JobRecord, cursor: LogCursor) -> tuple[str, LogCursor]:
        """New text of the job's output files since `cursor` (each file has its own position)."""
        if self.remote:
            return read_new(self.log_paths(record), cursor, self.client.read)
        return read_new(self.log_paths(record), cursor)


def _natural_key(path: str) -> list:
    """Sort key comparing digit runs as numbers: restart 10 after restart 9, job 1000 after job 999."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", path)]


def _nemo_run() -> NemoRun:
    from nemotron.execution.nemo_run_import import import_nemo_run

    return import_nemo_run()


def add_tasks(experiment: Any, plan: SlurmPlan, *, prefix: str = "", after: Sequence[str] = ()) -> list[str]:
    """Add the plan's tasks (named `prefix + task`); each waits for the one before it, the first for the
    experiment's tasks `after` (Slurm afterok dependencies). Returns the added tasks' ids, in order."""
    ids: dict[str, str] = {}
    for task in plan.tasks:
        dependencies = [ids[task.depends_on]] if task.depends_on else list(after) or None
        ids[task.name] = experiment.add(
            task.script, executor=task.executor, name=prefix + task.name, tail_logs=False, dependencies=dependencies
        )
    return list(ids.values())


def experiment_location(experiment: Any) -> tuple[str, Path]:
    """(id, folder) of a NeMo-Run experiment with tasks, from the public fields that `Experiment.add`
    sets on each task's executor (`experiment_id`, `experiment_dir`)."""
    executor = experiment.jobs[0].executor
    return executor.experiment_id, Path(executor.experiment_dir)


def render_sbatch_preview(
    profile: Profile, job: StageJob, *, waits_for_other_jobs: bool = False
) -> list[tuple[str, str]]:
    """The literal sbatch script(s) NeMo-Run would submit for `job`, as (task, script); nothing stays behind."""
    import shutil

    plan = build_slurm_plan(profile, job, waits_for_other_jobs=waits_for_other_jobs)
    run = _nemo_run()
    experiment = run.Experiment(job.name, executor=plan.tasks[0].executor, log_level="ERROR")
    exp_dir: Path | None = None
    try:
        with contextlib.redirect_stdout(io.StringIO()), experiment:
            add_tasks(experiment, plan)
            _, exp_dir = experiment_location(experiment)
            experiment.dryrun(log=False, delete_exp_dir=False)
            scripts = []
            for task in plan.tasks:
                found = sorted(exp_dir.rglob(f"{task.name}_sbatch.sh"))
                if not found:
                    raise ExecutionError(f"NeMo-Run produced no sbatch script for task {task.name!r} in its dry run")
                scripts.append((task.name, found[0].read_text()))
            return scripts
    finally:  # nothing stays behind: remove the experiment and the folders the dry run created
        if exp_dir is not None:
            shutil.rmtree(exp_dir.parent, ignore_errors=True)
            for folder in (exp_dir.parents[1], Path(os.environ["NEMORUN_HOME"])):
                if folder.name in ("experiments", "nemo_run") and folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
