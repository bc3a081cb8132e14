"""MetricsLogger: the progress line the CLI draws as a bar, TensorBoard events, W&B in offline mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron.cli.progress_writer import PROGRESS
from nemotron.training.loop.metrics import MetricsLogger, format_metrics


def logger(tmp_path, **changes) -> MetricsLogger:
    settings = dict(
        is_main=True,
        tensorboard_dir=tmp_path / "tb",
        train_iters=100,
        progress_bar=True,
        use_wandb=False,
        run_name="run",
        config={"a": 1},
    )
    settings.update(changes)
    return MetricsLogger(**settings)


def test_format_metrics_orders_known_keys_and_skips_missing():
    text = format_metrics({"step_seconds": 0.5, "loss": 6.12345, "lr": 3e-4, "tokens_per_second": 3210.4, "mfu": None})
    assert text == "loss 6.1235 | lr 3.00e-04 | 3,210 tok/s | 0.50 s/step"


def test_format_metrics_appends_a_stages_own_metrics():
    assert format_metrics({"reward_mean": 0.6251, "loss": 1.0}) == "loss 1.0000 | reward_mean 0.6251"


def test_train_lines_match_the_cli_progress_pattern_and_reach_tensorboard(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = logger(tmp_path)
    log.train(10, {"loss": 5.0, "lr": 1e-3})
    log.evaluation(10, "validation", 4.5, 90.0)
    log.close()
    lines = capsys.readouterr().out.splitlines()
    match = PROGRESS.match(lines[0])
    assert match and match.groups()[:3] == ("10", "100", "steps")
    assert lines[1] == "validation at step 10: loss 4.5000 | perplexity 90.00"
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"train/loss", "train/lr", "validation/loss", "validation/perplexity"} <= set(events.Tags()["scalars"])
    assert events.Scalars("train/loss")[0].value == pytest.approx(5.0)


def test_plain_lines_without_the_progress_bar(tmp_path, capsys):
    log = logger(tmp_path, progress_bar=False)
    log.train(3, {"loss": 2.0})
    log.close()
    assert capsys.readouterr().out == "step 3/100 | loss 2.0000\n"


def test_other_ranks_write_nothing(tmp_path, capsys):
    log = logger(tmp_path, is_main=False)
    log.train(1, {"loss": 1.0})
    log.close()
    assert capsys.readouterr().out == "" and not (tmp_path / "tb").exists()


def test_wandb_run_when_the_launcher_configured_it(tmp_path, monkeypatch):
    """W&B offline mode: no server here, so the run is written locally (the only part that can run)."""
    monkeypatch.setenv("NEMOTRON_WANDB_PROJECT", "nemotron-tests")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    log = logger(tmp_path, use_wandb=True)
    assert log._wandb is not None and log._wandb.project == "nemotron-tests"
    run_dir = Path(log._wandb.dir).parent  # wandb keeps its first WANDB_DIR for the whole process
    log.train(1, {"loss": 3.0})
    log.close()
    assert run_dir.name.startswith("offline-run-") and list(run_dir.glob("*.wandb"))
