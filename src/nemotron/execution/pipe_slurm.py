"""Submit a pipe's plan to Slurm at once: one job per stage to run, each waiting (afterok) for the stages it
reads from; a stage whose inputs those jobs make resolves its config when it starts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from nemotron.execution.launcher import LaunchRequest, PreparedJob, prepare
from nemotron.pipeline.plan import PipePlan, StagePlan
from nemotron.pipeline.records import PipeRecord, save_pipe_record

if TYPE_CHECKING:
    from nemotron.execution.records import JobRecord

SUBMITTED = "submitted"


@dataclass(frozen=True)
class PipeJob:
    """A stage of the plan made into a job, with the stages (names in the pipe) it waits for."""

    stage: StagePlan
    prepared: PreparedJob
    after: tuple[str, ...]


def prepare_pipe_jobs(plan: PipePlan, profile_name: str, argv: tuple[str, ...]) -> list[PipeJob]:
    """Every stage to run as a prepared job: fully checked now when its inputs exist, else checked by the
    job when it starts (its inputs are made by jobs of the same submission)."""
    running = [stage.name for stage in plan.to_run]
    jobs = []
    for stage in plan.to_run:
        after = tuple(name for name in running if name in stage.upstream)  # in pipe order
        request = LaunchRequest(
            stage.stage.spec,
            stage.stage.config,
            stage.overrides,
            profile_name,
            argv,
            fingerprint=stage.fingerprint,
            resolve_at_start=bool(after),
        )
        jobs.append(PipeJob(stage, prepare(request), after))
    return jobs


def submit_pipe(jobs: list[PipeJob], record: PipeRecord) -> tuple[PipeRecord, list[JobRecord]]:
    """One submission of all `jobs`; the pipe record names each stage's job. Returns it and the job records."""
    from nemotron.execution.slurm_backend import PlannedSubmission, SlurmBackend

    names = {job.stage.name: job.prepared.job.name for job in jobs}
    submissions = [
        PlannedSubmission(
            job.prepared.job,
            after=tuple(names[name] for name in job.after),
            label=job.stage.name,
            details={"pipe": record.name, "pipe_stage": job.stage.name},
        )
        for job in jobs
    ]
    backend = SlurmBackend(jobs[0].prepared.profile)
    records = backend.submit_all(submissions, title=record.name)
    for job, submitted in zip(jobs, records, strict=True):
        record = record.with_stage(replace(record.stage(job.stage.name), state=SUBMITTED, job=submitted.name))
    save_pipe_record(record)
    return record, records
