"""Every value that reaches a shell is quoted: the sbatch script of a hostile profile passes `bash -n`, its
exports deliver each env_vars value verbatim (a `$(...)` value runs nothing), and paths with spaces stay one
word after `--chdir`, `--config` and `--output` (issue 9, point 5). The same values through the local wrapper.

The scripts come from the real CLI's dry run (NeMo-Run renders them); tests/integration/test_slurm_quoting.py
runs the same profile on the local Slurm cluster.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

PREP = ("nano3", "data", "prep", "pretrain", "-c", "tiny")


def hostile_env_vars(marker: Path) -> dict[str, str]:
    """Values that break or inject into an unquoted `export KEY=VALUE`; `marker` must never be created."""
    return {
        "A": "x y",
        "Q": "it's",
        "S": "a;b",
        "D": f"$(touch {marker})",
        "B": f"`touch {marker}`",
        "DOLLARS": '$$ $HOME ${HOME} \\ "q" *',
        "lower_case": "kept as written",
    }


@pytest.fixture
def spaced_home(nemotron_home, tmp_path, monkeypatch) -> Path:
    """NEMOTRON_HOME with a space in it (jobs, config.yaml and logs live there); NeMo-Run's home stays plain."""
    home = tmp_path / "a b" / "home"
    home.mkdir(parents=True)
    monkeypatch.setenv("NEMOTRON_HOME", str(home))
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemo_run"))
    return home


def write_profiles(tmp_path: Path, marker: Path, toml_profile: Callable[..., str]) -> None:
    slurm = {"executor": "slurm", "account": "acct", "partition": "cpu", "time": "00:10:00"}
    (tmp_path / "env.toml").write_text(
        toml_profile("hostile", **slurm, python="/opt/my venv/bin/python", env_vars=hostile_env_vars(marker))
        + toml_profile(
            "hostile-container",
            **slurm,
            container_image="/images/my image.sqsh",
            container_mounts=["/data x:/data x"],
            env_vars=hostile_env_vars(marker),
        )
    )


def sbatch_scripts(run_cli, *args: str) -> list[str]:
    done = run_cli(*PREP, *args, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    parts = re.split(r"^--- (.+) ---$", done.stdout, flags=re.MULTILINE)
    scripts = [body for title, body in zip(parts[1::2], parts[2::2], strict=True) if title.startswith("sbatch script")]
    assert scripts, done.stdout
    return scripts


def bash_n(script: str) -> None:
    check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, f"bash -n rejects the script: {check.stderr}\n{script}"


def exported(script: str, cwd: Path) -> dict[str, str]:
    """The environment the script's `export` lines build (run alone: nothing of Slurm is called)."""
    lines = [line for line in script.splitlines() if line.startswith("export ")]
    done = subprocess.run(
        ["bash", "-c", "\n".join(["set -e", *lines, "env -0"])],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": os.environ["PATH"], "HOME": "/home/somebody"},
    )
    assert done.returncode == 0, done.stderr
    return dict(item.split("=", 1) for item in done.stdout.split("\0") if item)


def srun_words(script: str) -> list[str]:
    (line,) = [line for line in script.splitlines() if line.startswith("srun ") and "--output" in line]
    return shlex.split(line)


def after(words: list[str], flag: str) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word == flag]


@pytest.mark.parametrize("array_tasks", ["0", "2"])
def test_hostile_profile_gives_a_valid_script_with_verbatim_values(
    run_cli, spaced_home, tmp_path, array_tasks, toml_table
):
    marker = tmp_path / "pwned"
    write_profiles(tmp_path, marker, toml_table)
    scripts = sbatch_scripts(run_cli, f"array_tasks={array_tasks}", "--batch", "hostile")
    assert len(scripts) == (1 if array_tasks == "0" else 2)
    for script in scripts:
        bash_n(script)
        env = exported(script, tmp_path)
        for key, value in hostile_env_vars(marker).items():
            assert env.get(key) == value, (key, env.get(key), value)
        assert env["NEMOTRON_ARTIFACTS_ROOT"] == str(spaced_home / "artifacts")
        assert not marker.exists()

        words = srun_words(script)
        job_dir = str(spaced_home / "jobs") + "/"
        assert after(words, "--chdir")[-1].startswith(job_dir)  # the last --chdir wins: the job dir, one word
        assert after(words, "--config") == [after(words, "--chdir")[-1] + "/config.yaml"]
        (output,) = after(words, "--output")
        assert output.startswith(job_dir) and output.endswith("_${SLURM_RESTART_COUNT:-0}.out")
        assert "/opt/my venv/bin/python" in words
        assert f"if [ -f {shlex.quote(after(words, '--chdir')[-1] + '/secrets.env')} ]" in script


def test_container_image_and_mounts_with_spaces_stay_one_word(run_cli, spaced_home, tmp_path, toml_table):
    marker = tmp_path / "pwned"
    write_profiles(tmp_path, marker, toml_table)
    (script,) = sbatch_scripts(run_cli, "array_tasks=0", "--batch", "hostile-container")
    bash_n(script)
    words = srun_words(script)
    assert after(words, "--container-image") == ["/images/my image.sqsh"]
    (mounts,) = after(words, "--container-mounts")
    assert mounts.split(",")[0] == "/data x:/data x"
    assert f"{spaced_home}/jobs:{spaced_home}/jobs" in mounts.split(",")
    assert not marker.exists()


def test_nemo_run_home_with_a_space_is_refused_before_anything_is_written(
    run_cli, nemotron_home, tmp_path, monkeypatch, toml_table
):
    """NeMo-Run writes its own folder into the srun line and the sbatch command unquoted: refuse it with the fix."""
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemo run"))
    write_profiles(tmp_path, tmp_path / "pwned", toml_table)
    done = run_cli(*PREP, "array_tasks=0", "--dry-run", "--batch", "hostile")
    assert done.returncode != 0
    assert "NEMORUN_HOME" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "nemo run").exists()


@pytest.mark.integration
def test_local_wrapper_delivers_hostile_values_verbatim(run_cli, spaced_home, tmp_path, toml_table):
    """The local backend's bash wrapper: a profile's env_vars and setup, a job dir with a space in its path."""
    marker = tmp_path / "pwned"
    dump = tmp_path / "job env"
    (tmp_path / "env.toml").write_text(
        toml_table(
            "hostile-local",
            executor="local",
            env_vars=hostile_env_vars(marker),
            setup=[f"env -0 > {shlex.quote(str(dump))}"],
        )
    )
    done = run_cli(*PREP, "--run", "hostile-local", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    env = dict(item.split("=", 1) for item in dump.read_text().split("\0") if item)
    for key, value in hostile_env_vars(marker).items():
        assert env.get(key) == value, (key, env.get(key), value)
    assert env["NEMOTRON_ARTIFACTS_ROOT"] == str(spaced_home / "artifacts")
    assert not marker.exists()
