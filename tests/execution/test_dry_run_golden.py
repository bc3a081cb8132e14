"""Golden files of `nemotron nano3 pretrain --dry-run`: the sbatch script and the torchrun line for a CPU Slurm
profile (tiny config) and a 2-node x 8-GPU container profile (default config), and the local torchrun command.

The CLI runs for real (a subprocess, NeMo-Run's own dry run); only what varies from run to run is normalized
(`normalize`): the job name (its timestamp), NeMo-Run's experiment timestamp, the temporary folder (which
holds NEMOTRON_HOME, NeMo-Run's home and the registry), the source's git commit and the home directory. A
mismatch prints a unified diff; a NeMo-Run upgrade that changes the script fails here.

Regenerate after an intended change, then review the diff of tests/execution/golden/:

    NEMOTRON_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/execution/test_dry_run_golden.py
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from pathlib import Path

import pytest

from nemotron.artifacts import ArtifactKind, FileRegistry, Lineage, default_registry_root

GOLDEN = Path(__file__).parent / "golden"

PROFILES = """
[slurm-cpu]
executor = "slurm"
account = "acct"
partition = "cpu"
nodes = 1
ntasks_per_node = 2
cpus_per_task = 2
time = "00:30:00"
python = "/opt/nemotron/venv/bin/python"
env_vars = { OMP_NUM_THREADS = "2" }

[slurm-2x8gpu-container]
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
container_image = "/lustre/images/nemotron.sqsh"
container_mounts = ["/lustre:/lustre"]
job_dir = "/lustre/team/jobs"
env_vars = { NCCL_DEBUG = "WARN" }

[local-2proc]
executor = "local"
nproc_per_node = 2
python = "/opt/nemotron/venv/bin/python"
"""


@pytest.fixture
def pretrain_data(nemotron_home, tmp_path, monkeypatch):
    """env.toml with the profiles, and the pretrain-data artifacts the recipes read their vocabulary from."""
    for name in ("WANDB_API_KEY", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "env.toml").write_text(PROFILES)
    registry = FileRegistry(default_registry_root())
    for name in ("nano3-pretrain-data", "nano3-pretrain-data-tiny"):
        with registry.staging(name) as staging:
            (staging.path / "blend.json").write_text("{}")
            registry.publish(
                staging,
                kind=ArtifactKind.PRETRAIN_DATA,
                lineage=Lineage(stage="test"),
                metadata={"tokenizer": {"vocab_size": 8192}},
                files={"blend": "blend.json"},
            )
    return tmp_path


def dry_run_sections(run_cli, tmp: Path, *args: str) -> dict[str, str]:
    """The dry run's sections by title (`--- title ---` lines), normalized."""
    done = run_cli("nano3", "pretrain", *args, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    parts = re.split(r"^--- (.+) ---$", normalize(done.stdout, tmp), flags=re.MULTILINE)
    return {title: body.strip("\n") for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def normalize(text: str, tmp: Path) -> str:
    """Replace what varies between runs: job name, NeMo-Run's experiment timestamp, git commit, folders."""
    job = re.search(r"^job name:  (\S+)", text, re.MULTILINE)
    assert job, text
    text = re.sub(re.escape(job.group(1)) + r"_\d+", "<JOB>_<EXPERIMENT_TIMESTAMP>", text)
    text = text.replace(job.group(1), "<JOB>")
    text = re.sub(r"(NEMOTRON_GIT_COMMIT[=:] ?)[0-9a-f]{40}(-dirty)?", r"\1<GIT_COMMIT>", text)
    text = text.replace(str(tmp), "<TMP>")
    return text.replace(str(Path.home()) + "/", "<HOME>/")


def torchrun_line(script: str) -> str:
    """The command the job's srun task runs: `bash -c '<torchrun line>'` at the end of the srun line."""
    (srun,) = [line for line in script.splitlines() if line.startswith("srun ") and "--output" in line]
    words = shlex.split(srun)
    assert words[-3:-1] == ["bash", "-c"], srun
    return words[-1]


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    actual = actual.rstrip("\n") + "\n"
    if os.environ.get("NEMOTRON_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
    expected = path.read_text() if path.exists() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(True), actual.splitlines(True), f"{path} (expected)", "dry run (actual)"
            )
        )
        pytest.fail(f"dry run differs from {path.name} (NEMOTRON_UPDATE_GOLDEN=1 to regenerate):\n{diff}")


@pytest.mark.parametrize(
    ("case", "args"),
    [
        ("nano3-pretrain-slurm-cpu", ("-c", "tiny", "--batch", "slurm-cpu")),
        ("nano3-pretrain-slurm-2x8gpu-container", ("--batch", "slurm-2x8gpu-container")),
    ],
)
def test_slurm_dry_run_matches_golden(pretrain_data, run_cli, case, args):
    sections = dry_run_sections(run_cli, pretrain_data, *args)
    script = sections["sbatch script"]
    check_golden(f"{case}.sbatch.sh", script)
    check_golden(f"{case}.torchrun.txt", torchrun_line(script))


def test_local_torchrun_command_matches_golden(pretrain_data, run_cli):
    sections = dry_run_sections(run_cli, pretrain_data, "-c", "tiny", "--batch", "local-2proc")
    check_golden("nano3-pretrain-local-2proc.command.txt", sections["command"])
