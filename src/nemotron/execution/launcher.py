"""From a stage, a config choice, overrides and a profile to a ready-to-submit StageJob."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nemotron.config.job_files import Provenance
from nemotron.env import EnvFile, Profile
from nemotron.execution.job import Phase, StageJob, new_job_name
from nemotron.execution.job_env import job_identity_env
from nemotron.stages.catalog import StageSpec

RESOLVED_AT_START = (
    "the stage reads outputs of earlier stages of this pipe: its artifact references, ${art:...} values, "
    "schema and preflight are resolved and checked when its job starts"
)

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from nemotron.artifacts import ResolvedRef
    from nemotron.artifacts.resolution import Resolver
    from nemotron.execution.local_backend import LocalBackend
    from nemotron.execution.records import JobRecord
    from nemotron.execution.slurm_backend import SlurmBackend, SlurmJobControl


@dataclass(frozen=True)
class LaunchRequest:
    """What the user asked for on the command line."""

    stage: StageSpec
    config: str | None
    overrides: tuple[str, ...]
    profile: str | None
    argv: tuple[str, ...]
    fingerprint: str | None = None  # a pipe's stage: recorded in the lineage of what the job publishes
    # a pipe's stage whose inputs are made by earlier jobs of the same submission: the job resolves its
    # config and runs the launch checks when it starts (nemotron.execution.start_config)
    resolve_at_start: bool = False


@dataclass(frozen=True)
class PreparedJob:
    """A validated job plus the profile and env file it will run with."""

    job: StageJob
    profile: Profile
    env_file: EnvFile
    config_file: str
    config_chain: tuple[str, ...]
    artifact_refs: tuple[ResolvedRef, ...] = ()  # run.* references, pinned to exact versions
    notes: tuple[str, ...] = ()  # what the preflight could not check from here (shown by --dry-run)


def prepare(request: LaunchRequest) -> PreparedJob:
    """Load and validate config and profile exactly as a real run would; write nothing."""
    from omegaconf import OmegaConf

    from nemotron import __version__
    from nemotron.artifacts import FileRegistry, PinnedRegistry, default_registry_root
    from nemotron.artifacts.mirrors import wandb_job_env
    from nemotron.config import load_config
    from nemotron.config.job_files import source_git_commit
    from nemotron.config.resolvers import register_resolvers
    from nemotron.env import find_env_file, load_env_file, secrets_from_environment

    register_resolvers()
    stage = request.stage
    loaded = load_config(request.config or stage.default_config, stage.config_dir, request.overrides)
    env_file = load_env_file(find_env_file())
    artifacts_root = env_file.artifacts_root or str(default_registry_root())
    profile = env_file.profile(request.profile) if request.profile else Profile.default_local()
    if request.resolve_at_start:  # its inputs do not exist yet: the job resolves and checks its config
        composed = OmegaConf.to_container(loaded.cfg, resolve=False)
        assert isinstance(composed, dict)
        config: dict[str, Any] = {str(key): value for key, value in composed.items()}
        typed: object = None
        artifact_refs: tuple[ResolvedRef, ...] = ()
        notes: tuple[str, ...] = (RESOLVED_AT_START,)
    else:
        # each reference is resolved once, here, so ${art:...} values and pinned run.* refs agree
        resolved = resolve_stage_config(
            stage, loaded.cfg, str(loaded.path), loaded.overrides, PinnedRegistry(FileRegistry(artifacts_root)), profile
        )
        config, typed, artifact_refs, notes = resolved.config, resolved.typed, resolved.refs, resolved.notes
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
    job_env = job_identity_env(name, artifacts_root, git_commit, request.fingerprint)
    if env_file.wandb:  # the stage mirrors what it publishes (artifacts.mirrors_from_environment)
        job_env.update(wandb_job_env(env_file.wandb.project, env_file.wandb.entity))
    job = StageJob(
        name=name,
        stage=f"{stage.family}/{stage.key}",
        entry_module=stage.entry_module,
        config=config,
        typed_config=typed,
        provenance=provenance,
        env=job_env,
        secret_env=secret_env,
        single_task=stage.single_task,
        phases=slurm_phases(stage, profile, typed) if typed is not None else (),
        requeue_signal_seconds=requeue_signal_seconds(stage, profile),
        resolve_at_start=request.resolve_at_start,
    )
    chain = tuple(str(p) for p in loaded.chain)
    return PreparedJob(job, profile, env_file, str(loaded.path), chain, tuple(artifact_refs), notes)


@dataclass(frozen=True)
class ResolvedConfig:
    """A stage config with every interpolation and `run.*` reference resolved, validated and preflighted."""

    config: dict[str, Any]
    typed: object
    refs: tuple[ResolvedRef, ...]
    notes: tuple[str, ...]


def resolve_stage_config(
    stage: StageSpec, cfg: DictConfig, source: str, overrides: tuple[str, ...], registry: Resolver, profile: Profile
) -> ResolvedConfig:
    """Check the inputs' kinds, resolve `${art:...}` and pin `run.*` references through `registry`, validate
    into the stage's schema and run its preflight against `profile`: at launch, or when a job whose inputs
    were made by earlier stages of its pipe starts."""
    from omegaconf import OmegaConf

    from nemotron.artifacts import resolve_references
    from nemotron.config import resolved_container, to_dataclass
    from nemotron.config.resolvers import artifact_registry

    raw = OmegaConf.to_container(cfg, resolve=False)  # the inputs' kinds, before ${art:...} reads them
    stage.check_inputs(raw.get("run") if isinstance(raw, dict) else None, registry)
    with artifact_registry(registry):
        config = resolved_container(cfg, source=source)
    config, refs = resolve_references(config, registry)
    typed: object = to_dataclass(OmegaConf.create(config), stage.load_schema(), source=source, overrides=overrides)
    with artifact_registry(registry):  # e.g. heads vs hidden, inputs, parallel sizes vs the world: before any work
        notes = stage.run_preflight(typed, profile)
    return ResolvedConfig(config, typed, tuple(refs), notes)


def slurm_phases(stage: StageSpec, profile: Profile, typed_config: Any) -> tuple[Phase, ...]:
    """A sharded stage on Slurm: a job array of `stage.array_size(typed_config)` tasks, then finalize."""
    size = stage.array_size(typed_config) if stage.array_size else 0
    if profile.executor != "slurm" or not size:
        return ()
    return (Phase("shards", ("--phase", "shards"), size), Phase("finalize", ("--phase", "finalize")))


def requeue_signal_seconds(stage: StageSpec, profile: Profile) -> int | None:
    """Seconds before the time limit at which a self-requeueing stage gets SIGUSR1 on Slurm; None: no signal."""
    if not stage.requeue_on_signal or profile.executor != "slurm":
        return None
    override = profile.slurm.requeue_signal_seconds if profile.slurm else None
    return override or stage.requeue_signal_seconds


def local_python(profile: Profile) -> str:
    """The interpreter for local jobs: the profile's if it names one, else this one."""
    return profile.python if profile.python != "python" else sys.executable


