"""A test-only distributed stage that counts steps and stops, saves and requeues on Slurm's signals.

It is what a training stage does with nemotron.training.distributed.preemption, minus the training: under
torchrun its ranks join a gloo group, agree on stopping (`should_stop_all`), rank 0 saves the step
reached to `progress.json` in the job dir (the job's working directory) and, after the time-limit
warning (SIGUSR1), requeues the job; the next run resumes from the saved step.

Files in the job dir (written by rank 0): `starts.jsonl` (one line per run: restart count, first
step), `steps.txt` (`<restart> <step>` per step), `progress.json` (last save).

Run by the job:   python -m requeue_stage --config <job dir>/config.yaml
Submit (tests):   python -m requeue_stage submit PROFILE [override ...]
                  (needs this folder on PYTHONPATH; prints `submitted NAME as <backend> job ID`)
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass
class RequeueStageConfig:
    steps: int = 30
    step_seconds: float = 0.2


def stage_spec():
    """The StageSpec the test launches: distributed, requeues itself on SIGUSR1."""
    from nemotron.stages.catalog import StageSpec

    return StageSpec(
        key="requeue-test",
        family="test",
        title="Count steps; save, requeue and resume on Slurm's signals (tests only)",
        entry_module="requeue_stage",
        config_subdir=str(HERE / "requeue_stage_config"),  # absolute: recipes_root() / it is it
        schema="requeue_stage:RequeueStageConfig",
        single_task=False,
        requeue_on_signal=True,
    )


def submit(profile: str, overrides: list[str]) -> None:
    """Submit through nemotron's launcher, as `nemotron ... --batch PROFILE` does for catalog stages."""
    from nemotron.execution.launcher import LaunchRequest, backend_for, prepare

    sys.stdin = open(os.devnull)  # NeMo-Run's local tunnel reads stdin
    prepared = prepare(LaunchRequest(stage_spec(), None, tuple(overrides), profile, tuple(sys.argv)))
    record = backend_for(prepared.profile, profile).submit(prepared.job)
    print(f"submitted {record.name} as {record.backend} job {record.job_id}", flush=True)


def _append(path: Path, line: str) -> None:
    with path.open("a") as handle:
        handle.write(line + "\n")


def _save(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def run(argv: list[str] | None = None) -> int:
    from nemotron.stages.runtime import load_stage_config
    from nemotron.training.distributed.preemption import (
        PreemptionWatcher,
        is_global_rank_zero,
        requeue_slurm_job,
        should_stop_all,
    )

    config, _ = load_stage_config(argv, RequeueStageConfig, "requeue_stage")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dist = None
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo")
    watcher = PreemptionWatcher().install()
    rank = int(os.environ.get("RANK", "0"))
    main = is_global_rank_zero()
    restart = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    progress = Path("progress.json")
    start = json.loads(progress.read_text())["step"] if progress.exists() else 0
    if main:
        _append(Path("starts.jsonl"), json.dumps({"restart": restart, "start": start, "world": world}))
    print(f"rank {rank}/{world}: run {restart} starts at step {start}", flush=True)
    step = start
    while step < config.steps:
        time.sleep(config.step_seconds)
        step += 1
        if main:
            _append(Path("steps.txt"), f"{restart} {step}")
        if should_stop_all(watcher):
            if main:
                _save(
                    progress,
                    {
                        "step": step,
                        "restart": restart,
                        "reason": watcher.reason,
                        "requeue": watcher.should_requeue,
                        "done": False,
                    },
                )
            if dist is not None:
                dist.barrier()  # saved everywhere before the job is requeued (Slurm ends it at once)
                dist.destroy_process_group()
            print(f"rank {rank}: stopped after step {step}: {watcher.reason}", flush=True)
            if watcher.should_requeue and main and not requeue_slurm_job():
                return 1
            return 0
    if main:
        _save(progress, {"step": step, "restart": restart, "reason": "", "requeue": False, "done": True})
    print(f"rank {rank}: finished {step} steps in run {restart}", flush=True)
    if dist is not None:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "submit":
        submit(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(run())
