"""Run a pipe's plan on this machine: each stage prepared when it starts (its inputs exist by then), run to
its end, the first failure stopping the pipe; the pipe record follows every step."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from nemotron.errors import NemotronError
from nemotron.execution.job import new_job_name
from nemotron.execution.launcher import LaunchRequest, backend_for, control_for, prepare
from nemotron.execution.states import JobState
from nemotron.interrupts import interrupt_exit_code
from nemotron.pipeline.plan import RUN, SKIP, PipePlan, StagePlan
from nemotron.pipeline.records import PipeRecord, PipeStageRecord, save_pipe_record

if TYPE_CHECKING:
    from nemotron.execution.local_backend import LocalBackend
    from nemotron.execution.records import JobRecord
    from nemotron.execution.slurm_backend import SlurmJobControl

# streams a job's log until it ends and returns its state (the CLI's, with its progress bar)
Follow = Callable[["LocalBackend | SlurmJobControl", "JobRecord"], JobState]


def new_pipe_record(plan: PipePlan, profile: str | None, backend: str, argv: tuple[str, ...]) -> PipeRecord:
    """The record of a pipe about to start: every stage as planned."""
    stages = tuple(
        PipeStageRecord(
            name=stage.name,
            stage=f"{stage.stage.spec.family}/{stage.stage.spec.key}",
            fingerprint=stage.fingerprint,
            action=stage.action,
            reason=stage.reason,
            state="skipped" if stage.action == SKIP else "planned" if stage.action == RUN else "not selected",
            artifact=stage.done if stage.action == SKIP else None,
            output=stage.output_ref,
        )
        for stage in plan.stages
    )
    return PipeRecord(
        name=new_job_name(plan.pipe.family, "pipe"),
        config=str(plan.pipe.path),
        profile=profile,
        backend=backend,
        started_at=datetime.now().isoformat(timespec="seconds"),
        code=plan.code,
        argv=argv,
        stages=stages,
    )


def run_pipe_locally(
    plan: PipePlan, record: PipeRecord, follow: Follow, announce: Callable[[str], None]
) -> tuple[int, PipeRecord]:
    """Run the plan's stages in order; (exit code, final record). Ctrl-C cancels the running stage (130)."""
    save_pipe_record(record)
    for stage in plan.to_run:
        announce(f"stage {stage.name} ({stage.reason}): starting")
        record, code = _run_stage(stage, record, follow)
        save_pipe_record(record)
        if code:
            for later in plan.to_run[plan.to_run.index(stage) + 1 :]:
                record = record.with_stage(replace(record.stage(later.name), state="not run"))
            save_pipe_record(record)
            return code, record
    return 0, record


def _run_stage(stage: StagePlan, record: PipeRecord, follow: Follow) -> tuple[PipeRecord, int]:
    spec = stage.stage.spec
    request = LaunchRequest(spec, stage.stage.config, stage.overrides, record.profile, record.argv, stage.fingerprint)
    started = time.monotonic()
    try:  # the launch checks of a stage whose inputs did not exist when the pipe started
        prepared = prepare(request)
    except NemotronError:
        failed = replace(record.stage(stage.name), state="FAILED (launch check)")
        save_pipe_record(record.with_stage(failed))
        raise
    backend = backend_for(prepared.profile, record.profile)
    job = backend.submit(prepared.job)
    submitted = time.time()
    control = control_for(job)
    entry = replace(record.stage(stage.name), state=JobState.RUNNING.value, job=job.name)
    save_pipe_record(record.with_stage(entry))
    try:
        state = follow(control, job)
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM under interrupts.sigterm_as_interrupt
        control.cancel(job)
        state = JobState.CANCELLED
        code = interrupt_exit_code(interrupt)
    else:
        code = state.exit_code
    entry = replace(
        entry,
        state=state.value,
        seconds=round(_ended(job, submitted) - submitted, 1),  # the job's own run: prepare and polling left out
        orchestration=round(time.monotonic() - started - (_ended(job, submitted) - submitted), 1),
        artifact=_published(prepared.env_file.artifacts_root, stage) if code == 0 else None,
        log=", ".join(control.log_paths(job)) or job.log_dir,
    )
    return record.with_stage(entry), code


def _ended(job: JobRecord, submitted: float) -> float:
    """When the local job's process ended: its exit-code file's time (now, when it left none)."""
    from pathlib import Path

    from nemotron.execution.local_backend import EXIT_FILE

    exit_file = Path(job.job_dir) / EXIT_FILE
    return max(exit_file.stat().st_mtime, submitted) if exit_file.exists() else time.time()


def _published(artifacts_root: str | None, stage: StagePlan) -> str | None:
    """The version the stage published with its fingerprint (None: it published nothing under it)."""
    from nemotron.artifacts import ArtifactError, FileRegistry, default_registry_root

    registry = FileRegistry(artifacts_root or default_registry_root())
    try:
        return registry.resolve(stage.output_ref).ref
    except ArtifactError:
        return None
