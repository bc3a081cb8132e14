"""The files a job carries: `config.yaml` (what the stage reads) and `job.yaml` (full provenance)."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nemotron.atomic_write import write_text_atomic

CONFIG_FILE = "config.yaml"
JOB_FILE = "job.yaml"


@dataclass(frozen=True)
class Provenance:
    """Where a job came from: enough to reproduce it. `profile` must already be redacted."""

    job_name: str
    stage: str
    executor: str
    profile_name: str | None
    profile: dict[str, Any] | None
    argv: tuple[str, ...]
    overrides: tuple[str, ...]
    config_file: str
    config_chain: tuple[str, ...]
    nemotron_version: str
    git_commit: str | None
    created_at: str


def source_git_commit() -> str | None:
    """The commit of the checkout nemotron runs from (with '-dirty' for local changes), if any."""
    package_dir = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(package_dir), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(package_dir), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def render_config_yaml(config: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(config))


def render_job_yaml(config: dict[str, Any], provenance: Provenance) -> str:
    from omegaconf import OmegaConf

    record = asdict(provenance)
    document = {
        "job": {k: record[k] for k in ("job_name", "stage", "executor", "profile_name", "created_at")},
        "provenance": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in record.items()
            if k in ("argv", "overrides", "config_file", "config_chain", "nemotron_version", "git_commit")
        },
        "profile": provenance.profile,
        "config": config,
    }
    return OmegaConf.to_yaml(OmegaConf.create(document))


def write_job_files(job_dir: Path, config: dict[str, Any], provenance: Provenance) -> tuple[Path, Path]:
    """Write config.yaml and job.yaml into `job_dir` (each atomically); return their paths."""
    job_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in ((CONFIG_FILE, render_config_yaml(config)), (JOB_FILE, render_job_yaml(config, provenance))):
        write_text_atomic(job_dir / name, text)
        paths.append(job_dir / name)
    return paths[0], paths[1]
