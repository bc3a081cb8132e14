"""`nemotron nano3 pipe --run|--batch|--dry-run SLURM_PROFILE`: the stages to run as one Slurm submission."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from nemotron.cli.output import console, fail, literal

if TYPE_CHECKING:
    from nemotron.artifacts import FileRegistry
    from nemotron.pipeline.plan import PipePlan


def preview_slurm_pipe(plan: PipePlan, profile_name: str) -> None:
    """Each job the submission would make: its dependency and its full dry run (config, sbatch script)."""
    from nemotron.execution.dry_run import render_dry_run
    from nemotron.execution.pipe_slurm import prepare_pipe_jobs

    for job in prepare_pipe_jobs(plan, profile_name, tuple(sys.argv[1:])):
        waits = ", ".join(job.after)
        dependency = f"afterok on the jobs of {waits}, kill-on-invalid-dep=yes" if waits else "none"
        literal(f"\n=== stage {job.stage.name}: dependency {dependency} ===")
        literal(render_dry_run(job.prepared, waits_for_other_jobs=bool(job.after)))


def run_slurm_pipe(plan: PipePlan, profile_name: str, registry: FileRegistry, *, attached: bool) -> int:
    """Submit every stage to run at once; attached, follow them in order and exit with the pipe's outcome."""
    from nemotron.execution.pipe_local import new_pipe_record
    from nemotron.execution.pipe_slurm import prepare_pipe_jobs, submit_pipe

    if not plan.to_run:
        console.print("every stage is done: nothing to submit (--force STAGE|all reruns)")
        return 0
    argv = tuple(sys.argv[1:])
    jobs = prepare_pipe_jobs(plan, profile_name, argv)  # every launch check before anything is submitted
    record = new_pipe_record(plan, profile_name, "slurm", argv)
    record, submitted = submit_pipe(jobs, record)
    literal(f"\nsubmitted pipe {record.name} (profile {profile_name}) as one Slurm submission:")
    for job, job_record in zip(jobs, submitted, strict=True):
        after = f" after {', '.join(job.after)}" if job.after else ""
        literal(f"  {job.stage.name}: {job_record.name} = Slurm job {job_record.job_id}{after}")
    if not attached:
        console.print("follow it with:")
        for verb in ("status", "list", "cancel"):
            literal(f"  nemotron jobs {verb} {record.name}" if verb != "list" else "  nemotron jobs list")
        return 0
    return _follow(record.name, submitted, registry)


def _follow(pipe: str, submitted: list, registry: FileRegistry) -> int:
    from nemotron.cli.progress_writer import follow_to_stdout
    from nemotron.execution.launcher import control_for

    for job in submitted:
        literal(f"\n== {job.name} (Slurm job {job.job_id})")
        control = control_for(job)
        try:
            state = follow_to_stdout(control, job)
        except KeyboardInterrupt:
            fail(f"interrupted; pipe {pipe} keeps running: nemotron jobs cancel {pipe}")
            return 130
        if state.exit_code:
            logs = ", ".join(control.log_paths(job)) or job.log_dir
            fail(f"pipe {pipe}: {job.name} ended {state.value}; log: {logs}; the stages after it are cancelled")
            return state.exit_code
    from nemotron.cli.pipe_report import print_summary
    from nemotron.execution.pipe_status import refresh_pipe_records
    from nemotron.pipeline.records import find_pipe_record

    refresh_pipe_records()
    print_summary(find_pipe_record(pipe), registry)
    console.print(f"pipe {pipe} COMPLETED")
    return 0
