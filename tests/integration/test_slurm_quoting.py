"""Quoting on the real local Slurm cluster (issue 9, point 5): a profile whose env_vars hold spaces, quotes,
`;` and `$(...)`, an interpreter path and a NEMOTRON_HOME with spaces. The job completes, each value arrives
verbatim in the job step's environment, nothing of a value runs, and `--chdir`/`--config` name the job dir.

The interpreter is a wrapper script (in a folder with a space) that records the step's environment, argv and
working directory, then runs this interpreter.
"""

from __future__ import annotations

import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.usefixtures("slurm_cluster")]

PREP = ("nano3", "data", "prep", "pretrain", "-c", "tiny", "array_tasks=0")
TIMEOUT = 300


def hostile_env_vars(marker: Path) -> dict[str, str]:
    return {
        "A": "x y",
        "Q": "it's",
        "S": "a;b",
        "D": f"$(touch {marker})",
        "B": f"`touch {marker}`",
        "DOLLARS": '$$ $HOME ${HOME} \\ "q" *',
    }


def read_nul(path: Path) -> list[str]:
    return [item for item in path.read_text().split("\0") if item]


@pytest.fixture
def spaced_home(nemotron_home, tmp_path, monkeypatch) -> Path:
    home = tmp_path / "a b" / "home"
    home.mkdir(parents=True)
    monkeypatch.setenv("NEMOTRON_HOME", str(home))
    monkeypatch.setenv("NEMORUN_HOME", str(tmp_path / "nemo_run"))  # NeMo-Run's own folder must be plain
    for name in ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    return home


def test_hostile_values_arrive_verbatim_in_a_slurm_job(run_cli, add_env_profile, spaced_home, tmp_path):
    marker = tmp_path / "pwned"
    record = tmp_path / "step record"
    record.mkdir()
    wrapper = tmp_path / "my bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/bash\n"
        f"cd_record={shlex.quote(str(record))}\n"
        'env -0 > "$cd_record/env"; printf "%s\\0" "$@" > "$cd_record/argv"; pwd > "$cd_record/cwd"\n'
        f'exec {shlex.quote(sys.executable)} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    profile = add_env_profile(
        "hostile",
        python=str(wrapper),
        env_vars=hostile_env_vars(marker),
        setup=[f"env -0 > {shlex.quote(str(record / 'batch-env'))}"],
    )

    preview = run_cli(*PREP, "--dry-run", "--batch", profile, timeout=TIMEOUT)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    script = preview.stdout.split("--- sbatch script ---\n", 1)[1].split("\n--- dry run", 1)[0]
    check = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    done = run_cli(*PREP, "--run", profile, timeout=TIMEOUT)
    match = re.search(r"submitted (\S+) as Slurm job (\d+)", " ".join(done.stdout.split()))
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        assert match, done.stdout
        name = match.group(1)
        job_dir = spaced_home / "jobs" / name
        assert f"job {name} COMPLETED" in " ".join(done.stdout.split())
        for env_file in ("batch-env", "env"):  # the batch shell (setup) and the job step (srun)
            env = dict(item.split("=", 1) for item in read_nul(record / env_file))
            for key, value in hostile_env_vars(marker).items():
                assert env.get(key) == value, (env_file, key, env.get(key), value)
            assert env["NEMOTRON_ARTIFACTS_ROOT"] == str(spaced_home / "artifacts")
        assert read_nul(record / "argv") == [
            "-m",
            "nemotron.stages.data_prep_pretrain",
            "--config",
            str(job_dir / "config.yaml"),
        ]
        assert (record / "cwd").read_text().strip() == str(job_dir)
        logs = sorted((job_dir / "logs").glob("log-*_0.out"))  # the step's log, restart count expanded
        assert logs and "published" in logs[0].read_text()
        assert not marker.exists()
    finally:
        if match:
            subprocess.run(["scancel", match.group(2)], capture_output=True, timeout=60)
