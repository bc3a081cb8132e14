"""Builds a Typer command for a stage: -c/--config, -r/--run, -b/--batch, -d/--dry-run, overrides."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from nemotron.cli.help_text import available_configs, available_profiles
from nemotron.stages.catalog import StageSpec

if TYPE_CHECKING:
    from nemotron.artifacts import ArtifactNotFoundError

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}

# "family/key" of each stage -> its command line ("nemotron nano3 data prep pretrain"), as registered
STAGE_COMMANDS: dict[str, str] = {}


def command_that_makes(artifact_name: str) -> str | None:
    """The command line whose run publishes `artifact_name` (a built-in config of a stage), or None."""
    from nemotron.stages.catalog import producer_of

    found = producer_of(artifact_name)
    if found is None:
        return None
    spec, config = found
    usage = STAGE_COMMANDS.get(f"{spec.family}/{spec.key}")
    return f"{usage} -c {config}" if usage else None


def with_command_that_makes(err: ArtifactNotFoundError) -> ArtifactNotFoundError:
    """A missing artifact of a `run.*` key, with the command that makes it when a built-in config does."""
    command = command_that_makes(err.name) if err.key else None
    if not command or not err.key:
        return err
    return err.at_key(err.key, f"make it with `{command}`, or set {err.key}=NAME:VERSION to an artifact that exists")


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
    STAGE_COMMANDS[f"{stage.family}/{stage.key}"] = usage

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
        from nemotron.artifacts import ArtifactNotFoundError
        from nemotron.cli.launch import launch_stage

        overrides = list(ctx.args)
        unknown = [a for a in overrides if a.startswith("-")]
        if unknown:
            raise typer.BadParameter(
                f"unknown option {unknown[0]!r}; options are -c/--config, -r/--run, -b/--batch, -d/--dry-run"
            )
        if config is not None and not config.strip():  # `-c ''` (e.g. an unset shell variable): not the default
            from nemotron.config.errors import ConfigError

            raise ConfigError(
                f"-c/--config is empty; pass a built-in config ({available_configs(stage)}) or a path to a YAML "
                f"file, or leave -c out for the default ({stage.default_config})"
            )
        if run and batch:
            raise typer.BadParameter(
                "--run and --batch are exclusive: --run waits for the job, --batch returns at once"
            )
        try:
            code = launch_stage(
                stage,
                config,
                overrides,
                run or batch,
                attached=batch is None,
                dry_run=dry_run,
                argv=tuple(sys.argv[1:]),
            )
        except ArtifactNotFoundError as err:  # a run.* reference: say which command makes the artifact
            raise with_command_that_makes(err) from None
        raise typer.Exit(code)

    command.__doc__ = f"{stage.title}.\n\nRuns locally when no profile is given."
    return command
