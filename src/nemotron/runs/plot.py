"""Several runs' curves on one figure (matplotlib, the `plot` extra): loss, validation loss, lr, reward."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nemotron.errors import NemotronError
from nemotron.runs.events import Curves

# (panel title, the tags drawn in it): a panel appears when some run has one of its tags
PANELS = (
    ("training loss", ("train/loss",)),
    ("validation loss", ("validation/loss",)),
    ("learning rate", ("train/lr",)),
    ("reward (RL)", ("train/reward_mean", "validation/held_out_accuracy")),
)


def plot_runs(runs: dict[str, Curves], out: Path) -> list[str]:
    """Draw each panel that has data, one line per run (and tag); write `out` (PNG) atomically. The titles drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NemotronError(
            "nemotron runs plot needs matplotlib: pip install 'nemotron[plot]' (or pip install matplotlib)"
        ) from None
    panels = [(title, tags) for title, tags in PANELS if any(tag in curves for curves in runs.values() for tag in tags)]
    if not panels:
        raise NemotronError(f"runs {', '.join(runs)} logged none of: {', '.join(t for _, ts in PANELS for t in ts)}")
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for axis, (title, tags) in zip(axes[0], panels, strict=True):
        for name, curves in runs.items():
            for tag in tags:
                if tag in curves:
                    steps, values = zip(*curves[tag], strict=True)
                    label = name if len(tags) == 1 else f"{name} {tag.split('/')[-1]}"
                    axis.plot(steps, values, label=label, marker="." if len(steps) < 30 else None)
        axis.set_title(title)
        axis.set_xlabel("step")
        if title == "learning rate":
            axis.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        axis.legend(fontsize="small")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=100)
        os.replace(temporary, out)
    finally:
        plt.close(figure)
        if os.path.exists(temporary):
            os.unlink(temporary)
    return [title for title, _ in panels]
