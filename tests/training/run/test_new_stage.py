"""A stage other than pretraining runs, checkpoints and resumes on the shared runtime without importing `pretrain/`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STAGE = Path(__file__).with_name("toy_stage.py")
SRC = Path(__file__).resolve().parents[3] / "src"


def _run(root: Path, train_iters: int, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env["PYTHONPATH"] = str(SRC)
    done = subprocess.run(
        [sys.executable, str(STAGE), str(root), str(train_iters), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.integration
def test_a_toy_stage_trains_saves_and_resumes_without_pretrain(tmp_path):
    root = tmp_path / "artifacts"
    first = _run(root, 4, tmp_path / "first.json")
    assert first["pretrain_imported"] == []
    assert first["finished"] and first["iteration"] == 4
    assert Path(first["checkpoint"]).name == "iter_0000004"
    losses = [first["losses"][str(step)] for step in range(1, 5)]
    assert losses[-1] < losses[0]  # its own objective and data train the model

    second = _run(root, 6, tmp_path / "second.json")  # same run_name: resumes from step 4
    assert second["pretrain_imported"] == []
    assert sorted(int(step) for step in second["losses"]) == [5, 6]
    assert second["iteration"] == 6 and Path(second["checkpoint"]).name == "iter_0000006"
