"""Read the scalar curves a run wrote as TensorBoard events (train/loss, validation/loss, train/lr, ...)."""

from __future__ import annotations

import warnings
from pathlib import Path

Curves = dict[str, list[tuple[int, float]]]  # tag -> (step, value), in step order

TENSORBOARD_SUBDIR = "tensorboard"


def read_curves(run_folder: Path) -> Curves:
    """Every scalar tag of the run's events (all event files of `run_folder/tensorboard`, a resumed run's
    included); a value logged again for a step (after a resume) replaces the earlier one."""
    folder = run_folder / TENSORBOARD_SUBDIR
    if not folder.is_dir():
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, dict[int, float]] = {}
    for events in sorted(folder.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            for event in accumulator.Scalars(tag):
                curves.setdefault(tag, {})[int(event.step)] = float(event.value)
    return {tag: sorted(points.items()) for tag, points in sorted(curves.items())}
