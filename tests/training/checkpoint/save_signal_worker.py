"""A training process that is signalled while it saves a checkpoint: run by test_save_under_signal.py.

Usage: save_signal_worker.py ROOT OUT [SLOW_SECONDS]

It installs the PreemptionWatcher (as the training session does), writes OUT/save_started, then saves one
checkpoint (iteration 1) under ROOT with save_checkpoint. Each of megatron's writer processes first writes
OUT/writing-<index> and sleeps SLOW_SECONDS before writing its data, so the test can signal the process
group while the save's helper processes are certainly alive. Afterwards it writes OUT/result.json and
exits as the pretrain stage does: 1 with an `error: stopped ...` line when a signal asked it to stop
(the checkpoint is saved), 2 when the save failed, 0 otherwise.

Heavy imports stay inside functions: megatron's saver spawns a helper process that re-imports this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NUMEL = 1 << 20  # 4 MiB of float32


def big_state():
    """The saved state: one tensor with known contents, plus a plain value (common.pt)."""
    import torch
    from megatron.core.dist_checkpointing.mapping import ShardedTensor

    tensor = torch.arange(NUMEL, dtype=torch.float32)
    return {"big": ShardedTensor.from_rank_offsets("big", tensor, replica_id=0), "plain": {"step": 1}}


def big_request():
    import torch
    from megatron.core.dist_checkpointing.mapping import ShardedTensor

    return {"big": ShardedTensor.from_rank_offsets("big", torch.zeros(NUMEL), replica_id=0)}


def _slow_writers(out: Path, seconds: float) -> None:
    """Make every writer process announce itself and pause before writing (inherited by the forked writers)."""
    import time

    from megatron.core.dist_checkpointing.strategies.filesystem_async import FileSystemWriterAsync

    original = FileSystemWriterAsync.write_preloaded_data

    def slow(*args, **kwargs):
        (out / f"writing-{kwargs['local_proc_idx']}").write_text("")
        time.sleep(seconds)
        return original(*args, **kwargs)

    FileSystemWriterAsync.write_preloaded_data = staticmethod(slow)


def main(argv: list[str]) -> int:
    root, out = Path(argv[0]), Path(argv[1])
    slow = float(argv[2]) if len(argv) > 2 else 3.0

    from nemotron.training.checkpoint.layout import CheckpointError
    from nemotron.training.checkpoint.store import save_checkpoint
    from nemotron.training.distributed.preemption import PreemptionWatcher

    watcher = PreemptionWatcher().install()
    _slow_writers(out, slow)
    state = big_state()
    (out / "save_started").write_text("")
    try:
        info = save_checkpoint(root, 1, state, {}, keep_last=None)
    except CheckpointError as err:
        (out / "result.json").write_text(json.dumps({"saved": False, "error": str(err)}))
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2
    result = {"saved": True, "path": str(info.path), "signal": watcher.signal_name, "reason": watcher.reason}
    (out / "result.json").write_text(json.dumps(result))
    if watcher.requested:
        print(f"error: stopped at step 1 ({watcher.reason}); checkpoint {info.path}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
