"""Run in a pipe's job before its stage: resolve the config whose inputs earlier jobs made, and check it.

`python -m nemotron.execution.start_config --stage nano3/sft --job-dir DIR` reads DIR/config.yaml (the
composed config, `run.*` references and `${art:...}` values unresolved) and DIR/job.yaml (the profile it
was submitted with), does what `launcher.prepare` does at launch (input kinds, `${art:...}`, pinned
references, schema, preflight) through the registry of NEMOTRON_ARTIFACTS_ROOT, and rewrites config.yaml
resolved (atomically). Run again (a requeued job) on a resolved config, it finds nothing left to change.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nemotron.config.job_files import CONFIG_FILE, JOB_FILE


def resolve_job_config(stage_key: str, job_dir: Path, artifacts_root: str) -> list[str]:
    """Resolve and check `job_dir`'s config.yaml in place; lines saying what each reference was pinned to."""
    from omegaconf import OmegaConf

    from nemotron.artifacts import FileRegistry, PinnedRegistry
    from nemotron.atomic_write import write_text_atomic
    from nemotron.config.job_files import render_config_yaml
    from nemotron.config.resolvers import register_resolvers
    from nemotron.env import Profile
    from nemotron.execution.launcher import resolve_stage_config
    from nemotron.stages.catalog import STAGES

    register_resolvers()
    stage = STAGES[stage_key]
    config_path = job_dir / CONFIG_FILE
    recorded = OmegaConf.to_container(OmegaConf.load(job_dir / JOB_FILE), resolve=False)
    assert isinstance(recorded, dict)
    profile_data = recorded.get("profile")
    profile = Profile.from_dict(profile_data) if isinstance(profile_data, dict) else Profile.default_local()
    resolved = resolve_stage_config(
        stage,
        OmegaConf.load(config_path),  # type: ignore[arg-type]  # a stage config file is a mapping
        str(config_path),
        (),
        PinnedRegistry(FileRegistry(artifacts_root)),
        profile,
    )
    write_text_atomic(config_path, render_config_yaml(resolved.config))
    return [f"{ref.key}: {ref.requested} -> {ref.pinned}" for ref in resolved.refs] + [
        f"not checked: {note}" for note in resolved.notes
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nemotron.execution.start_config")
    parser.add_argument("--stage", required=True, help="the stage's catalog key, e.g. nano3/sft")
    parser.add_argument("--job-dir", required=True, type=Path, help="the job's folder (config.yaml, job.yaml)")
    args = parser.parse_args(argv)
    from nemotron.artifacts import default_registry_root

    root = os.environ.get("NEMOTRON_ARTIFACTS_ROOT") or str(default_registry_root())
    for line in resolve_job_config(args.stage, args.job_dir, root):
        print(f"start: {line}", flush=True)


if __name__ == "__main__":
    from nemotron.errors import run_reporting_errors

    run_reporting_errors(main, exit_code=1)
