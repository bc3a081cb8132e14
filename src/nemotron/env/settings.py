"""Typed, frozen views of env.toml: profiles, executor settings, W&B and artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nemotron.env.errors import EnvError
from nemotron.env.secrets import is_secret_key, redact
from nemotron.suggest import did_you_mean

ExecutorName = Literal["local", "slurm", "docker"]


@dataclass(frozen=True)
class SSHSettings:
    """How to reach a Slurm login node over SSH (the profile's host/user/identity/port)."""

    host: str
    user: str | None = None
    identity: str | None = None
    port: int = 22

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "user": self.user, "identity": self.identity, "port": self.port}


@dataclass(frozen=True)
class SlurmSettings:
    """Slurm allocation settings of a profile with executor = "slurm"."""

    account: str | None = None
    partition: str | None = None
    nodes: int = 1
    ntasks_per_node: int = 1
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time: str = "01:00:00"
    exclusive: bool = False
    qos: str | None = None
    reservation: str | None = None
    constraint: str | None = None
    sbatch_flags: dict[str, str] = field(default_factory=dict)
    # seconds before the time limit at which stages that requeue themselves get SIGUSR1
    # (None: the stage's own default, StageSpec.requeue_signal_seconds)
    requeue_signal_seconds: int | None = None
    container_image: str | None = None
    container_mounts: tuple[str, ...] = ()
    ssh: SSHSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "partition": self.partition,
            "nodes": self.nodes,
            "ntasks_per_node": self.ntasks_per_node,
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
            "mem": self.mem,
            "time": self.time,
            "exclusive": self.exclusive,
            "qos": self.qos,
            "reservation": self.reservation,
            "constraint": self.constraint,
            "sbatch_flags": dict(self.sbatch_flags),
            "requeue_signal_seconds": self.requeue_signal_seconds,
            "container_image": self.container_image,
            "container_mounts": list(self.container_mounts),
            "ssh": self.ssh.to_dict() if self.ssh else None,
        }


@dataclass(frozen=True)
class DockerSettings:
    """Container settings of a profile with executor = "docker"."""

    container_image: str
    container_mounts: tuple[str, ...] = ()
    gpus_per_node: int | None = None
    network: str | None = None
    shm_size: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "container_image": self.container_image,
            "container_mounts": list(self.container_mounts),
            "gpus_per_node": self.gpus_per_node,
            "network": self.network,
            "shm_size": self.shm_size,
        }


@dataclass(frozen=True)
class WandbSettings:
    """The [wandb] table: where runs are logged and artifacts mirrored."""

    project: str
    entity: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def to_dict(self, redacted: bool = True) -> dict[str, Any]:
        data = {"project": self.project, "entity": self.entity, "api_key": self.api_key}
        return redact(data) if redacted else data


