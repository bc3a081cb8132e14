"""`nemotron runs list|show|plot`: the run folders of training and eval stages, their metrics and curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nemotron.cli.output import columns, console, literal

if TYPE_CHECKING:
    from nemotron.artifacts import FileRegistry

app = typer.Typer(
    help="Runs (runs/<run_name> next to the artifact registry): metrics from their TensorBoard events.\n\n"
    "Example: nemotron runs plot nano3-sft-tiny nano3-rl-tiny -o curves.png",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _locations() -> tuple[Path, FileRegistry]:
    """The runs folder and the artifact registry it sits next to (env.toml's artifacts_root or the default)."""
    from nemotron.artifacts import FileRegistry, default_registry_root
    from nemotron.env import find_env_file, load_env_file
    from nemotron.paths import runs_root

    artifacts_root = load_env_file(find_env_file()).artifacts_root or default_registry_root()
    return runs_root(artifacts_root), FileRegistry(artifacts_root)


@app.command("list")
def list_runs(limit: int = typer.Option(20, "-n", "--limit", help="how many recent runs to show")) -> None:
    """List runs, newest first, with their last step and final loss or reward.\n\nExample: nemotron runs list"""
    from nemotron.runs.run_folders import list_runs as find_runs

    root, _ = _locations()
    runs = find_runs(root)
    if not runs:
        console.print(f"no runs with metrics in {root}")
        return
    rows = [("RUN", "UPDATED", "STEPS", "LAST")]
    rows += [
        (run.name, run.updated, str(run.steps if run.steps is not None else "-"), run.headline())
        for run in runs[:limit]
    ]
    columns(rows)


@app.command()
def show(run: str = typer.Argument(..., help="run name (its folder under runs/) or model artifact")) -> None:
    """Show a run's folder, checkpoints and, per curve, its points, first and last value.

    Example: nemotron runs show nano3-sft-tiny"""
    from nemotron.runs.events import read_curves
    from nemotron.runs.run_folders import find_run

    root, registry = _locations()
    folder = find_run(root, run, registry)
    curves = read_curves(folder)
    literal(f"run {run}: {folder}")
    checkpoints = (
        sorted(p.name for p in (folder / "checkpoints").glob("iter_*")) if (folder / "checkpoints").is_dir() else []
    )
    literal(f"checkpoints: {', '.join(checkpoints) or 'none'}")
    rows = [("CURVE", "POINTS", "FIRST", "LAST")]
    for tag, points in curves.items():
        (first_step, first), (last_step, last) = points[0], points[-1]
        rows.append((tag, str(len(points)), f"{first:.4g} @ {first_step}", f"{last:.4g} @ {last_step}"))
    columns(rows)


@app.command()
def plot(
    runs: list[str] = typer.Argument(..., help="run names or model artifacts (their runs)"),
    out: Path = typer.Option(..., "-o", "--out", help="the PNG file to write"),
) -> None:
    """Plot runs' loss, validation loss, learning rate and reward curves on one figure (needs matplotlib).

    Example: nemotron runs plot nano3-pretrain-tiny nano3-sft-tiny -o curves.png"""
    from nemotron.runs.events import read_curves
    from nemotron.runs.plot import plot_runs
    from nemotron.runs.run_folders import find_run

    root, registry = _locations()
    curves = {name: read_curves(find_run(root, name, registry)) for name in dict.fromkeys(runs)}
    panels = plot_runs(curves, out)
    console.print(f"wrote {out} ({', '.join(panels)}; runs {', '.join(curves)})")
