"""Distributed stages (single_task=False): torchrun on Slurm (one srun task per node) and locally, and the
time-limit warning (`--signal=USR1@N`) of stages that requeue themselves. Rendered, never submitted."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from nemotron.execution.dry_run import render_dry_run
from nemotron.execution.launcher import LaunchRequest, backend_for, prepare
from nemotron.execution.records import jobs_root
from nemotron.execution.slurm_backend import render_sbatch_preview
from nemotron.execution.slurm_executor import RDZV_SETUP
from nemotron.stages.catalog import NANO3_DATA_PREP_PRETRAIN, NANO3_PRETRAIN

# A stage that runs like a training stage, with a config the tests can resolve without artifacts.
DISTRIBUTED = dataclasses.replace(NANO3_DATA_PREP_PRETRAIN, single_task=False, requeue_on_signal=True)
DISTRIBUTED_NO_REQUEUE = dataclasses.replace(NANO3_DATA_PREP_PRETRAIN, single_task=False)

PROFILES = """
[gpu]
executor = "slurm"
account = "acct"
partition = "batch"
nodes = 2
ntasks_per_node = 8
gpus_per_node = 8
time = "04:00:00"
python = "/venv/bin/python"

[gpu-cpus]
extends = "gpu"
cpus_per_task = 16

[gpu-container]
extends = "gpu"
container_image = "/images/nemotron.sqsh"
python = "python"

[gpu-late-warning]
extends = "gpu"
requeue_signal_seconds = 600
sbatch_flags = { signal = "B:USR2@30", "mail-type" = "END" }

[cpu]
executor = "slurm"
account = "acct"
nodes = 3
ntasks_per_node = 4

[cpu-zero-gpus]
extends = "cpu"
gpus_per_node = 0

[one]
executor = "slurm"
account = "acct"

[local2]
executor = "local"
nproc_per_node = 2

