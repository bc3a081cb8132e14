"""A rank of test_preemption.py's runs: steps until `should_stop_all` says stop, then reports.

Usage: preemption_worker.py OUT_DIR [SIGNAL_RANK]
- under torchrun (RANK/WORLD_SIZE set) it joins a gloo process group;
- with SIGNAL_RANK, that rank sends itself SIGUSR1 at step 5 (the others get no signal);
- without it, the test signals the processes from outside once every rank wrote `ready-<rank>`.
Each rank writes `result-<rank>.json`: the step it stopped after, reason, requeue flag.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch.distributed as dist

from nemotron.training.distributed.preemption import PreemptionWatcher, is_global_rank_zero, should_stop_all


def main() -> None:
    out = Path(sys.argv[1])
    signal_rank = int(sys.argv[2]) if len(sys.argv) > 2 else None
    rank = int(os.environ.get("RANK", "0"))
    if "WORLD_SIZE" in os.environ:
        dist.init_process_group("gloo")
    watcher = PreemptionWatcher().install()
    step = 0
    stopped = False
    while step < 600:
        step += 1
        time.sleep(0.05)  # "training"
        if step == 3:
            (out / f"ready-{rank}").write_text("")
        if signal_rank == rank and step == 5:
            os.kill(os.getpid(), signal.SIGUSR1)
        if should_stop_all(watcher):
            stopped = True
            break
    result = {
        "rank": rank,
        "step": step,
        "stopped": stopped,
        "reason": watcher.reason,
        "requeue": watcher.should_requeue,
        "signal": watcher.signal_name,
        "rank_zero": is_global_rank_zero(),
    }
    (out / f"result-{rank}.json").write_text(json.dumps(result))
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
