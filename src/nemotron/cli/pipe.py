"""`nemotron nano3 pipe`: the whole chain as one command; prints the plan, runs what is not done, sums it up."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from nemotron.cli.output import console, fail, literal
from nemotron.cli.pipe_report import print_plan, print_summary

if TYPE_CHECKING:
    from nemotron.artifacts import FileRegistry
    from nemotron.env import Profile
    from nemotron.pipeline.plan import PipePlan

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}
OPTIONS = "-c/--config, -r/--run, -b/--batch, -d/--dry-run, --from, --to, --only, --force"

EPILOG = (
    "Examples (the tiny chain locally; its plan; change one stage, which reruns it and what follows; only SFT):"
    "\n\n  nemotron nano3 pipe -c tiny"
    "\n\n  nemotron nano3 pipe -c tiny --dry-run"
    "\n\n  nemotron nano3 pipe -c tiny pretrain.train.train_iters=100"
    "\n\n  nemotron nano3 pipe -c tiny --only sft --force sft"
    "\n\n  nemotron nano3 pipe --batch my-cluster        (every stage to run as one Slurm submission)"
    "\n\n  nemotron jobs status PIPE --wait"
    "\n\nOverrides start with the stage's name in the pipe (STAGE.key=value); Hydra's grammar follows: "
    "sft.a.b=1, +sft.new.key=x, ~sft.a.b. A stage whose artifact with the same fingerprint (config, "
    "inputs, code version) exists is skipped."
)


def make_pipe_command(family: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        config: str = typer.Option("default", "-c", "--config", help="pipe config NAME or PATH"),
        run: str | None = typer.Option(None, "-r", "--run", help="run with env.toml PROFILE, streaming logs"),
        batch: str | None = typer.Option(None, "-b", "--batch", help="submit with env.toml PROFILE and return"),
        dry_run: bool = typer.Option(False, "-d", "--dry-run", help="print the plan; run nothing"),
        start: str | None = typer.Option(None, "--from", help="first stage to run (earlier ones are reused)"),
        stop: str | None = typer.Option(None, "--to", help="last stage to run"),
        only: str | None = typer.Option(None, "--only", help="run only these stages: STAGE[,STAGE]"),
        force: str | None = typer.Option(None, "--force", help="run these stages even when done: STAGE[,STAGE]|all"),
    ) -> None:
        overrides = tuple(ctx.args)
        unknown = [a for a in overrides if a.startswith("-")]
        if unknown:
            raise typer.BadParameter(f"unknown option {unknown[0]!r}; options are {OPTIONS}")
        if run and batch:
            raise typer.BadParameter("--run and --batch are exclusive: --run waits for the pipe, --batch returns")
        began = time.monotonic()  # the pipe's own cost counts from here: planning, checks, submission, following
        profile_name = run or batch
        plan, profile, registry = _plan(family, config, overrides, start, stop, only, force, profile_name)
        print_plan(plan)
        if not dry_run:
            plan.refuse_if_waiting()
        if profile.executor == "slurm" and profile_name:
            from nemotron.cli.pipe_slurm import preview_slurm_pipe, run_slurm_pipe

            if dry_run:
                preview_slurm_pipe(plan, profile_name)
                return
            raise typer.Exit(run_slurm_pipe(plan, profile_name, registry, attached=batch is None))
        if dry_run:
            return
        if profile.executor != "local":
            fail(f"profile {profile_name!r} uses executor {profile.executor!r}; a pipe runs locally or on Slurm")
            raise typer.Exit(2)
        raise typer.Exit(_run_locally(plan, profile_name, registry, began))

    command.__doc__ = (
        f"Run the {family} chain (data prep -> pretrain -> SFT -> RL -> eval) as one command.\n\n"
        "Skips each stage whose output already exists with the same fingerprint; locally the stages run in "
        "order and the first failure stops the pipe; on Slurm all are submitted at once with afterok "
        "dependencies, a failed stage cancelling the stages after it."
    )
    return command


def _plan(
    family: str,
    config: str,
    overrides: tuple[str, ...],
    start: str | None,
    stop: str | None,
    only: str | None,
    force: str | None,
    profile_name: str | None,
) -> tuple[PipePlan, Profile, FileRegistry]:
    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.env import Profile, find_env_file, load_env_file
    from nemotron.execution.pipe_status import refresh_pipe_records
    from nemotron.pipeline.pipe_config import load_pipe_config, split_overrides
    from nemotron.pipeline.plan import plan_pipe
    from nemotron.pipeline.selection import select_stages

    pipe = load_pipe_config(config, family)
    per_stage = split_overrides(overrides, pipe)
    selection = select_stages(pipe.names, start=start, stop=stop, only=only, force=force)
    env_file = load_env_file(find_env_file())
    profile = env_file.profile(profile_name) if profile_name else Profile.default_local()
    registry = FileRegistry(env_file.artifacts_root or default_registry_root())
    refresh_pipe_records()  # what earlier pipes' jobs did since: failed stages, stages still running
    return plan_pipe(pipe, per_stage, selection, registry), profile, registry


def _run_locally(plan: PipePlan, profile_name: str | None, registry: FileRegistry, began: float) -> int:
    from nemotron.cli.progress_writer import follow_to_stdout
    from nemotron.execution.pipe_local import new_pipe_record, run_pipe_locally
    from nemotron.interrupts import sigterm_as_interrupt

    if not plan.to_run:
        console.print("every stage is done: nothing to run (--force STAGE|all reruns)")
        return 0
    record = new_pipe_record(plan, profile_name, "local", tuple(sys.argv[1:]))
    literal(f"\npipe {record.name}: {len(plan.to_run)} of {len(plan.stages)} stages to run")
    with sigterm_as_interrupt():  # SIGTERM cancels the running stage, as Ctrl-C does
        code, record = run_pipe_locally(plan, record, follow_to_stdout, lambda text: literal(f"\n== {text}"))
    print_summary(record, registry, time.monotonic() - began)
    if code:
        failed = next(s for s in record.stages if s.state not in ("skipped", "not selected", "COMPLETED"))
        fail(f"pipe {record.name}: stage {failed.name} ended {failed.state}; log: {failed.log}")
    return code
