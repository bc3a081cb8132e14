"""One builder for the torchrun command line: `--standalone` locally, c10d rendezvous on Slurm, shell-quoted once."""

from __future__ import annotations

import os
import shlex
import subprocess

from nemotron.execution.torchrun import RDZV_SETUP, slurm_torchrun_line, torchrun_argv

STAGE = ["-m", "nemotron.stages.pretrain", "--config", "/jobs/my job/config.yaml", "--phase", "x"]


def test_local_argv_is_standalone():
    assert torchrun_argv("/venv/bin/python", 4, STAGE, slurm=False) == [
        "/venv/bin/python",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=4",
        *STAGE,
    ]


def test_slurm_argv_meets_at_the_rendezvous_the_setup_exports():
    argv = torchrun_argv("python", 8, STAGE, slurm=True)
    assert argv[:4] == ["python", "-m", "torch.distributed.run", "--nnodes=$SLURM_NNODES"]
    assert argv[4:8] == [
        "--nproc-per-node=8",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=$NEMOTRON_RDZV_HOST:$NEMOTRON_RDZV_PORT",
        "--rdzv-id=$SLURM_JOB_ID",
    ]
    assert argv[8:] == STAGE
    exported = {line.split("=", 1)[0].removeprefix("export ") for line in RDZV_SETUP}
    assert exported == {"NEMOTRON_RDZV_HOST", "NEMOTRON_RDZV_PORT"}


def test_slurm_line_is_the_slurm_argv_with_literal_words_quoted():
    line = slurm_torchrun_line("/opt/my venv/bin/python", 8, STAGE)
    prefix = 'trap "" USR1; exec '
    assert line.startswith(prefix)
    assert "'/opt/my venv/bin/python'" in line and "'/jobs/my job/config.yaml'" in line
    assert "--rdzv-id=$SLURM_JOB_ID" in line  # left for the job step's shell to expand
    assert shlex.split(line[len(prefix) :]) == torchrun_argv("/opt/my venv/bin/python", 8, STAGE, slurm=True)


def test_slurm_line_runs_with_the_job_steps_values(tmp_path):
    """The job step's shell expands the rendezvous variables and keeps the literal words whole."""
    python = tmp_path / "my python"
    python.write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    python.chmod(0o755)
    env = {
        **os.environ,
        "SLURM_NNODES": "2",
        "SLURM_JOB_ID": "77",
        "NEMOTRON_RDZV_HOST": "node7",
        "NEMOTRON_RDZV_PORT": "29577",
    }
    done = subprocess.run(
        ["bash", "-c", slurm_torchrun_line(str(python), 8, STAGE)], capture_output=True, text=True, timeout=30, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--nproc-per-node=8",
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=node7:29577",
        "--rdzv-id=77",
        *STAGE,
    ]