[local1]
executor = "local"
"""

TORCHRUN_GPU = (
    "-m torch.distributed.run --nnodes=$SLURM_NNODES --nproc-per-node=8 --rdzv-backend=c10d "
    "--rdzv-endpoint=$NEMOTRON_RDZV_HOST:$NEMOTRON_RDZV_PORT --rdzv-id=$SLURM_JOB_ID "
    "-m nemotron.stages.data_prep_pretrain --config {job_dir}/config.yaml"
)


@pytest.fixture
def env_file(nemotron_home, tmp_path) -> Path:
    path = tmp_path / "env.toml"
    path.write_text(PROFILES)
    return path


def prepared(stage, profile: str | None, *overrides: str):
    overrides = overrides if any(o.startswith("array_tasks=") for o in overrides) else ("array_tasks=0", *overrides)
    return prepare(LaunchRequest(stage, "tiny", tuple(overrides), profile, ()))


def script_of(stage, profile: str, *overrides: str) -> tuple[str, str]:
    """(sbatch script, job dir) of a one-task job."""
    p = prepared(stage, profile, *overrides)
    ((task, script),) = render_sbatch_preview(p.profile, p.job)
    assert task == "main"
    return script, f"{jobs_root()}/{p.job.name}"


def sbatch_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def srun_line(script: str) -> str:
    (line,) = [line for line in script.splitlines() if line.startswith("srun ") and "--output" in line]
    return line


def srun_command(line: str) -> list[str]:
    """What srun runs: the words after the last srun option (as the batch shell splits them)."""
    words = shlex.split(line)
    start = words.index("bash") if "bash" in words else next(i for i, w in enumerate(words) if w.endswith("python"))
    return words[start:]


# -- Slurm: torchrun, one task per node -----------------------------------------------------------


def test_distributed_stage_runs_torchrun_once_per_node(env_file):
    script, job_dir = script_of(DISTRIBUTED, "gpu")
    lines = sbatch_lines(script)
    for expected in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8"):
        assert expected in lines  # the allocation is the profile's
    srun = srun_line(script)
    assert "--nodes=2 --ntasks=2 --ntasks-per-node=1" in srun
    assert f"--chdir {job_dir}" in srun
    assert "--cpus-per-task" not in srun
    inner = 'trap "" USR1; exec /venv/bin/python ' + TORCHRUN_GPU.format(job_dir=job_dir)
    assert srun.endswith(f"bash -c '{inner}'"), srun
    assert srun_command(srun) == ["bash", "-c", inner]


def test_rendezvous_host_and_port_are_computed_inside_the_job(env_file):
    script, _ = script_of(DISTRIBUTED, "gpu")
    lines = script.splitlines()
    for line in RDZV_SETUP:
        assert line in lines
    assert 'export NEMOTRON_RDZV_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)' in lines
    assert lines.index(RDZV_SETUP[0]) < lines.index(srun_line(script))


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="needs Slurm's scontrol (hostlist expansion)")
def test_rendezvous_setup_lines_give_the_first_node_and_a_port():
    done = subprocess.run(
        ["bash", "-c", "\n".join([*RDZV_SETUP, 'echo "$NEMOTRON_RDZV_HOST:$NEMOTRON_RDZV_PORT"'])],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SLURM_JOB_NODELIST": "gpu[07-08],cpu01", "SLURM_JOB_ID": "123456"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "gpu07:32956"  # 29500 + 123456 % 10000


def test_torchrun_command_runs_with_usr1_ignored_and_slurm_values(env_file, tmp_path):
    """Run the srun command with a stand-in python: torchrun inherits SIG_IGN for SIGUSR1, and the
    `$SLURM_*` / rendezvous values are expanded inside the job step."""
    script, job_dir = script_of(DISTRIBUTED, "gpu")
    fake = tmp_path / "python"
    fake.write_text('#!/bin/bash\necho "args: $*"\ngrep SigIgn /proc/self/status\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    command = srun_command(srun_line(script))
    command[2] = command[2].replace("/venv/bin/python", str(fake))
    env = {
        **os.environ,
        "SLURM_NNODES": "2",
        "SLURM_JOB_ID": "77",
        "NEMOTRON_RDZV_HOST": "gpu07",
        "NEMOTRON_RDZV_PORT": "29577",
    }
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    args = done.stdout.splitlines()[0]
    assert args == (
        "args: -m torch.distributed.run --nnodes=2 --nproc-per-node=8 --rdzv-backend=c10d "
        "--rdzv-endpoint=gpu07:29577 --rdzv-id=77 -m nemotron.stages.data_prep_pretrain "
        f"--config {job_dir}/config.yaml"
    )
    ignored = int(done.stdout.splitlines()[1].split()[1], 16)
    assert ignored & (1 << (10 - 1)), "SIGUSR1 (10) must be ignored by torchrun"


def test_cpus_per_task_gives_the_torchrun_task_the_node_share(env_file):
    script, _ = script_of(DISTRIBUTED, "gpu-cpus")
    assert "#SBATCH --cpus-per-task=16" in sbatch_lines(script)
    assert "--ntasks-per-node=1 --cpus-per-task=128" in srun_line(script)


def test_container_profile_runs_torchrun_in_the_container(env_file):
    script, _ = script_of(DISTRIBUTED, "gpu-container")
    srun = srun_line(script)
    assert "--container-image /images/nemotron.sqsh" in srun
    assert "--chdir" not in srun.split("--container-image")[1]
    assert "exec python -m torch.distributed.run --nnodes=$SLURM_NNODES --nproc-per-node=8" in srun


@pytest.mark.parametrize(("profile", "expected"), [("gpu", 8), ("cpu", 4), ("cpu-zero-gpus", 4), ("one", 1)])
def test_processes_per_node(env_file, profile, expected):
    p = prepared(DISTRIBUTED, profile)
    assert p.profile.processes_per_node() == expected
    script, _ = script_of(DISTRIBUTED, profile)
    assert f"--nproc-per-node={expected} " in srun_line(script)


def test_array_phases_pass_their_arguments_to_torchrun(env_file):
    p = prepared(DISTRIBUTED, "gpu", "array_tasks=2")
    scripts = dict(render_sbatch_preview(p.profile, p.job))
    assert list(scripts) == ["shards", "finalize"]
    for phase, script in scripts.items():
        assert srun_line(script).endswith(f"/config.yaml --phase {phase}'")


# -- Slurm: the time-limit warning ----------------------------------------------------------------


def test_requeue_stage_asks_for_usr1_before_the_time_limit(env_file):
    script, _ = script_of(DISTRIBUTED, "gpu")
    assert "#SBATCH --signal=USR1@120" in sbatch_lines(script)  # not B:: the step's processes get it
    lines = script.splitlines()
    assert "trap '' USR1" in lines  # the batch shell survives `scancel --full --signal=USR1`
    assert lines.index("trap '' USR1") < lines.index(srun_line(script))


def test_profile_overrides_the_warning_time_and_replaces_a_signal_flag(env_file):
    script, _ = script_of(DISTRIBUTED, "gpu-late-warning")
    lines = sbatch_lines(script)
    assert "#SBATCH --signal=USR1@600" in lines
    assert not any("USR2" in line for line in lines)
    assert "#SBATCH --mail-type=END" in lines


def test_stage_without_requeue_gets_no_signal(env_file):
    script, _ = script_of(DISTRIBUTED_NO_REQUEUE, "gpu")
    assert not any(line.startswith("#SBATCH --signal") for line in sbatch_lines(script))
    assert "trap '' USR1" not in script.splitlines()
    assert 'trap "" USR1; exec' in srun_line(script)  # torchrun never dies of a stray USR1


def test_signal_flag_of_a_profile_passes_through_for_other_stages(env_file):
    script, _ = script_of(NANO3_DATA_PREP_PRETRAIN, "gpu-late-warning")
    assert "#SBATCH --signal=B:USR2@30" in sbatch_lines(script)


def test_single_task_stage_is_unchanged(env_file):
    script, job_dir = script_of(NANO3_DATA_PREP_PRETRAIN, "gpu")
    srun = srun_line(script)
    assert "--nodes=1 --ntasks=1 --chdir" in srun
    assert srun.endswith(f"/venv/bin/python -m nemotron.stages.data_prep_pretrain --config {job_dir}/config.yaml")
    assert "torch.distributed.run" not in script and "--ntasks-per-node=1" not in srun
    assert "NEMOTRON_RDZV" not in script and "USR1" not in script
    assert not any(line.startswith("#SBATCH --signal") for line in sbatch_lines(script))


def test_pretrain_stage_is_distributed_and_requeues():
    assert NANO3_PRETRAIN.single_task is False and NANO3_PRETRAIN.requeue_on_signal is True
    assert NANO3_PRETRAIN.requeue_signal_seconds == 120


def test_warning_seconds_only_for_slurm_requeue_stages(env_file):
    assert prepared(DISTRIBUTED, "gpu").job.requeue_signal_seconds == 120
    assert prepared(DISTRIBUTED, "gpu-late-warning").job.requeue_signal_seconds == 600
    assert prepared(DISTRIBUTED_NO_REQUEUE, "gpu").job.requeue_signal_seconds is None
    assert prepared(DISTRIBUTED, "local2").job.requeue_signal_seconds is None
    assert prepared(DISTRIBUTED, None).job.requeue_signal_seconds is None


def test_dry_run_shows_the_torchrun_and_signal_lines(env_file):
    text = render_dry_run(prepared(DISTRIBUTED, "gpu"))
    assert "#SBATCH --signal=USR1@120" in text
    assert "--ntasks-per-node=1" in text
    assert re.search(
        r"exec /venv/bin/python -m torch\.distributed\.run --nnodes=\$SLURM_NNODES "
        r"--nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint=\$NEMOTRON_RDZV_HOST:"
        r"\$NEMOTRON_RDZV_PORT --rdzv-id=\$SLURM_JOB_ID -m nemotron\.stages\.data_prep_pretrain",
        text,
    )


# -- local: torchrun --standalone with nproc_per_node ---------------------------------------------


def test_local_command_uses_torchrun_with_nproc_per_node(env_file):
    p = prepared(DISTRIBUTED, "local2")
    backend = backend_for(p.profile, "local2")
    assert backend.nproc_per_node == 2
    command = p.job.command(backend.python, "/jobs/x/config.yaml", backend.nproc_per_node)
    assert command == [
        backend.python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "nemotron.stages.data_prep_pretrain",
        "--config",
        "/jobs/x/config.yaml",
    ]
    text = render_dry_run(p)
    assert (
        f"-m torch.distributed.run --standalone --nproc-per-node=2 -m nemotron.stages.data_prep_pretrain "
        f"--config {jobs_root()}/{p.job.name}/config.yaml"
    ) in text


@pytest.mark.parametrize(
    ("stage", "profile"), [(DISTRIBUTED, "local1"), (DISTRIBUTED, None), (NANO3_DATA_PREP_PRETRAIN, "local2")]
)
def test_local_command_is_plain_python_otherwise(env_file, stage, profile):
    p = prepared(stage, profile)
    backend = backend_for(p.profile, profile)
    command = p.job.command(backend.python, "/c.yaml", backend.nproc_per_node)
    assert command == [backend.python, "-m", "nemotron.stages.data_prep_pretrain", "--config", "/c.yaml"]
