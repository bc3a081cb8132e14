"""`nemotron jobs list|status|logs|cancel`: follow jobs after the submitting command has exited."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from nemotron.cli.output import columns, console, fail, literal
from nemotron.execution.records import JobRecord

if TYPE_CHECKING:
    from nemotron.pipeline.records import PipeRecord

app = typer.Typer(
    help="Follow and control jobs submitted with --run/--batch.\n\n"
    "Example: nemotron jobs status nano3-data-prep-pretrain-20261122-101500-a1b2",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("list")
def list_jobs(limit: int = typer.Option(20, "-n", "--limit", help="how many recent jobs and pipes to show")) -> None:
    """List recent jobs with their current state; a pipe is one entry, its stages under it.

    Example: nemotron jobs list -n 5"""
    from nemotron.execution.launcher import control_for
    from nemotron.execution.pipe_status import pipe_job_names, pipe_state, stage_jobs
    from nemotron.execution.records import list_records
    from nemotron.pipeline.records import list_pipe_records

    in_pipes = pipe_job_names()
    entries: list[tuple[str, JobRecord | PipeRecord]] = [
        (r.submitted_at, r) for r in list_records() if r.name not in in_pipes
    ]
    entries += [(p.started_at, p) for p in list_pipe_records() if any(s.job for s in p.stages)]
    rows = [("NAME", "JOB ID", "STAGE", "PROFILE", "SUBMITTED", "STATE")]
    for _, entry in sorted(entries, key=lambda e: e[0], reverse=True)[:limit]:
        if isinstance(entry, JobRecord):
            try:
                state = control_for(entry).status(entry).value
            except Exception as err:  # one unreachable cluster must not hide the other jobs
                state = f"? ({err})"
            rows.append((entry.name, entry.job_id, entry.stage, entry.profile or "-", entry.submitted_at, state))
            continue
        stages = stage_jobs(entry)
        ran = sum(1 for s in stages if s.job)
        rows.append(
            (
                entry.name,
                "-",
                f"pipe: {ran} of {len(stages)} stages",
                entry.profile or "-",
                entry.started_at,
                pipe_state(stages).value,
            )
        )
        for stage in stages:
            job_id = stage.job.job_id if stage.job else "-"
            name = f"  {stage.stage.name}" + (f": {stage.job.name}" if stage.job else "")
            rows.append((name, job_id, stage.stage.stage, entry.profile or "-", "", stage.shown))
    columns(rows)


def _pipe(key: str) -> PipeRecord | None:
    from nemotron.pipeline.records import list_pipe_records

    return next((p for p in list_pipe_records() if p.name == key), None)


@app.command()
def status(
    job: str = typer.Argument(..., help="job name, job id or pipe name"),
    wait: bool = typer.Option(False, "--wait", help="wait until the job ends; exit 0 only if it succeeded"),
) -> None:
    """Show a job's state (a pipe's: each stage's).\n\nExample: nemotron jobs status 42 --wait"""
    import time

    from nemotron.execution.launcher import control_for
    from nemotron.execution.records import find_record

    pipe = _pipe(job)
    if pipe is not None:
        raise typer.Exit(_pipe_status(pipe, wait))
    record = find_record(job)
    control = control_for(record)
    state = control.status(record)
    while wait and not state.is_terminal:
        time.sleep(2)
        state = control.status(record)
    literal(f"{record.name}\t{record.job_id}\t{state.value}")
    raise typer.Exit(state.exit_code if wait else 0)


@app.command()
def logs(
    job: str = typer.Argument(..., help="job name, job id or pipe name"),
    follow: bool = typer.Option(
        False, "-f", "--follow", help="keep streaming until the job ends; exit with its outcome"
    ),
) -> None:
    """Print a job's log (a pipe's: each stage's in order).

    Example: nemotron jobs logs nano3-data-prep-pretrain-20261122-101500-a1b2 -f"""
    pipe = _pipe(job)
    if pipe is not None:
        raise typer.Exit(_pipe_logs(pipe, follow))
    raise typer.Exit(_job_log(job, follow))


def _pipe_logs(pipe: PipeRecord, follow: bool) -> int:
    """Each stage job's log under a header, in pipe order; following, stop at the first that fails."""
    from nemotron.execution.records import list_records

    jobs = {record.name: record for record in list_records()}
    for stage in pipe.stages:
        if stage.job is None or stage.job not in jobs:
            continue
        literal(f"== {stage.name}: {stage.job}")
        code = _job_log(stage.job, follow)
        if code and follow:
            return code
    return 0


def _job_log(job: str, follow: bool) -> int:
    import sys

    from nemotron.execution.launcher import control_for
    from nemotron.execution.records import find_record

    record = find_record(job)
    control = control_for(record)
    if follow:
        from nemotron.cli.progress_writer import follow_to_stdout

        state = follow_to_stdout(control, record)
        if state.exit_code:
            fail(f"job {record.name} ended {state.value}")
        return state.exit_code
    text, _ = control.read_log(record, {})
    if not text:
        fail(f"no log yet for {record.name} (state {control.status(record).value}) in {record.log_dir}")
        return 1
    sys.stdout.write(text)
    return 0


@app.command()
def cancel(job: str = typer.Argument(..., help="job name, job id or pipe name")) -> None:
    """Cancel a pending or running job (a pipe's: every stage job still pending or running).

    Example: nemotron jobs cancel 42"""
    from nemotron.execution.launcher import control_for
    from nemotron.execution.records import find_record

    pipe = _pipe(job)
    if pipe is not None:
        from nemotron.execution.pipe_status import cancel_pipe

        for name in cancel_pipe(pipe):
            console.print(f"cancelled {name} (pipe {pipe.name})")
        return
    record = find_record(job)
    control_for(record).cancel(record)
    console.print(f"cancelled {record.name} ({record.job_id})")


def _pipe_status(pipe: PipeRecord, wait: bool) -> int:
    """Print each stage's state (after the pipe ended, with --wait); exit code 0 only if it completed."""
    import time

    from nemotron.execution.pipe_status import pipe_state, stage_jobs

    stages = stage_jobs(pipe)
    # every stage job, not only the pipe's state: a failed stage's dependents are cancelled by Slurm a moment later
    while wait and not all(stage.state is None or stage.state.is_terminal for stage in stages):
        time.sleep(2)
        stages = stage_jobs(pipe)
    state = pipe_state(stages)
    literal(f"{pipe.name}\tpipe\t{state.value}")
    for stage in stages:
        job = f"{stage.job.name}\t{stage.job.job_id}" if stage.job else "-\t-"
        literal(f"  {stage.stage.name}\t{job}\t{stage.shown}")
    return state.exit_code if wait else 0
