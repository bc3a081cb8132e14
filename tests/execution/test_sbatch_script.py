"""The sbatch script NeMo-Run would submit for a Slurm profile, rendered without submitting anything."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from nemotron.execution.dry_run import render_dry_run
from nemotron.execution.errors import ExecutionError
from nemotron.execution.job_env import write_secrets_file
from nemotron.execution.launcher import LaunchRequest, prepare
from nemotron.execution.records import jobs_root
from nemotron.execution.slurm_backend import render_sbatch_preview
from nemotron.execution.slurm_executor import build_slurm_plan, cluster_job_dir
from nemotron.stages.catalog import NANO3_DATA_PREP_PRETRAIN

SECRET = "wandb-secret-123"

GPU_PROFILE = f"""
[gpu]
executor = "slurm"
account = "acct"
partition = "batch"
nodes = 2
ntasks_per_node = 8
gpus_per_node = 8
cpus_per_task = 16
mem = "0"
time = "04:00:00"
exclusive = true
qos = "high"
constraint = "h100"
sbatch_flags = {{ "mail-type" = "END" }}
container_image = "/images/nemotron.sqsh"
container_mounts = ["/lustre:/lustre"]
env_vars = {{ NCCL_DEBUG = "WARN", WANDB_API_KEY = "{SECRET}" }}
setup = ["echo setup-line"]

[no-image]
executor = "slurm"
account = "acct"
partition = "batch"
setup = ["echo setup-line"]

[no-account]
executor = "slurm"
partition = "batch"

[remote]
executor = "slurm"
account = "acct"
host = "login.cluster.invalid"
user = "me"
"""


@pytest.fixture
def env_file(nemotron_home, tmp_path) -> Path:
    path = tmp_path / "env.toml"
    path.write_text(GPU_PROFILE)
    return path


def prepared(profile: str, *overrides: str):
    """The tiny data prep as one Slurm job (array_tasks=0); test_array_phases covers the array."""
    overrides = overrides if any(o.startswith("array_tasks=") for o in overrides) else ("array_tasks=0", *overrides)
    return prepare(LaunchRequest(NANO3_DATA_PREP_PRETRAIN, "tiny", tuple(overrides), profile, ()))


def single_script(profile, job) -> str:
    ((task, script),) = render_sbatch_preview(profile, job)
    assert task == "main"
    return script


def sbatch_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def srun_line(script: str) -> str:
    (line,) = [line for line in script.splitlines() if line.startswith("srun ")]
    return line


def flag_value(line: str, flag: str) -> str:
    match = re.search(rf"{re.escape(flag)} (\S+)", line)
    assert match, f"{flag} not in {line}"
    return match.group(1)


def test_gpu_profile_sbatch_script(env_file):
    p = prepared("gpu")
    job = p.job
    job_dir = f"{jobs_root()}/{job.name}"
    artifacts_root = job.env["NEMOTRON_ARTIFACTS_ROOT"]
    script = single_script(p.profile, job)

    assert script.startswith("#!/bin/bash")
    lines = sbatch_lines(script)
    expected = [
        "#SBATCH --account=acct",
        "#SBATCH --partition=batch",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=16",
        "#SBATCH --mem=0",
        "#SBATCH --time=04:00:00",
        "#SBATCH --exclusive",
        "#SBATCH --qos=high",
        "#SBATCH --constraint=h100",
        "#SBATCH --mail-type=END",
        f"#SBATCH --job-name={job.name}",
    ]
    for line in expected:
        assert lines.count(line) == 1, f"{line!r} not exactly once in:\n" + "\n".join(lines)
    (output,) = [line for line in lines if line.startswith("#SBATCH --output=")]
    assert output.startswith(f"#SBATCH --output={job_dir}/logs/")
    assert not any(line.startswith(("#SBATCH --reservation", "#SBATCH --gres")) for line in lines)
    assert len({line.split("=")[0] for line in lines}) == len(lines)  # no option given twice

    srun = srun_line(script)
    assert flag_value(srun, "--container-image") == "/images/nemotron.sqsh"
    mounts = flag_value(srun, "--container-mounts").split(",")
    assert "/lustre:/lustre" in mounts
    assert f"{jobs_root()}:{jobs_root()}" in mounts  # the job dir's parent: config.yaml, secrets.env, logs
    assert f"{artifacts_root}:{artifacts_root}" in mounts  # the registry the stage publishes to
    assert flag_value(srun, "--output").startswith(f"{job_dir}/logs/")
    assert srun.endswith(f"python -m nemotron.stages.data_prep_pretrain --config {job_dir}/config.yaml")

    assert "export NCCL_DEBUG=WARN" in script.splitlines()
    assert f"export NEMOTRON_JOB_NAME={job.name}" in script.splitlines()
    assert f"export NEMOTRON_ARTIFACTS_ROOT={artifacts_root}" in script.splitlines()
    assert SECRET not in script
    assert "WANDB_API_KEY" not in script  # secrets travel only in secrets.env
    assert job.secret_env == {"WANDB_API_KEY": SECRET}

    source_line = script.index(f". {job_dir}/secrets.env")
    assert script.rindex("set +x", 0, source_line) > script.rindex("set -evx", 0, source_line)  # tracing off
    assert source_line < script.index("echo setup-line") < script.index(srun)


def run_script_setup(script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the script's preamble and setup (everything before the srun), minus the cluster-only commands."""
    head = script[: script.index("# Command 1")]
    lines = [line for line in head.splitlines() if "scontrol" not in line and "srun" not in line]
    lines.append('echo "secret length ${#WANDB_API_KEY}"')
    return subprocess.run(["bash", "-c", "\n".join(lines)], cwd=cwd, capture_output=True, text=True, timeout=30)


