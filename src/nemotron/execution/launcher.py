"""From a stage, a config choice, overrides and a profile to a ready-to-submit StageJob."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime

from nemotron.config.job_files import Provenance
from nemotron.env import EnvFile, Profile
from nemotron.execution.job import StageJob, new_job_name
from nemotron.execution.job_env import job_identity_env
from nemotron.stages.catalog import StageSpec


@dataclass(frozen=True)
class LaunchRequest:
    """What the user asked for on the command line."""

    stage: StageSpec
    config: str | None
    overrides: tuple[str, ...]
    profile: str | None
    argv: tuple[str, ...]


@dataclass(frozen=True)
class PreparedJob:
    """A validated job plus the profile and env file it will run with."""

    job: StageJob
    profile: Profile
    env_file: EnvFile
    config_file: str
    config_chain: tuple[str, ...]


def prepare(request: LaunchRequest) -> PreparedJob:
    """Load and validate config and profile exactly as a real run would; write nothing."""
    from omegaconf import OmegaConf

    from nemotron import __version__
    from nemotron.artifacts import default_registry_root
    from nemotron.config import load_config, resolved_container, to_dataclass
    from nemotron.config.job_files import source_git_commit
    from nemotron.config.resolvers import register_resolvers
    from nemotron.env import find_env_file, load_env_file, secrets_from_environment

    register_resolvers()
    stage = request.stage
    loaded = load_config(request.config or stage.default_config, stage.config_dir, request.overrides)
    config = resolved_container(loaded.cfg, source=str(loaded.path))
    to_dataclass(OmegaConf.create(config), stage.load_schema(), source=str(loaded.path))
    env_file = load_env_file(find_env_file())
    profile = env_file.profile(request.profile) if request.profile else Profile.default_local()
    artifacts_root = env_file.artifacts_root or str(default_registry_root())
    name = new_job_name(stage.family, stage.key)
    git_commit = source_git_commit()
    provenance = Provenance(
        job_name=name,
        stage=f"{stage.family}/{stage.key}",
        executor=profile.executor,
        profile_name=request.profile,
        profile=profile.to_dict(redacted=True) if request.profile else None,
        argv=request.argv,
        overrides=request.overrides,
        config_file=str(loaded.path),
        config_chain=tuple(str(p) for p in loaded.chain),
        nemotron_version=__version__,
        git_commit=git_commit,
        created_at=datetime.now().isoformat(timespec="seconds"),
    )
    secret_env = {**secrets_from_environment(os.environ), **profile.secret_env_vars()}
    if env_file.wandb and env_file.wandb.api_key:
        secret_env.setdefault("WANDB_API_KEY", env_file.wandb.api_key)
    job = StageJob(
        name=name,
        stage=f"{stage.family}/{stage.key}",
        entry_module=stage.entry_module,
        config=config,
        provenance=provenance,
        env=job_identity_env(name, artifacts_root, git_commit),
        secret_env=secret_env,
        single_task=stage.single_task,
    )
    return PreparedJob(job, profile, env_file, str(loaded.path), tuple(str(p) for p in loaded.chain))


def local_python(profile: Profile) -> str:
    """The interpreter for local jobs: the profile's if it names one, else this one."""
    return profile.python if profile.python != "python" else sys.executable


def backend_for(profile: Profile, profile_name: str | None):
    """The submitting backend of a profile (`profile_name` None: no profile was given)."""
    from nemotron.execution.errors import ExecutionError

    if profile.executor == "local":
        from nemotron.execution.local_backend import LocalBackend

        return LocalBackend(profile_name, local_python(profile), profile.setup)
    if profile.executor == "slurm":
        from nemotron.execution.slurm_backend import SlurmBackend

        return SlurmBackend(profile)
    raise ExecutionError(
        f"profile {profile.name!r} uses executor {profile.executor!r}, which can be previewed with "
        "--dry-run but not yet submitted; use a local or slurm profile"
    )


def control_for(record):
    """Status/logs/cancel for a recorded job, whichever backend submitted it."""
    from nemotron.execution.errors import ExecutionError

    if record.backend == "local":
        from nemotron.execution.local_backend import LocalBackend

        return LocalBackend(record.profile)
    if record.backend == "slurm":
        from nemotron.execution.slurm_backend import SlurmJobControl

        return SlurmJobControl(record)
    raise ExecutionError(f"job {record.name} has unknown backend {record.backend!r}")
