"""Shared fixtures: an isolated NEMOTRON_HOME, the real CLI as a subprocess, the local Slurm cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def nemotron_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m nemotron`."""
    script = Path(sys.executable).with_name("nemotron")
    return [str(script)] if script.exists() else [sys.executable, "-m", "nemotron"]


@pytest.fixture
def nemotron_home(tmp_path, monkeypatch) -> Path:
    """A fresh NEMOTRON_HOME (jobs, artifacts, NeMo-Run state) and no env.toml from the checkout."""
    home = tmp_path / "nemotron-home"
    home.mkdir()
    monkeypatch.setenv("NEMOTRON_HOME", str(home))
    monkeypatch.delenv("NEMOTRON_ARTIFACTS_ROOT", raising=False)
    monkeypatch.setenv("NEMORUN_HOME", str(home / "nemo_run"))  # read once per process by nemo_run
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "env.toml"))
    (tmp_path / "env.toml").write_text("")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def cli_command() -> list[str]:
    """The command that starts the real `nemotron` CLI (for a test that drives the process itself)."""
    return nemotron_command()


@pytest.fixture
def run_cli(nemotron_home):
    """Run the real `nemotron` CLI in a subprocess; returns CompletedProcess (text)."""

    def run(*args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [*nemotron_command(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
        if check and done.returncode != 0:
            raise AssertionError(f"nemotron {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    return run


def _slurm_ready() -> str | None:
    """None when the local cluster answers, else why not."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm client tools are not installed (run scripts/slurm-cluster.sh start)"
    try:
        info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
        acct = subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "the Slurm controller does not answer"
    if info.returncode != 0 or not info.stdout.strip():
        return f"sinfo failed: {info.stderr.strip()} (run scripts/slurm-cluster.sh start)"
    if acct.returncode != 0:
        return f"sacct failed: {acct.stderr.strip()} (slurmdbd must run)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Skip when no local Slurm runs, unless NEMOTRON_REQUIRE_SLURM=1 (CI), where that is a failure."""
    problem = _slurm_ready()
    if problem:
        if os.environ.get("NEMOTRON_REQUIRE_SLURM") == "1":
            pytest.fail(f"local Slurm cluster required but not ready: {problem}")
        pytest.skip(problem)


LOCAL_SLURM_PROFILE = "local-slurm"


def toml_value(value: object) -> str:
    """`value` as a TOML value: str, bool, int, float, list, or dict (an inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, Path)):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def toml_profile(name: str, **settings: object) -> str:
    """One env.toml profile table, e.g. toml_profile("x", extends="local-slurm", nodes=2)."""
    return f"\n[{name}]\n" + "".join(f"{key} = {toml_value(value)}\n" for key, value in settings.items())


@pytest.fixture
def toml_table():
    """toml_profile, for tests that write an env.toml of their own (test modules cannot import conftest)."""
    return toml_profile


@pytest.fixture
def slurm_env_file(nemotron_home, tmp_path) -> Path:
    """The env.toml (NEMOTRON_ENV_FILE) with [local-slurm]: the local cluster, this interpreter inside jobs;
    and [local-slurm-slow], whose setup sleeps 120 s. add_env_profile adds more profiles to it."""
    path = tmp_path / "env.toml"
    path.write_text(
        toml_profile(
            LOCAL_SLURM_PROFILE,
            executor="slurm",
            account="local",
            partition="debug",
            time="00:10:00",
            python=sys.executable,
        )
        + toml_profile("local-slurm-slow", extends=LOCAL_SLURM_PROFILE, setup=["sleep 120"])
    )
    return path


@pytest.fixture
def add_env_profile(slurm_env_file) -> Callable[..., str]:
    """add_env_profile(name, **settings) appends [name] to slurm_env_file and returns the name. The profile
    extends local-slurm unless `extends` says otherwise (extends=None: a profile of its own)."""

    def add(name: str, *, extends: str | None = LOCAL_SLURM_PROFILE, **settings: object) -> str:
        if extends is not None:
            settings = {"extends": extends, **settings}
        with slurm_env_file.open("a") as handle:
            handle.write(toml_profile(name, **settings))
        return name

    return add


@pytest.fixture(scope="session")
def small_pretrain() -> tuple[str, ...]:
    """Overrides that shrink the tiny pretraining recipe to seconds per run: 2 layers of width 64,
    sequences of 64 tokens, batches of 8 (each test adds its own schedule and run settings)."""
    return (
        "model.num_layers=2",
        "model.hidden_size=64",
        "model.num_attention_heads=4",
        "model.num_query_groups=2",
        "model.ffn_hidden_size=128",
        "model.seq_length=64",
        "train.global_batch_size=8",
        "train.micro_batch_size=4",
        "train.eval_iters=2",
    )