@dataclass(frozen=True)
class Profile:
    """One named execution profile of env.toml, with extends resolved and values validated."""

    name: str
    executor: ExecutorName = "local"
    source: Path | None = None
    env_vars: dict[str, str] = field(default_factory=dict, repr=False)
    setup: tuple[str, ...] = ()
    python: str = "python"
    job_dir: str | None = None
    nproc_per_node: int = 1  # local profiles: > 1 runs distributed stages under torchrun with this many processes
    slurm: SlurmSettings | None = None
    docker: DockerSettings | None = None

    @classmethod
    def default_local(cls, name: str = "local") -> Profile:
        """The profile used when nothing is configured: run on this machine with `python`."""
        return cls(name=name, executor="local")

    def processes_per_node(self) -> int:
        """Processes a distributed stage starts per node: one per GPU on Slurm, else one per Slurm task
        (CPU clusters); `nproc_per_node` on this machine."""
        slurm = self.slurm
        if self.executor != "slurm" or slurm is None:
            return self.nproc_per_node
        if slurm.gpus_per_node and slurm.gpus_per_node > 0:
            return slurm.gpus_per_node
        return slurm.ntasks_per_node or 1

    def public_env_vars(self) -> dict[str, str]:
        """env_vars whose names are not secret (safe to write into job files)."""
        return {k: v for k, v in self.env_vars.items() if not is_secret_key(k)}

    def secret_env_vars(self) -> dict[str, str]:
        """env_vars whose names are secret (tokens, keys, passwords)."""
        return {k: v for k, v in self.env_vars.items() if is_secret_key(k)}

    def to_dict(self, redacted: bool = True) -> dict[str, Any]:
        """Plain dict for job.yaml and dry-run output; secret values are '***' when redacted."""
        data: dict[str, Any] = {
            "name": self.name,
            "executor": self.executor,
            "source": str(self.source) if self.source else None,
            "env_vars": dict(self.env_vars),
            "setup": list(self.setup),
            "python": self.python,
            "job_dir": self.job_dir,
            "nproc_per_node": self.nproc_per_node,
            "slurm": self.slurm.to_dict() if self.slurm else None,
            "docker": self.docker.to_dict() if self.docker else None,
        }
        return redact(data) if redacted else data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """A profile back from `to_dict` (as job.yaml records it; redacted values stay redacted): what a
        job's own launch checks judge its config against."""
        slurm: SlurmSettings | None = None
        if data.get("slurm"):
            values = dict(data["slurm"])
            ssh = values.pop("ssh", None)
            values["container_mounts"] = tuple(values.get("container_mounts") or ())
            values["sbatch_flags"] = dict(values.get("sbatch_flags") or {})
            slurm = SlurmSettings(**values, ssh=SSHSettings(**ssh) if ssh else None)
        docker = dict(data.get("docker") or {}) or None
        if docker is not None:
            docker["container_mounts"] = tuple(docker.get("container_mounts") or ())
        return cls(
            name=data["name"],
            executor=data.get("executor", "local"),
            source=Path(data["source"]) if data.get("source") else None,
            env_vars=dict(data.get("env_vars") or {}),
            setup=tuple(data.get("setup") or ()),
            python=data.get("python", "python"),
            job_dir=data.get("job_dir"),
            nproc_per_node=int(data.get("nproc_per_node", 1)),
            slurm=slurm,
            docker=DockerSettings(**docker) if docker is not None else None,
        )


@dataclass(frozen=True)
class EnvFile:
    """A loaded env.toml: its profiles plus the optional [wandb] and [artifacts] tables."""

    path: Path | None
    profiles: dict[str, Profile] = field(default_factory=dict)
    wandb: WandbSettings | None = None
    artifacts_root: str | None = None
    searched: tuple[str, ...] = ()

    def profile(self, name: str) -> Profile:
        """The profile called name, or an EnvError listing the available ones."""
        if name in self.profiles:
            return self.profiles[name]
        available = sorted(self.profiles)
        if self.path is None:
            where = "no env.toml found; searched: " + ", ".join(self.searched or ("(nothing)",))
            fix = f"Create env.toml (see env.toml.example) with a [{name}] table, or point NEMOTRON_ENV_FILE at one."
        else:
            where = f"{self.path}: no profile '{name}'"
            fix = f"Add a [{name}] table to {self.path} or pick one of the available profiles."
        parts = [where + "."]
        if available:
            hint = did_you_mean(name, available, sentence=True)
            parts.append("Available profiles: " + ", ".join(available) + "." + hint)
        else:
            parts.append("No profiles are defined.")
        parts.append(fix)
        raise EnvError(" ".join(parts), path=self.path, profile=name)

    def to_dict(self, redacted: bool = True) -> dict[str, Any]:
        """Plain dict of the whole file; secret values are '***' when redacted."""
        return {
            "path": str(self.path) if self.path else None,
            "artifacts_root": self.artifacts_root,
            "wandb": self.wandb.to_dict(redacted) if self.wandb else None,
            "profiles": {n: p.to_dict(redacted) for n, p in self.profiles.items()},
        }
