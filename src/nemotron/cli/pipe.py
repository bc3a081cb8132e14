"""`nemotron nano3 pipe`: the whole chain as one command; prints the plan, runs what is not done, sums it up."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from nemotron.cli.output import columns, console, fail, literal
from nemotron.cli.stage_command import STAGE_COMMANDS

if TYPE_CHECKING:
    from nemotron.env import Profile
    from nemotron.pipeline.plan import PipePlan
    from nemotron.pipeline.records import PipeRecord

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}
OPTIONS = "-c/--config, -r/--run, -b/--batch, -d/--dry-run, --from, --to, --only, --force"

EPILOG = (
    "Examples (the tiny chain locally; its plan; change one stage, which reruns it and what follows; only SFT):"
    "\n\n  nemotron nano3 pipe -c tiny"
    "\n\n  nemotron nano3 pipe -c tiny --dry-run"
    "\n\n  nemotron nano3 pipe -c tiny pretrain.train.train_iters=100"
    "\n\n  nemotron nano3 pipe -c tiny --only sft --force sft"
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
        plan, profile = _plan(family, config, overrides, start, stop, only, force, run or batch)
        print_plan(plan)
        if dry_run:
            return
        if profile.executor != "local":
            fail(
                f"profile {run or batch!r} uses executor {profile.executor!r}: a pipe runs locally for now "
                "(Slurm pipes come next); run each stage with `nemotron nano3 STAGE --batch PROFILE`"
            )
            raise typer.Exit(2)
        raise typer.Exit(_run_locally(plan, run or batch))

    command.__doc__ = (
        f"Run the {family} chain (data prep -> pretrain -> SFT -> RL -> eval) as one command.\n\n"
        "Skips each stage whose output already exists with the same fingerprint; locally the stages run in "
        "order and the first failure stops the pipe."
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
) -> tuple[PipePlan, Profile]:
    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.env import Profile, find_env_file, load_env_file
    from nemotron.pipeline.pipe_config import load_pipe_config, split_overrides
    from nemotron.pipeline.plan import plan_pipe
    from nemotron.pipeline.selection import select_stages

    pipe = load_pipe_config(config, family)
    per_stage = split_overrides(overrides, pipe)
    selection = select_stages(pipe.names, start=start, stop=stop, only=only, force=force)
    env_file = load_env_file(find_env_file())
    profile = env_file.profile(profile_name) if profile_name else Profile.default_local()
    registry = FileRegistry(env_file.artifacts_root or default_registry_root())
    return plan_pipe(pipe, per_stage, selection, registry), profile


def print_plan(plan: PipePlan) -> None:
    """The plan as a table (stage, fingerprint, action and why, artifact), then each stage's command line."""
    literal(
        f"pipe {plan.pipe.path} (fingerprints cover config, inputs and {plan.code}; "
        f"code_version={plan.pipe.code_version})"
    )
    rows = [("STAGE", "FINGERPRINT", "ACTION", "ARTIFACT", "WHY")]
    for stage in plan.stages:
        rows.append((stage.name, stage.fingerprint, stage.action, stage.done or stage.output_ref, stage.reason))
    columns(rows)
    running = [stage.name for stage in plan.to_run]
    for stage in plan.to_run:
        upstream = sorted((name for name in stage.upstream if name in running), key=running.index)
        after = f" (after {', '.join(upstream)})" if upstream else ""
        literal(f"\n{stage.name}{after}:")
        spec = stage.stage.spec
        command = STAGE_COMMANDS.get(f"{spec.family}/{spec.key}", f"nemotron {spec.family} {spec.key}")
        literal(f"  {command} {shlex.join(['-c', stage.stage.config, *stage.overrides])}")


def _run_locally(plan: PipePlan, profile_name: str | None) -> int:
    from nemotron.cli.progress_writer import follow_to_stdout
    from nemotron.execution.pipe_local import new_pipe_record, run_pipe_locally

    if not plan.to_run:
        console.print("every stage is done: nothing to run (--force STAGE|all reruns)")
        return 0
    record = new_pipe_record(plan, profile_name, "local", tuple(sys.argv[1:]))
    literal(f"\npipe {record.name}: {len(plan.to_run)} of {len(plan.stages)} stages to run")
    code, record = run_pipe_locally(plan, record, follow_to_stdout, lambda text: literal(f"\n== {text}"))
    print_summary(record)
    if code:
        failed = next(s for s in record.stages if s.state not in ("skipped", "not selected", "COMPLETED"))
        fail(f"pipe {record.name}: stage {failed.name} ended {failed.state}; log: {failed.log}")
    return code


def print_summary(record: PipeRecord) -> None:
    """Per stage: state, time, tokens, final loss or measure, artifact."""
    from nemotron.artifacts import ArtifactError, FileRegistry, default_registry_root
    from nemotron.env import find_env_file, load_env_file
    from nemotron.pipeline.summary import artifact_summary

    registry = FileRegistry(load_env_file(find_env_file()).artifacts_root or default_registry_root())
    rows = [("STAGE", "STATE", "TIME", "TOKENS", "RESULT", "ARTIFACT")]
    total = 0.0
    for stage in record.stages:
        tokens, result = "-", "-"
        if stage.artifact:
            try:
                tokens, result = artifact_summary(registry.resolve(stage.artifact))
            except ArtifactError:
                result = "(artifact not readable)"
        seconds = stage.seconds or 0.0
        total += seconds
        time_text = f"{seconds / 60:.1f} min" if stage.seconds is not None else "-"
        rows.append((stage.name, stage.state, time_text, tokens, result, stage.artifact or "-"))
    literal(f"\npipe {record.name} ({total / 60:.1f} min in stages):")
    columns(rows)
