"""Parsing env.toml, resolving `extends` and validating every profile into typed settings."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nemotron.env.discovery import describe_search
from nemotron.env.errors import EnvError
from nemotron.env.schema import (
    ARTIFACTS_KEYS,
    DEFAULT_EXECUTOR,
    ENV_VAR_NAME,
    EXECUTORS,
    FIRST_CLASS_SBATCH,
    PROFILE_KEYS,
    RESERVED_TABLES,
    TIME_FORMATS_TEXT,
    WANDB_KEYS,
    KeySpec,
    coerce,
    describe,
    is_slurm_time,
    keys_for,
)
from nemotron.env.settings import DockerSettings, EnvFile, Profile, SlurmSettings, SSHSettings, WandbSettings
from nemotron.suggest import did_you_mean


def load_env_file(path: Path | str | None) -> EnvFile:
    """Load and validate an env.toml; None gives an empty EnvFile (no profiles)."""
    if path is None:
        return EnvFile(path=None, searched=describe_search())
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnvError(
            f"{path}: file not found. Check the path or create it from env.toml.example.", path=path
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvError(
            f"{path}: cannot read the file ({exc}). Fix its permissions or encoding (UTF-8).", path=path
        ) from None
    return load_env_text(text, path)


def load_env_text(text: str, path: Path | None = None) -> EnvFile:
    """Parse and validate env.toml text; path is only used to name the file in errors and results."""
    label = str(path) if path is not None else "env.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnvError(f"{label}: invalid TOML: {exc}. Fix the syntax at that line.", path=path) from None
    return _Builder(data, path, label).build()


def deep_merge(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """Child wins; nested tables merge key by key; arrays and scalars are replaced."""
    merged = dict(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _Builder:
    """Turns parsed TOML data into an EnvFile, raising the first problem found."""

    def __init__(self, data: dict[str, Any], path: Path | None, label: str) -> None:
        self.data = data
        self.path = path
        self.label = label
        self.raw: dict[str, dict[str, Any]] = {}

    def fail(self, message: str, profile: str | None = None, key: str | None = None) -> EnvError:
        where = f"{self.label}: " + (f"profile '{profile}': " if profile else "")
        return EnvError(where + message, path=self.path, profile=profile, key=key)

    def build(self) -> EnvFile:
        for name, value in self.data.items():
            if name in RESERVED_TABLES:
                continue
            if not isinstance(value, dict):
                raise self.fail(
                    f"top-level key '{name}' is a {describe(value).split(' ')[0]}, not a table. "
                    f"Settings belong inside a profile table: move '{name} = ...' below a header such as [local].",
                    key=name,
                )
            self.raw[name] = value
        profiles = {name: self.profile(name) for name in self.raw}
        return EnvFile(
            path=self.path,
            profiles=profiles,
            wandb=self.wandb(),
            artifacts_root=self.artifacts_root(),
        )

    # -- reserved tables -------------------------------------------------------------

    def reserved_table(self, table: str, specs: dict[str, KeySpec]) -> dict[str, Any] | None:
        value = self.data.get(table)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(f"'{table}' must be a table ([{table}]), got {describe(value)}.", key=table)
        result = {}
        for key, item in value.items():
            spec = specs.get(key)
            if spec is None:
                hint = did_you_mean(key, specs, sentence=True)
                raise self.fail(
                    f"[{table}]: unknown key '{key}'.{hint} Valid keys in [{table}]: {', '.join(specs)}.",
                    key=key,
                )
            try:
                result[key] = coerce(spec, item)
            except ValueError as exc:
                raise self.fail(f"[{table}]: {exc}", key=key) from None
        return result

    def wandb(self) -> WandbSettings | None:
        table = self.reserved_table("wandb", WANDB_KEYS)
        if table is None:
            return None
        if "project" not in table:
            raise self.fail('[wandb] needs a project. Add project = "nemotron" (or remove [wandb]).', key="project")
        return WandbSettings(project=table["project"], entity=table.get("entity"), api_key=table.get("api_key"))

    def artifacts_root(self) -> str | None:
        table = self.reserved_table("artifacts", ARTIFACTS_KEYS)
        return None if table is None else table.get("root")

    # -- profiles --------------------------------------------------------------------

    def available(self) -> str:
        return ", ".join(self.raw) if self.raw else "(none)"

    def resolve(self, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The merged settings of a profile and, for each key, the profile that set it."""
        chain = [name]
        current = name
        while "extends" in self.raw[current]:
            parent = self.raw[current]["extends"]
            if not isinstance(parent, str) or not parent:
                raise self.fail(
                    f"extends must be the name of another profile (a string), got {describe(parent)}. "
                    f'Write e.g. extends = "{next(iter(self.raw))}".',
                    current,
                    "extends",
                )
            if parent in chain:
                cycle = chain[chain.index(parent) :] + [parent]
                raise self.fail(
                    "extends forms a cycle: " + " -> ".join(cycle) + ". Remove extends from one of these profiles.",
                    current,
                    "extends",
                )
            if parent not in self.raw:
                hint = did_you_mean(parent, self.raw, sentence=True)
                reserved = f" [{parent}] is a reserved table, not a profile." if parent in RESERVED_TABLES else ""
                raise self.fail(
                    f"extends '{parent}', which is not a profile in this file.{reserved} "
                    f"Available profiles: {self.available()}.{hint} Define [{parent}] or fix the name.",
                    current,
                    "extends",
                )
            chain.append(parent)
            current = parent
        merged: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for member in reversed(chain):
            table = {k: v for k, v in self.raw[member].items() if k != "extends"}
            merged = deep_merge(merged, table)
            origin.update({k: member for k in table})
        return merged, origin

    def profile(self, name: str) -> Profile:
        merged, origin = self.resolve(name)

        def inherited(key: str) -> str:
            src = origin.get(key, name)
            return f" (inherited from profile '{src}')" if src != name else ""

        executor = merged.get("executor", DEFAULT_EXECUTOR)
        if not isinstance(executor, str) or executor not in EXECUTORS:
            shown = describe(executor)
            hint = did_you_mean(executor, EXECUTORS, sentence=True) if isinstance(executor, str) else ""
            raise self.fail(
                f"executor must be one of {', '.join(EXECUTORS)}, got {shown}{inherited('executor')}.{hint} "
                f'Write e.g. executor = "slurm".',
                name,
                "executor",
            )
        valid = keys_for(executor)
        values: dict[str, Any] = {}
        for key, value in merged.items():
            spec = PROFILE_KEYS.get(key)
            if spec is None:
                hint = did_you_mean(key, valid, sentence=True) or did_you_mean(key, PROFILE_KEYS, sentence=True)
                raise self.fail(
                    f"unknown key '{key}'{inherited(key)}.{hint} "
                    f"Valid keys for executor '{executor}': {', '.join(valid)}.",
                    name,
                    key,
                )
            if executor not in spec.executors:
                owners = " or ".join(f"'{e}'" for e in spec.executors)
                raise self.fail(
                    f"key '{key}'{inherited(key)} only applies to executor {owners}, but this profile uses "
                    f"executor '{executor}'. Remove '{key}' or set executor = \"{spec.executors[0]}\". "
                    f"Valid keys for executor '{executor}': {', '.join(valid)}.",
                    name,
                    key,
                )
            if key == "sbatch_flags" and isinstance(value, dict):
                # true = bare flag (--requeue); false = drop an inherited flag
                value = {k: ("" if x is True else x) for k, x in value.items() if x is not False}
            try:
                values[key] = coerce(spec, value)
            except ValueError as exc:
                note = ""
                if origin.get(key, name) != name:
                    note = f" The value is inherited from profile '{origin[key]}': fix it there or override it here."
                raise self.fail(f"{exc}{note}", name, key) from None
        self.check_rules(name, executor, values, inherited)
        return self.make_profile(name, executor, values)

    def check_rules(self, name: str, executor: str, values: dict[str, Any], inherited: Callable[[str], str]) -> None:
        if "time" in values and not is_slurm_time(values["time"]):
            raise self.fail(
                f"time must be a Slurm time limit ({TIME_FORMATS_TEXT}), got {values['time']!r}{inherited('time')}. "
                'Write e.g. time = "04:00:00" (4 hours) or time = "1-00:00:00" (1 day).',
                name,
                "time",
            )
        if executor == "docker" and "container_image" not in values:
            raise self.fail(
                'executor "docker" needs container_image. '
                'Add e.g. container_image = "nvcr.io/nvidia/pytorch:25.01-py3" '
                "(an image with nemotron installed).",
                name,
                "container_image",
            )
        for key in ("user", "identity", "port"):
            if key in values and "host" not in values:
                raise self.fail(
                    f"{key} is set{inherited(key)} but host is not; {key} only applies when submitting over SSH. "
                    f'Add host = "login.cluster.example" or remove {key}.',
                    name,
                    key,
                )
        for var in values.get("env_vars", {}):
            if not ENV_VAR_NAME.match(var):
                raise self.fail(
                    f"env_vars: '{var}' is not a valid environment variable name. "
                    "Use letters, digits and underscores, not starting with a digit.",
                    name,
                    "env_vars",
                )
        for flag in values.get("sbatch_flags", {}):
            if flag.startswith("-"):
                raise self.fail(
                    f'sbatch_flags: write the flag without leading dashes: "{flag.lstrip("-")}" instead of "{flag}".',
                    name,
                    "sbatch_flags",
                )
            own = FIRST_CLASS_SBATCH.get(flag.replace("_", "-"))
            if own:
                raise self.fail(
                    f"sbatch_flags: '{flag}' has its own key. "
                    f"Set {own} = ... in the profile instead of in sbatch_flags.",
                    name,
                    "sbatch_flags",
                )

    def make_profile(self, name: str, executor: str, v: dict[str, Any]) -> Profile:
        slurm = docker = None
        if executor == "slurm":
            ssh = None
            if "host" in v:
                identity = v.get("identity")
                ssh = SSHSettings(
                    host=v["host"],
                    user=v.get("user"),
                    identity=str(Path(identity).expanduser()) if identity else None,
                    port=v.get("port", 22),
                )
            slurm = SlurmSettings(
                account=v.get("account"),
                partition=v.get("partition"),
                nodes=v.get("nodes", 1),
                ntasks_per_node=v.get("ntasks_per_node", 1),
                gpus_per_node=v.get("gpus_per_node"),
                cpus_per_task=v.get("cpus_per_task"),
                mem=v.get("mem"),
                time=v.get("time", "01:00:00"),
                exclusive=v.get("exclusive", False),
                qos=v.get("qos"),
                reservation=v.get("reservation"),
                constraint=v.get("constraint"),
                sbatch_flags=v.get("sbatch_flags", {}),
                requeue_signal_seconds=v.get("requeue_signal_seconds"),
                container_image=v.get("container_image"),
                container_mounts=v.get("container_mounts", ()),
                ssh=ssh,
            )
        elif executor == "docker":
            docker = DockerSettings(
                container_image=v["container_image"],
                container_mounts=v.get("container_mounts", ()),
                gpus_per_node=v.get("gpus_per_node"),
                network=v.get("network"),
                shm_size=v.get("shm_size"),
            )
        return Profile(
            name=name,
            executor=executor,  # type: ignore[arg-type]
            source=self.path,
            env_vars=v.get("env_vars", {}),
            setup=v.get("setup", ()),
            python=v.get("python", "python"),
            job_dir=v.get("job_dir"),
            nproc_per_node=v.get("nproc_per_node", 1),
            slurm=slurm,
            docker=docker,
        )