def backend_for(profile: Profile, profile_name: str | None) -> LocalBackend | SlurmBackend:
    """The submitting backend of a profile (`profile_name` None: no profile was given)."""
    from nemotron.execution.errors import ExecutionError

    if profile.executor == "local":
        from nemotron.execution.local_backend import LocalBackend

        return LocalBackend(
            profile_name, local_python(profile), profile.setup, profile.nproc_per_node, profile.public_env_vars()
        )
    if profile.executor == "slurm":
        from nemotron.execution.slurm_backend import SlurmBackend

        return SlurmBackend(profile)
    raise ExecutionError(
        f"profile {profile.name!r} uses executor {profile.executor!r}, which can be previewed with "
        "--dry-run but not yet submitted; use a local or slurm profile"
    )


def control_for(record: JobRecord) -> LocalBackend | SlurmJobControl:
    """Status/logs/cancel for a recorded job, whichever backend submitted it."""
    from nemotron.execution.errors import ExecutionError

    if record.backend == "local":
        from nemotron.execution.local_backend import LocalBackend

        return LocalBackend(record.profile)
    if record.backend == "slurm":
        from nemotron.execution.slurm_backend import SlurmJobControl

        return SlurmJobControl(record)
    raise ExecutionError(f"job {record.name} has unknown backend {record.backend!r}")
