"""Run a test file's worker under torchrun as 2 processes (gloo), failing the test with their output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nemotron.training.distributed.parallel import TORCHRUN_VARS


def run_two_ranks(script: str, out_dir: Path) -> None:
    """Run `script` (a test's `__file__`, whose `__main__` is the worker) as 2 ranks with `out_dir` as argument."""
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", script, str(out_dir)]
    if not torchrun.exists():
        command = [sys.executable, "-m", "torch.distributed.run", *command[1:]]
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
