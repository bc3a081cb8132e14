"""Shared fixtures: an isolated NEMOTRON_HOME, the real CLI as a subprocess, the local Slurm cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


@pytest.fixture
def slurm_env_file(nemotron_home, tmp_path) -> Path:
    """An env.toml with profiles for the local cluster, using this interpreter inside jobs."""
    path = tmp_path / "env.toml"
    path.write_text(
        f"""
[local-slurm]
executor = "slurm"
account = "local"
partition = "debug"
time = "00:10:00"
python = "{sys.executable}"

[local-slurm-slow]
extends = "local-slurm"
setup = ["sleep 120"]
"""
    )
    return path
