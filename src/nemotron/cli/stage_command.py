"""Builds a Typer command for a stage: -c/--config, -r/--run, -b/--batch, -d/--dry-run, overrides."""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from nemotron.cli.help_text import available_configs, available_profiles
from nemotron.stages.catalog import StageSpec

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}


def stage_epilog(stage: StageSpec, usage: str) -> str:
    return (
        f"Built-in configs (-c NAME): {available_configs(stage)}.\n\n"
        f"Profiles (-r/-b PROFILE): {available_profiles()}.\n\n"
        "Examples (run locally; preview a Slurm job; run on Slurm attached; detached):\n\n"
        f"  {usage} -c tiny\n\n"
        f"  {usage} -c tiny --dry-run -b my-cluster\n\n"
        f"  {usage} -c tiny --run my-cluster {stage.example_override}\n\n"
        f"  {usage} -c path/to/my.yaml --batch my-cluster\n\n"
        "Overrides use Hydra's grammar: a.b=1, +new.key=x, ++a.b=y, ~a.b, l=[1,2], s='a b'."
    )


def make_stage_command(stage: StageSpec, usage: str) -> Callable[..., None]:
    def command(
        ctx: typer.Context,
        config: str | None = typer.Option(
            None, "-c", "--config", help=f"config NAME or PATH (default: {stage.default_config})"
        ),
        run: str | None = typer.Option(
            None, "-r", "--run", help="submit with env.toml PROFILE, stream logs, exit with the job's outcome"
        ),
        batch: str | None = typer.Option(
            None, "-b", "--batch", help="submit with env.toml PROFILE and return the job id"
        ),
        dry_run: bool = typer.Option(
            False, "-d", "--dry-run", help="show resolved config, executor and sbatch script; submit nothing"
        ),
    ) -> None:
        from nemotron.cli.launch import launch_stage

        overrides = list(ctx.args)
        unknown = [a for a in overrides if a.startswith("-")]
        if unknown:
            raise typer.BadParameter(
                f"unknown option {unknown[0]!r}; options are -c/--config, -r/--run, -b/--batch, -d/--dry-run"
            )
        if run and batch:
            raise typer.BadParameter(
                "--run and --batch are exclusive: --run waits for the job, --batch returns at once"
            )
        code = launch_stage(
            stage, config, overrides, run or batch, attached=batch is None, dry_run=dry_run, argv=tuple(sys.argv[1:])
        )
        raise typer.Exit(code)

    command.__doc__ = f"{stage.title}.\n\nRuns locally when no profile is given."
    return command
