"""The env.toml vocabulary: which keys each executor accepts and how each value is checked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nemotron.ranges import require_int_in_range

EXECUTORS = ("local", "slurm", "docker")
DEFAULT_EXECUTOR = "local"
RESERVED_TABLES = ("wandb", "artifacts")

STRING = "string"
INTEGER = "integer"
BOOLEAN = "boolean"
STRING_OR_INTEGER = "string or integer"
STRING_LIST = "array of strings"
LINES = "array of strings (or one string)"
VALUE_TABLE = "table of name = string/integer/boolean"

_ALL = EXECUTORS
_LOCAL = ("local",)
_SLURM = ("slurm",)
_DOCKER = ("docker",)
_SLURM_DOCKER = ("slurm", "docker")


@dataclass(frozen=True)
class KeySpec:
    """One accepted key: its value kind, the executors that accept it and its limits."""

    name: str
    kind: str
    executors: tuple[str, ...]
    minimum: int | None = None
    maximum: int | None = None
    nonempty: bool = False
    example: str = ""


PROFILE_KEYS: dict[str, KeySpec] = {
    s.name: s
    for s in (
        # common
        KeySpec("executor", STRING, _ALL, nonempty=True, example='"slurm"'),
        KeySpec("extends", STRING, _ALL, nonempty=True, example='"my-cluster"'),
        KeySpec("env_vars", VALUE_TABLE, _ALL, example='{ NCCL_DEBUG = "WARN" }'),
        KeySpec("setup", LINES, _ALL, example='["source /path/venv/bin/activate"]'),
        KeySpec("python", STRING, _ALL, nonempty=True, example='"python"'),
        KeySpec("job_dir", STRING, _ALL, nonempty=True, example='"/lustre/me/jobs"'),
        # local
        KeySpec("nproc_per_node", INTEGER, _LOCAL, minimum=1, example="2"),
        # slurm
        KeySpec("account", STRING, _SLURM, example='"my-account"'),
        KeySpec("partition", STRING, _SLURM, example='"batch"'),
        KeySpec("nodes", INTEGER, _SLURM, minimum=1, example="2"),
        KeySpec("ntasks_per_node", INTEGER, _SLURM, minimum=1, example="8"),
        KeySpec("gpus_per_node", INTEGER, _SLURM_DOCKER, minimum=0, example="8"),
        KeySpec("cpus_per_task", INTEGER, _SLURM, minimum=1, example="16"),
        KeySpec("mem", STRING_OR_INTEGER, _SLURM, example='"0"'),
        KeySpec("time", STRING, _SLURM, nonempty=True, example='"04:00:00"'),
        KeySpec("exclusive", BOOLEAN, _SLURM, example="true"),
        KeySpec("qos", STRING, _SLURM, example='"normal"'),
        KeySpec("reservation", STRING, _SLURM, example='"my-reservation"'),
        KeySpec("constraint", STRING, _SLURM, example='"h100"'),
        KeySpec("sbatch_flags", VALUE_TABLE, _SLURM, example='{ "mail-type" = "END" }'),
        KeySpec("requeue_signal_seconds", INTEGER, _SLURM, minimum=1, maximum=65535, example="300"),
        KeySpec("container_image", STRING, _SLURM_DOCKER, nonempty=True, example='"nvcr.io/..."'),
        KeySpec("container_mounts", STRING_LIST, _SLURM_DOCKER, example='["/data:/data"]'),
        KeySpec("host", STRING, _SLURM, nonempty=True, example='"login.cluster.example"'),
        KeySpec("user", STRING, _SLURM, nonempty=True, example='"me"'),
        KeySpec("identity", STRING, _SLURM, nonempty=True, example='"~/.ssh/id_ed25519"'),
        KeySpec("port", INTEGER, _SLURM, minimum=1, maximum=65535, example="22"),
        # docker
        KeySpec("network", STRING, _DOCKER, nonempty=True, example='"host"'),
        KeySpec("shm_size", STRING, _DOCKER, nonempty=True, example='"16g"'),
    )
}

WANDB_KEYS: dict[str, KeySpec] = {
    s.name: s
    for s in (
        KeySpec("project", STRING, (), nonempty=True, example='"nemotron"'),
        KeySpec("entity", STRING, (), nonempty=True, example='"my-team"'),
        KeySpec("api_key", STRING, (), nonempty=True, example='"..."'),
    )
}

ARTIFACTS_KEYS: dict[str, KeySpec] = {
    "root": KeySpec("root", STRING, (), nonempty=True, example='"/lustre/team/nemotron/artifacts"'),
}

# sbatch options that have a first-class key; putting them in sbatch_flags is an error.
FIRST_CLASS_SBATCH = {
    "account": "account",
    "partition": "partition",
    "nodes": "nodes",
    "ntasks-per-node": "ntasks_per_node",
    "gpus-per-node": "gpus_per_node",
    "cpus-per-task": "cpus_per_task",
    "mem": "mem",
    "time": "time",
    "exclusive": "exclusive",
    "qos": "qos",
    "reservation": "reservation",
    "constraint": "constraint",
}

ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def keys_for(executor: str) -> list[str]:
    """Names of the profile keys valid for an executor, in documentation order."""
    return [name for name, spec in PROFILE_KEYS.items() if executor in spec.executors]


def describe(value: Any) -> str:
    """A value as a TOML user sees it: "string '2'", "integer 2", "boolean true", ..."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, list):
        return f"array {value!r}"
    if isinstance(value, dict):
        return "table {" + ", ".join(f"{k} = ..." for k in value) + "}"
    return f"{type(value).__name__} {value!r}"


