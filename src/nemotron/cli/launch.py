"""What a stage command does once its options are parsed: preview, run locally, or submit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nemotron.cli.output import console, fail, literal
from nemotron.stages.catalog import StageSpec

if TYPE_CHECKING:
    from nemotron.execution.local_backend import LocalBackend
    from nemotron.execution.records import JobRecord
    from nemotron.execution.slurm_backend import SlurmJobControl


def launch_stage(
    stage: StageSpec,
    config: str | None,
    overrides: list[str],
    profile: str | None,
    *,
    attached: bool,
    dry_run: bool,
    argv: tuple[str, ...],
) -> int:
    """Returns the process exit code: 0 only when the job succeeded (or the preview was shown)."""
    from nemotron.execution.launcher import LaunchRequest, backend_for, control_for, prepare

    request = LaunchRequest(stage, config, tuple(overrides), profile, argv)
    prepared = prepare(request)
    if dry_run:
        from nemotron.execution.dry_run import render_dry_run

        literal(render_dry_run(prepared))
        return 0
    backend = backend_for(prepared.profile, profile)
    record = backend.submit(prepared.job)
    where = "local process" if record.backend == "local" else "Slurm job"
    literal(f"submitted {record.name} as {where} {record.job_id}" + (f" (profile {profile})" if profile else ""))
    if not attached:
        console.print("follow it with:")
        for verb in ("status", "logs --follow", "cancel"):
            literal(f"  nemotron jobs {verb} {record.name}")
        return 0
    return _attach(control_for(record), record, cancel_on_interrupt=record.backend == "local")


def _attach(control: LocalBackend | SlurmJobControl, record: JobRecord, *, cancel_on_interrupt: bool) -> int:
    from nemotron.cli.progress_writer import follow_to_stdout
    from nemotron.interrupts import interrupt_exit_code, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():  # SIGTERM as Ctrl-C: a local job is cancelled, a Slurm one named
            state = follow_to_stdout(control, record)
    except KeyboardInterrupt as interrupt:
        if cancel_on_interrupt:
            control.cancel(record)
            fail(f"interrupted; job {record.name} cancelled")
        else:
            fail(f"interrupted; job {record.name} keeps running: nemotron jobs cancel {record.name}")
        return interrupt_exit_code(interrupt)
    if state.exit_code == 0:
        console.print(f"job {record.name} {state.value}")
        return 0
    logs = ", ".join(control.log_paths(record)) or record.log_dir
    fail(f"job {record.name} ended {state.value}; log: {logs}")
    return state.exit_code
