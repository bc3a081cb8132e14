"""A recorded pipe as one job: its stages' jobs and states, one state for the whole, cancelling all of them."""

from __future__ import annotations

from dataclasses import dataclass

from nemotron.execution.errors import ExecutionError
from nemotron.execution.records import JobRecord, list_records
from nemotron.execution.states import JobState
from nemotron.pipeline.records import PipeRecord, PipeStageRecord

_ORDER = (JobState.FAILED, JobState.TIMEOUT, JobState.OUT_OF_MEMORY, JobState.NODE_FAIL, JobState.LOST)


@dataclass(frozen=True)
class StageJobState:
    """One stage of a pipe: its record entry, its job (None: skipped, not selected or never started), state."""

    stage: PipeStageRecord
    job: JobRecord | None
    state: JobState | None  # None where there is no job

    @property
    def shown(self) -> str:
        return self.state.value if self.state is not None else self.stage.state


def stage_jobs(record: PipeRecord) -> list[StageJobState]:
    """Each stage of the pipe with its job's current state (asked of its backend)."""
    from nemotron.execution.launcher import control_for

    jobs = {job.name: job for job in list_records()}
    found = []
    for stage in record.stages:
        job = jobs.get(stage.job) if stage.job else None
        state = None
        if job is not None:
            try:
                state = control_for(job).status(job)
            except Exception:  # an unreachable cluster: shown as unknown, the other stages still are
                state = JobState.UNKNOWN
        found.append(StageJobState(stage, job, state))
    return found


def pipe_state(stages: list[StageJobState]) -> JobState:
    """The pipe's state: a failure if a stage failed, else running/pending while any is, else the last state."""
    states = [stage.state for stage in stages if stage.state is not None]
    for bad in _ORDER:
        if bad in states:
            return bad
    for live in (JobState.RUNNING, JobState.UNKNOWN, JobState.PENDING):
        if live in states:
            return live
    if JobState.CANCELLED in states:
        return JobState.CANCELLED
    return JobState.COMPLETED


def cancel_pipe(record: PipeRecord) -> list[str]:
    """Cancel every stage job still pending or running; the names cancelled."""
    from nemotron.execution.launcher import control_for

    cancelled = []
    for stage in stage_jobs(record):
        if stage.job is not None and stage.state is not None and not stage.state.is_terminal:
            control_for(stage.job).cancel(stage.job)
            cancelled.append(stage.job.name)
    if not cancelled:
        raise ExecutionError(f"pipe {record.name}: no stage job is pending or running; nothing was cancelled")
    return cancelled


def pipe_job_names() -> set[str]:
    """The jobs that belong to a recorded pipe (shown under it by `nemotron jobs list`)."""
    from nemotron.pipeline.records import list_pipe_records

    return {stage.job for record in list_pipe_records() for stage in record.stages if stage.job}


def refresh_pipe_records() -> None:
    """Record the current state of every pipe stage last seen submitted, pending or running (a Slurm pipe's
    record is written once, at submission), so that the next plan knows what failed and what still runs."""
    from dataclasses import replace

    from nemotron.execution.launcher import control_for
    from nemotron.execution.slurm_backend import SlurmJobControl
    from nemotron.pipeline.records import IN_FLIGHT, list_pipe_records, save_pipe_record

    for record in list_pipe_records():
        if not any(stage.job and stage.state in IN_FLIGHT for stage in record.stages):
            continue
        updated = record
        for found in stage_jobs(record):
            if found.state is None or found.stage.state not in IN_FLIGHT or found.state.value == found.stage.state:
                continue
            log, seconds = found.stage.log, found.stage.seconds
            if found.job is not None and found.state.is_terminal:
                control = control_for(found.job)
                log = ", ".join(control.log_paths(found.job)) or found.job.log_dir
                if isinstance(control, SlurmJobControl):  # a local stage's time is recorded by its pipe
                    seconds = control.run_seconds(found.job)
            updated = updated.with_stage(replace(found.stage, state=found.state.value, log=log, seconds=seconds))
        if updated != record:
            save_pipe_record(updated)
