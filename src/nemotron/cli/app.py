"""The root `nemotron` command: recipe families and job control, with one-line errors."""

from __future__ import annotations

import typer

from nemotron.cli import artifacts, jobs, nano3, runs
from nemotron.errors import run_reporting_errors

app = typer.Typer(
    help="Multi-stage LLM training pipelines (data prep -> pretrain -> SFT -> RL) locally or on Slurm.\n\n"
    "Example: nemotron nano3 data prep pretrain -c tiny",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(nano3.app, name="nano3")
app.add_typer(jobs.app, name="jobs")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(runs.app, name="runs")


def main() -> None:
    """Console-script entry point: any NemotronError becomes one `error: ...` line and exit code 2."""
    run_reporting_errors(app, exit_code=2)
