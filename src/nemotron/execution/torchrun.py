"""The torchrun command line of a distributed stage, on one machine (standalone) and on Slurm (c10d rendezvous)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

# Slurm: torchrun's rendezvous host is the job's first node, found inside the job (the batch script
# runs there); the port depends on the job id so that jobs sharing a node do not collide.
RDZV_SETUP = (
    'export NEMOTRON_RDZV_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)',
    "export NEMOTRON_RDZV_PORT=$((29500 + SLURM_JOB_ID % 10000))",
)
# Options whose `$` variables the job step's shell expands (never quoted).
_SLURM_NODES = "--nnodes=$SLURM_NNODES"
_SLURM_RENDEZVOUS = (
    "--rdzv-backend=c10d",
    "--rdzv-endpoint=$NEMOTRON_RDZV_HOST:$NEMOTRON_RDZV_PORT",
    "--rdzv-id=$SLURM_JOB_ID",
)
_EXPANDED = frozenset((_SLURM_NODES, *_SLURM_RENDEZVOUS))


def torchrun_argv(python: str, nproc_per_node: int, stage_argv: Sequence[str], *, slurm: bool) -> list[str]:
    """`<python> -m torch.distributed.run <options> <stage_argv>`: `--standalone` on one machine; on Slurm
    one torchrun per node meeting the others at the rendezvous that RDZV_SETUP exports."""
    nproc = f"--nproc-per-node={nproc_per_node}"
    options = [_SLURM_NODES, nproc, *_SLURM_RENDEZVOUS] if slurm else ["--standalone", nproc]
    return [python, "-m", "torch.distributed.run", *options, *stage_argv]


def slurm_torchrun_line(python: str, nproc_per_node: int, stage_argv: Sequence[str]) -> str:
    """The shell command one srun task per node runs: torchrun_argv (slurm) with its literal words
    quoted; `$SLURM_*`/`$NEMOTRON_RDZV_*` are expanded inside the job step.

    torchrun ignores SIGUSR1 (`trap`): Slurm's time-limit warning reaches every process of the step,
    and the stage's processes install their own handler (training's preemption watcher), which
    replaces the inherited "ignore"; torchrun keeps running and exits with its workers.
    """
    words = torchrun_argv(python, nproc_per_node, stage_argv, slurm=True)
    return 'trap "" USR1; exec ' + " ".join(w if w in _EXPANDED else shlex.quote(w) for w in words)
