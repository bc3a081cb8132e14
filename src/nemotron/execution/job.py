"""A stage job as the launcher describes it: name, stage entry point, resolved config, environment."""

from __future__ import annotations

import secrets as random_tokens
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from nemotron.config.job_files import Provenance
from nemotron.execution.torchrun import torchrun_argv


@dataclass(frozen=True)
class Phase:
    """One part of a job submitted on its own (after the previous part succeeded).

    Stages that shard their work run on Slurm as a job array (`array_size` tasks, each taking
    its share of the shards) followed by a finalize job; locally the stage runs whole.
    """

    name: str
    args: tuple[str, ...] = ()  # appended to the stage command
    array_size: int | None = None


@dataclass(frozen=True)
class StageJob:
    """Everything needed to start one stage anywhere; backends only decide where and how."""

    name: str
    stage: str
    entry_module: str
    config: dict[str, Any]  # resolved stage config, written as config.yaml
    typed_config: Any  # the same config as validated into the stage's schema: launch-time checks read this
    provenance: Provenance
    env: dict[str, str] = field(default_factory=dict)  # non-secret variables the job needs
    secret_env: dict[str, str] = field(default_factory=dict)  # passed through a 0600 file, never printed
    single_task: bool = True  # one process, whatever the allocation; training stages set False
    phases: tuple[Phase, ...] = ()  # Slurm only; empty: one task running the whole stage
    # Slurm: SIGUSR1 this many seconds before the time limit; the stage saves and requeues itself.
    # None: no warning signal is requested.
    requeue_signal_seconds: int | None = None
    # a pipe's stage whose inputs earlier jobs of its submission make: `config` is the composed config, its
    # references and ${art:...} unresolved; the job resolves and checks it when it starts (start_config)
    resolve_at_start: bool = False

    def stage_argv(self, config_path: str, args: tuple[str, ...] = ()) -> list[str]:
        """What follows the interpreter: `-m <entry module> --config <config_path> <args>`."""
        return ["-m", self.entry_module, "--config", config_path, *args]

    def command(self, python: str, config_path: str, nproc_per_node: int = 1) -> list[str]:
        """The stage's command on one machine: `python -m <entry>`, or under torchrun (standalone
        rendezvous) with `nproc_per_node` processes for a distributed stage when that is > 1."""
        if self.single_task or nproc_per_node <= 1:
            return [python, *self.stage_argv(config_path)]
        return torchrun_argv(python, nproc_per_node, self.stage_argv(config_path), slurm=False)


def new_job_name(family: str, stage: str, now: datetime | None = None) -> str:
    """A unique, readable job name: `nano3-data-prep-pretrain-20261122-153012-a1b2`."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return f"{family}-{stage}-{stamp}-{random_tokens.token_hex(2)}"
