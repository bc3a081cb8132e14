"""One writer per data prep output folder: a second process is refused before it writes anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron.data.errors import DataFolderBusy

REPO = Path(__file__).resolve().parents[2]
TINY_BLEND = REPO / "recipes/nano3/stage0_pretrain/data_blends/tiny.json"
HOLD = (
    "import sys, time; from pathlib import Path; from nemotron.lease import take_lease; "
    "lease = take_lease(Path(sys.argv[1]), what='data prep output folder'); print('held', flush=True); "
    "time.sleep(60)"
)


def test_a_second_data_prep_of_the_same_folder_is_refused_and_writes_nothing(
    tmp_path, stage_config, prep_stage, registry_versions
):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID")}
    env["PYTHONPATH"] = str(REPO / "src")
    # the first writer: a real process holding the folder's lease (as a running data prep does)
    first = subprocess.Popen([sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "held"
        config = stage_config(tmp_path / "config.yaml", TINY_BLEND, data, num_shards=4)
        with pytest.raises(DataFolderBusy) as refused:
            prep_stage(config, tmp_path / "registry")
        message = str(refused.value)
        assert f"data prep output folder {data} is in use by another process" in message
        assert f"pid {first.pid}" in message and f"kill {first.pid}" in message
        assert sorted(p.name for p in data.iterdir()) == [".lease.json"]  # no shard, no receipt, no temp file
        assert registry_versions(tmp_path / "registry", "test-data") == []
    finally:
        first.kill()
        first.wait()
    out = prep_stage(config, tmp_path / "registry")  # its holder gone, the folder is taken over
    assert "published test-data:v1" in out
    assert not (data / ".lease.json").exists()  # released at the end
