"""`nemotron jobs list|status|logs|cancel`: follow jobs after the submitting command has exited."""

from __future__ import annotations

import typer

from nemotron.cli.output import columns, console, fail, literal

app = typer.Typer(
    help="Follow and control jobs submitted with --run/--batch.\n\n"
    "Example: nemotron jobs status nano3-data-prep-pretrain-20261122-101500-a1b2",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("list")
def list_jobs(limit: int = typer.Option(20, "-n", "--limit", help="how many recent jobs to show")) -> None:
    """List recent jobs with their current state.\n\nExample: nemotron jobs list -n 5"""
    from nemotron.execution.launcher import control_for
    from nemotron.execution.records import list_records

    rows = [("NAME", "JOB ID", "STAGE", "PROFILE", "SUBMITTED", "STATE")]
    for record in list_records()[:limit]:
        try:
            state = control_for(record).status(record).value
        except Exception as err:  # one unreachable cluster must not hide the other jobs
            state = f"? ({err})"
        rows.append((record.name, record.job_id, record.stage, record.profile or "-", record.submitted_at, state))
    columns(rows)


@app.command()
def status(
    job: str = typer.Argument(..., help="job name or job id"),
    wait: bool = typer.Option(False, "--wait", help="wait until the job ends; exit 0 only if it succeeded"),
) -> None:
    """Show a job's state.\n\nExample: nemotron jobs status 42 --wait"""
    import time

    from nemotron.execution.launcher import control_for
    from nemotron.execution.records import find_record

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
    job: str = typer.Argument(..., help="job name or job id"),
    follow: bool = typer.Option(
        False, "-f", "--follow", help="keep streaming until the job ends; exit with its outcome"
    ),
) -> None:
    """Print a job's log.\n\nExample: nemotron jobs logs nano3-data-prep-pretrain-20261122-101500-a1b2 -f"""
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
        raise typer.Exit(state.exit_code)
    text, _ = control.read_log(record, {})
    if not text:
        fail(f"no log yet for {record.name} (state {control.status(record).value}) in {record.log_dir}")
        raise typer.Exit(1)
    sys.stdout.write(text)


@app.command()
def cancel(job: str = typer.Argument(..., help="job name or job id")) -> None:
    """Cancel a pending or running job.\n\nExample: nemotron jobs cancel 42"""
    from nemotron.execution.launcher import control_for
    from nemotron.execution.records import find_record

    record = find_record(job)
    control_for(record).cancel(record)
    console.print(f"cancelled {record.name} ({record.job_id})")