def run_gpu_setup_with_secrets(tmp_path) -> subprocess.CompletedProcess:
    """Write the gpu job's secrets file and run the setup part of its rendered sbatch script."""
    p = prepared("gpu")
    job_dir = Path(jobs_root(), p.job.name)
    job_dir.mkdir(parents=True)
    write_secrets_file(job_dir, p.job.secret_env)
    return run_script_setup(single_script(p.profile, p.job), tmp_path)


def test_secrets_file_is_sourced_and_the_setup_runs(env_file, tmp_path):
    done = run_gpu_setup_with_secrets(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "setup-line" in done.stdout
    assert f"secret length {len(SECRET)}" in done.stdout  # the job sees the secret


def test_secret_value_never_reaches_the_job_log(env_file, tmp_path):
    done = run_gpu_setup_with_secrets(tmp_path)
    assert f"secret length {len(SECRET)}" in done.stdout
    assert SECRET not in done.stdout + done.stderr  # stdout and stderr both land in the --output file


def test_preview_writes_nothing(env_file):
    p = prepared("gpu")
    before = sorted(str(x) for x in Path(jobs_root()).parent.rglob("*"))
    single_script(p.profile, p.job)
    after = sorted(str(x) for x in Path(jobs_root()).parent.rglob("*"))
    assert not Path(jobs_root(), p.job.name).exists()
    assert [x for x in after if x not in before and p.job.name in x] == []


def test_profile_without_container_has_no_container_flags(env_file):
    p = prepared("no-image")
    job_dir = f"{jobs_root()}/{p.job.name}"
    script = single_script(p.profile, p.job)
    assert "--container" not in script
    srun = srun_line(script)
    assert f"--chdir {job_dir}" in srun  # outside a container the job runs in its job dir
    assert "#SBATCH --account=acct" in sbatch_lines(script)
    assert "#SBATCH --nodes=1" in sbatch_lines(script)
    unexpected = ("#SBATCH --exclusive", "#SBATCH --qos", "#SBATCH --gpus")
    assert not any(line.startswith(unexpected) for line in sbatch_lines(script))
    assert srun.endswith(f"python -m nemotron.stages.data_prep_pretrain --config {job_dir}/config.yaml")


def test_dry_run_contains_the_script_but_never_the_secret(env_file):
    p = prepared("gpu", "batch_size=64")
    text = render_dry_run(p)
    assert SECRET not in text
    assert "--- sbatch script ---" in text
    assert "#SBATCH --account=acct" in text and "#SBATCH --nodes=2" in text
    assert "--container-image /images/nemotron.sqsh" in text
    assert "WANDB_API_KEY: '***'" in text
    assert "batch_size: 64" in text
    assert "overrides: array_tasks=0 batch_size=64" in text
    assert text.rstrip().endswith("--- dry run: nothing was written or submitted ---")
    assert not Path(jobs_root(), p.job.name).exists()


def test_slurm_profile_without_account_is_a_clear_error(env_file):
    p = prepared("no-account")
    with pytest.raises(ExecutionError) as err:
        single_script(p.profile, p.job)
    message = str(err.value)
    assert "'no-account'" in message and "'account' is required" in message
    assert str(env_file) in message
    with pytest.raises(ExecutionError, match="'account' is required"):
        render_dry_run(p)


def test_ssh_profile_without_job_dir_is_a_clear_error(env_file):
    p = prepared("remote")
    assert p.profile.slurm.ssh.host == "login.cluster.invalid"
    with pytest.raises(ExecutionError) as err:
        cluster_job_dir(p.profile, p.job.name)
    message = str(err.value)
    assert "'remote'" in message and "submits over SSH" in message and "job_dir" in message
    with pytest.raises(ExecutionError, match="no 'job_dir'"):
        build_slurm_plan(p.profile, p.job)
    with pytest.raises(ExecutionError, match="no 'job_dir'"):
        single_script(p.profile, p.job)
    with pytest.raises(ExecutionError, match="no 'job_dir'"):
        render_dry_run(p)


def test_local_dry_run_shows_the_command(nemotron_home):
    p = prepare(LaunchRequest(NANO3_DATA_PREP_PRETRAIN, "tiny", (), None, ()))
    text = render_dry_run(p)
    assert "--- sbatch script ---" not in text
    assert f"-m nemotron.stages.data_prep_pretrain --config {jobs_root()}/{p.job.name}/config.yaml" in text
    assert "profile:   (none: runs locally)" in text


def test_array_phases_render_a_job_array_then_a_finalize_job(env_file):
    p = prepared("gpu", "array_tasks=3")
    scripts = dict(render_sbatch_preview(p.profile, p.job))
    assert list(scripts) == ["shards", "finalize"]
    shards, final = scripts["shards"], scripts["finalize"]
    assert "#SBATCH --array=0-2" in sbatch_lines(shards)
    assert not any(line.startswith("#SBATCH --array") for line in sbatch_lines(final))
    assert "#SBATCH --kill-on-invalid-dep=yes" in sbatch_lines(final)  # a failed array cancels finalize
    assert f"#SBATCH --job-name={p.job.name}-shards" in sbatch_lines(shards)
    assert srun_line(shards).endswith("--phase shards")
    assert srun_line(final).endswith("--phase finalize")
    assert SECRET not in shards + final


def test_a_pipe_stage_resolved_at_start_checks_its_config_first_and_waits_for_its_inputs(env_file):
    """A pipe's stage whose inputs another job of the submission makes: the job resolves config.yaml
    (start_config) before the stage and fails when that fails; its sbatch waits, cancelled if the input fails."""
    request = LaunchRequest(NANO3_DATA_PREP_PRETRAIN, "tiny", ("array_tasks=3",), "no-image", (), resolve_at_start=True)
    p = prepare(request)
    assert p.job.resolve_at_start and not p.job.phases  # the array size is the config's, read when it starts
    assert "${recipes:" in str(p.job.config)  # composed, not resolved
    job_dir = f"{jobs_root()}/{p.job.name}"
    ((_, script),) = render_sbatch_preview(p.profile, p.job, waits_for_other_jobs=True)
    assert "#SBATCH --kill-on-invalid-dep=yes" in sbatch_lines(script)
    command = srun_line(script).split(" bash -c ", 1)[1]
    [inner] = shlex.split(command)
    resolve, stage = inner.split(" || exit 1; ")
    assert shlex.split(resolve)[1:] == [
        "-m",
        "nemotron.execution.start_config",
        "--stage",
        "nano3/data-prep-pretrain",
        "--job-dir",
        job_dir,
    ]
    assert stage == f"exec python -m nemotron.stages.data_prep_pretrain --config {job_dir}/config.yaml"
    ((_, alone),) = render_sbatch_preview(p.profile, p.job)
    assert "kill-on-invalid-dep" not in alone  # a job that waits for nothing has nothing to be cancelled by
