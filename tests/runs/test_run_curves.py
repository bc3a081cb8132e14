"""Run folders: curves read back from real TensorBoard event files (torch's SummaryWriter, as training writes
them), summaries, finding a run by name or by the model artifact it published, and the plot."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron.artifacts import ArtifactKind, FileRegistry, Lineage
from nemotron.errors import NemotronError
from nemotron.runs.events import read_curves
from nemotron.runs.plot import plot_runs
from nemotron.runs.run_folders import RunNotFoundError, find_run, list_runs, summarize


def write_events(folder: Path, points: dict[str, list[tuple[int, float]]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(folder / "tensorboard"))
    for tag, values in points.items():
        for step, value in values:
            writer.add_scalar(tag, value, step)
    writer.close()


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    write_events(root / "sft", {"train/loss": [(10, 2.0), (20, 1.0)], "validation/loss": [(0, 3.0), (20, 1.5)]})
    write_events(root / "rl", {"train/reward_mean": [(1, 0.5), (2, 0.6)], "validation/held_out_accuracy": [(0, 0.7)]})
    (root / "empty").mkdir()  # no events: not a run with metrics
    return root


def test_curves_of_a_resumed_run_join_and_a_relogged_step_replaces_the_earlier_value(tmp_path):
    import time

    write_events(tmp_path / "run", {"train/loss": [(1, 5.0), (2, 4.0)]})
    time.sleep(0.01)
    write_events(tmp_path / "run", {"train/loss": [(2, 3.5), (3, 3.0)]})  # resumed from step 1
    assert read_curves(tmp_path / "run") == {"train/loss": [(1, 5.0), (2, 3.5), (3, 3.0)]}


def test_runs_are_listed_with_their_last_values(runs):
    found = {run.name: run for run in list_runs(runs)}
    assert set(found) == {"sft", "rl"}
    assert found["sft"].steps == 20 and found["sft"].headline() == "validation/loss 1.5 @ 20; train/loss 1 @ 20"
    assert found["rl"].headline() == "validation/held_out_accuracy 0.7 @ 0; train/reward_mean 0.6 @ 2"
    assert summarize(runs / "sft").last["train/loss"] == (20, 1.0)


def test_a_run_is_found_by_name_or_by_the_model_artifact_it_published(runs, tmp_path):
    registry = FileRegistry(tmp_path / "artifacts")
    with registry.staging("nano3-sft-tiny") as staging:
        (staging.path / "x").write_text("x")
        registry.publish(
            staging,
            kind=ArtifactKind.MODEL_CHECKPOINT,
            lineage=Lineage(stage="sft"),
            metadata={"step": 20, "source_checkpoint": str(runs / "sft" / "checkpoints" / "iter_0000020")},
            files={"checkpoint": "x"},
        )
    assert find_run(runs, "rl") == runs / "rl"
    assert find_run(runs, "nano3-sft-tiny", registry) == runs / "sft"
    with pytest.raises(RunNotFoundError, match=r"no run or model artifact 'sfx'.*Did you mean 'sft'\?.*Runs: rl, sft"):
        find_run(runs, "sfx", registry)


def test_the_plot_draws_the_panels_some_run_has(runs, tmp_path):
    pytest.importorskip("matplotlib")  # the `plot` extra (installed with `test`)
    out = tmp_path / "plots" / "curves.png"
    panels = plot_runs({"sft": read_curves(runs / "sft"), "rl": read_curves(runs / "rl")}, out)
    assert panels == ["training loss", "validation loss", "reward (RL)"]  # no run logged a learning rate
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # no temporary file left behind
    with pytest.raises(NemotronError, match="logged none of"):
        plot_runs({"empty": {}}, tmp_path / "none.png")
