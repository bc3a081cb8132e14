"""What every stage entry point shares: read `--config`, know its job, report errors in one line."""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from nemotron.errors import run_reporting_errors

if TYPE_CHECKING:
    from nemotron.artifacts import Lineage

T = TypeVar("T")


@dataclass(frozen=True)
class JobContext:
    """Who is running: set by the launcher through the environment (same locally and on Slurm)."""

    job_name: str | None
    job_id: str | None
    config_sha256: str
    git_commit: str | None
    phase: str | None = None  # set when a job runs in parts (e.g. "shards" array, then "finalize")
    array_index: int = 0  # this Slurm array task's index and the array's size
    array_count: int = 1
    fingerprint: str | None = None  # the pipe's fingerprint of this stage run (None outside a pipe)

    def lineage(self, stage: str, inputs: Sequence[str], packages: Sequence[str]) -> Lineage:
        """The lineage of what this job publishes: the job, its config and code, `inputs`, `packages`' versions."""
        import nemotron
        from nemotron.artifacts import Lineage
        from nemotron.artifacts.types import installed_versions

        return Lineage(
            stage=stage,
            job_name=self.job_name,
            job_id=self.job_id,
            config_sha256=self.config_sha256,
            git_commit=self.git_commit,
            package_version=nemotron.__version__,
            inputs=tuple(inputs),
            packages=installed_versions(*packages),
            fingerprint=self.fingerprint,
        )


def load_stage_config(
    argv: list[str] | None, schema: type[T], stage: str, phases: tuple[str, ...] = ()
) -> tuple[T, JobContext]:
    """Parse `--config FILE` (and `--phase` for stages run in parts), validate, read the job context."""
    from omegaconf import OmegaConf

    from nemotron.config import to_dataclass

    parser = argparse.ArgumentParser(prog=f"python -m nemotron.stages.{stage}")
    parser.add_argument("--config", required=True, type=Path, help="the stage config YAML written by the launcher")
    if phases:
        parser.add_argument("--phase", choices=phases, default=None, help="run one part only (default: all)")
    args = parser.parse_args(argv)
    text = args.config.read_text()
    cfg = OmegaConf.create(text)
    config = to_dataclass(cfg, schema, source=str(args.config))
    context = JobContext(
        job_name=os.environ.get("NEMOTRON_JOB_NAME"),
        job_id=os.environ.get("SLURM_JOB_ID") or os.environ.get("NEMOTRON_JOB_ID"),
        config_sha256=hashlib.sha256(text.encode()).hexdigest(),
        git_commit=os.environ.get("NEMOTRON_GIT_COMMIT"),
        phase=getattr(args, "phase", None),
        array_index=int(os.environ.get("SLURM_ARRAY_TASK_ID", "0")) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0")),
        array_count=int(os.environ.get("SLURM_ARRAY_TASK_COUNT", "1")),
        fingerprint=os.environ.get("NEMOTRON_FINGERPRINT") or None,
    )
    return config, context


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main; any NemotronError ends the process as one `error:` line and exit code 1."""
    from nemotron.quiet import silence_megatron_fallback_warnings

    silence_megatron_fallback_warnings()
    run_reporting_errors(main, exit_code=1)