def _table_value(key: str, name: Any, value: Any) -> str:
    """Convert one env_vars/sbatch_flags value to a string; booleans become 'true'/'false'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    raise ValueError(
        f"{key}.{name} must be a string, integer or boolean, got {describe(value)}. "
        f'Write it as a string, e.g. {name} = "{value}".'
    )


def coerce(spec: KeySpec, value: Any) -> Any:
    """Check value against spec and return it in its Python form; ValueError says what is wrong."""
    key = spec.name
    fix = f"Write e.g. {key} = {spec.example}." if spec.example else ""
    if spec.kind == STRING:
        if not isinstance(value, str):
            quoted = (
                f' Quote it: {key} = "{value}".'
                if isinstance(value, (int, float)) and not isinstance(value, bool)
                else f" {fix}"
            )
            raise ValueError(f"{key} must be a string, got {describe(value)}.{quoted}")
        result: Any = value
    elif spec.kind == STRING_OR_INTEGER:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"{key} must be a string or an integer, got {describe(value)}. {fix}")
        result = str(value)
    elif spec.kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = fix
            if isinstance(value, str) and value.strip().isdigit():
                hint = f"Remove the quotes: {key} = {value.strip()}."
            raise ValueError(f"{key} must be an integer, got {describe(value)}. {hint}")
        require_int_in_range(key, value, ValueError, minimum=spec.minimum, maximum=spec.maximum, fix=fix)
        result = value
    elif spec.kind == BOOLEAN:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be a boolean (true or false, unquoted), got {describe(value)}. {fix}")
        result = value
    elif spec.kind in (STRING_LIST, LINES):
        if spec.kind == LINES and isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{key} must be an {STRING_LIST}, got {describe(value)}. {fix}")
        result = tuple(value)
    elif spec.kind == VALUE_TABLE:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a table, got {describe(value)}. {fix}")
        result = {str(k): _table_value(key, k, v) for k, v in value.items()}
    else:  # pragma: no cover - schema programming error
        raise AssertionError(f"unknown kind {spec.kind!r} for {key}")
    if spec.nonempty and isinstance(result, str) and not result.strip():
        raise ValueError(f"{key} must not be empty. Remove the key or give it a value, e.g. {key} = {spec.example}.")
    return result


_TIME_FORMATS = (
    re.compile(r"^(?P<m>\d+)$"),
    re.compile(r"^(?P<m>\d+):(?P<s>\d{1,2})$"),
    re.compile(r"^(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d{1,2}):(?P<m>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})$"),
)
TIME_FORMATS_TEXT = "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"


def is_slurm_time(text: str) -> bool:
    """True when text is a Slurm time limit in one of the accepted formats."""
    for pattern in _TIME_FORMATS:
        match = pattern.match(text)
        if not match:
            continue
        parts = match.groupdict()
        leading = next(k for k in ("d", "h", "m") if parts.get(k) is not None)
        if parts.get("s") is not None and int(parts["s"]) >= 60:
            return False
        if leading != "m" and parts.get("m") is not None and int(parts["m"]) >= 60:
            return False
        if leading == "d" and int(parts["h"]) >= 24:
            return False
        return True
    return False
