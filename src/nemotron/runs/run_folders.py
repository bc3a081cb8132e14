"""The run folders under `runs/`: which exist, and one line of what each holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from nemotron.errors import NemotronError
from nemotron.runs.events import Curves, read_curves
from nemotron.suggest import did_you_mean

if TYPE_CHECKING:
    from nemotron.artifacts.resolution import Resolver

# the curve a run's "final" value is read from, first found wins (pretrain/SFT: loss; RL: reward)
HEADLINE_TAGS = ("validation/loss", "train/loss", "validation/held_out_accuracy", "train/reward_mean")


class RunNotFoundError(NemotronError):
    """No run folder of that name; the message lists the runs there are."""


@dataclass(frozen=True)
class RunSummary:
    """A run folder and the last value of each curve it logged."""

    name: str
    folder: Path
    updated: str  # when its newest file was written
    last: dict[str, tuple[int, float]]  # tag -> (step, value) of the last point

    @property
    def steps(self) -> int | None:
        return max((step for step, _ in self.last.values()), default=None)

    def headline(self) -> str:
        """The last value of each headline curve it has, e.g. 'train/loss 0.0541 @ 1000'."""
        shown = [f"{tag} {self.last[tag][1]:.4g} @ {self.last[tag][0]}" for tag in HEADLINE_TAGS if tag in self.last]
        return "; ".join(shown) or "-"


def list_runs(root: Path) -> list[RunSummary]:
    """Every run folder under `root` that logged events, newest first."""
    if not root.is_dir():
        return []
    runs = [summarize(folder) for folder in root.iterdir() if (folder / "tensorboard").is_dir()]
    return sorted(runs, key=lambda run: (run.updated, run.name), reverse=True)


def find_run(root: Path, name: str, registry: Resolver | None = None) -> Path:
    """The folder of run `name`, or of the run that trained model artifact `name` (`nano3-sft-tiny`,
    `nano3-sft-tiny:v2`: a pipe's run folders carry a fingerprint); RunNotFoundError names the closest runs."""
    folder = root / name
    if "/" not in name and (folder / "tensorboard").is_dir():
        return folder
    trained = _run_of_artifact(root, name, registry) if registry is not None else None
    if trained is not None:
        return trained
    names = sorted(run.name for run in list_runs(root))
    raise RunNotFoundError(
        f"no run or model artifact {name!r} with metrics in {root}."
        + (did_you_mean(name, names, sentence=True) or "")
        + f" Runs: {', '.join(names) or 'none'} (nemotron runs list)"
    )


def _run_of_artifact(root: Path, name: str, registry: Resolver) -> Path | None:
    """The run folder under `root` whose checkpoint the artifact `name` was published from, if any."""
    from nemotron.artifacts import ArtifactError

    try:
        source = registry.resolve(name).metadata.get("source_checkpoint")
    except ArtifactError:
        return None
    if not isinstance(source, str):
        return None
    path = Path(source).resolve()
    root = root.resolve()
    if not path.is_relative_to(root) or path == root:
        return None
    folder = root / path.relative_to(root).parts[0]
    return folder if (folder / "tensorboard").is_dir() else None


def summarize(folder: Path, curves: Curves | None = None) -> RunSummary:
    curves = read_curves(folder) if curves is None else curves
    newest = max((p.stat().st_mtime for p in (folder / "tensorboard").glob("*")), default=folder.stat().st_mtime)
    updated = datetime.fromtimestamp(newest).isoformat(timespec="seconds")
    return RunSummary(folder.name, folder, updated, {tag: points[-1] for tag, points in curves.items() if points})
