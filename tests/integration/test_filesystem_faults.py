"""Read-only and full filesystems: one `error:` line (what, where, the fix), a non-zero exit, no temporaries.

The folders are real mounts (a read-only bind mount, a small tmpfs), so these tests need root and
permission to mount; they skip otherwise. Root ignores file modes, so chmod could not stand in.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PREP = ("nano3", "data", "prep", "pretrain", "-c", "tiny")
PREP_SFT = ("nano3", "data", "prep", "sft", "-c", "tiny")
PRETRAIN = ("nano3", "pretrain", "-c", "tiny")
SECRETS = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY", "NEMOTRON_WANDB_PROJECT")
# What an interrupted or failed write may leave: temporary files, partial checkpoints, staging folders.
LEFTOVER_PATTERNS = ("*.tmp*", "*.partial", "*.export-*", "*.replaced*")


# --- mounts ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(small_pretrain) -> tuple[str, ...]:
    """The shared small model (conftest's small_pretrain) with this module's settings."""
    return (
        *small_pretrain,
        "train.eval_interval=null",
        "lr.warmup_iters=0",
        "guard.warmup_steps=1",
        "sample.tokens=4",
        "checkpoint.save_interval=1",
    )


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@functools.cache
def _why_no_mounts() -> str | None:
    """None when this process may mount (root, mount allowed), else why these tests skip."""
    if os.geteuid() != 0:
        return "needs root: read-only and full folders are real mounts (root ignores chmod)"
    if shutil.which("mount") is None:
        return "the mount command is not installed"
    probe = Path(f"/tmp/nemotron-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
        subprocess.run(["umount", str(probe)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as err:
        return f"mounting is not permitted here: {getattr(err, 'stderr', '') or err}"
    finally:
        probe.rmdir()
    return None


class Mounts:
    """Read-only bind mounts and small tmpfs folders, unmounted (newest first) at teardown."""

    def __init__(self) -> None:
        self.mounted: list[Path] = []

    def read_only(self, path: Path) -> Path:
        """`path` (created, with what it already holds) made read-only by a bind mount onto itself."""
        path.mkdir(parents=True, exist_ok=True)
        _mount("--bind", str(path), str(path))
        self.mounted.append(path)
        _mount("-o", "remount,bind,ro", str(path))
        return path

    def tiny_disk(self, path: Path, size_bytes: int) -> Path:
        """`path` as an empty tmpfs of `size_bytes` (rounded up to whole pages)."""
        path.mkdir(parents=True, exist_ok=True)
        _mount("-t", "tmpfs", "-o", f"size={-(-size_bytes // 4096) * 4096}", "tmpfs", str(path))
        self.mounted.append(path)
        return path

    def unmount_all(self) -> None:
        for path in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
        self.mounted.clear()


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    problem = _why_no_mounts()
    if problem:
        pytest.skip(problem)
    created = Mounts()
    try:
        yield created
    finally:
        created.unmount_all()


# --- running and checking -------------------------------------------------------------------------------


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI run with its own NEMOTRON_HOME, no env.toml profiles and no secrets."""
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "NEMOTRON_ARTIFACTS_ROOT"}
    env_file = home.parent / f"{home.name}-env.toml"
    if not env_file.exists():
        env_file.write_text("")
    env.update(
        NEMOTRON_HOME=str(home),
        NEMORUN_HOME=str(home.parent / f"{home.name}-nemo_run"),
        NEMOTRON_ENV_FILE=str(env_file),
        XDG_CONFIG_HOME=str(home.parent / f"{home.name}-xdg"),
    )
    env.update(extra)
    return env


def nemotron(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("nemotron")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "nemotron"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env
    )


def reported_error(done: subprocess.CompletedProcess, *expected: str) -> str:
    """The one `error:` line that explains the failure (a failed local job adds 'job ... ended FAILED');
    the run exited non-zero, printed no traceback, and the line holds every `expected` fragment."""
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.startswith("error:") and "ended FAILED; log:" not in line]
    assert len(lines) == 1, out
    for fragment in expected:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def leftovers(*roots: Path) -> list[Path]:
    """Temporaries under `roots`: `*.tmp*` files, partial checkpoints and exports, non-empty staging folders."""
    found: list[Path] = []
    for root in roots:
        for pattern in LEFTOVER_PATTERNS:
            found += root.rglob(pattern)
        found += [p for staging in root.rglob(".staging") for p in staging.iterdir()]
    return sorted(found)


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


# --- a trained checkpoint, made once ----------------------------------------------------------------------


@dataclass(frozen=True)
class Trained:
    """A NEMOTRON_HOME holding the tiny data artifact and a one-step checkpoint of the small model."""

    home: Path
    checkpoint: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small) -> Trained:
    home = tmp_path_factory.mktemp("trained") / "home"
    env = isolated_env(home)
    for args in (PREP, (*PRETRAIN, *small, "train.train_iters=1", "run_name=base")):
        done = nemotron(*args, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    return Trained(home, home / "runs" / "base" / "checkpoints" / "iter_0000001")


# --- NEMOTRON_HOME ---------------------------------------------------------------------------------------


def test_a_read_only_home_stops_a_launch_in_one_line_and_a_dry_run_still_works(mounts, tmp_path):
    home = mounts.read_only(tmp_path / "home")
    env = isolated_env(home)

    done = nemotron(*PREP, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    line = reported_error(
        done, str(home / "jobs"), "Read-only file system", "or set NEMOTRON_HOME to a writable folder"
    )
    assert done.stderr.strip() == line  # nothing else on stderr
    assert "submitted" not in done.stdout

    preview = nemotron(*PREP, "--dry-run", env=env)  # a dry run writes nothing, so it still works
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert "dry run: nothing was written or submitted" in preview.stdout
    for reading in (("jobs", "list"), ("artifacts", "list")):
        listing = nemotron(*reading, env=env)
        assert listing.returncode == 0, listing.stdout + listing.stderr
    assert list(home.iterdir()) == []


def test_a_read_only_home_with_artifacts_still_previews_training_and_reads_the_registry(mounts, trained, small):
    home = mounts.read_only(trained.home)  # until this test ends
    env = isolated_env(home)
    preview = nemotron(*PRETRAIN, *small, "run_name=preview", "--dry-run", env=env)
    assert preview.returncode == 0, preview.stdout + preview.stderr
    for reading in (("artifacts", "show", "base:latest"), ("artifacts", "verify", "base:latest"), ("jobs", "list")):
        done = nemotron(*reading, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    launch = nemotron(*PRETRAIN, *small, "run_name=preview", env=env)
    reported_error(launch, str(home / "jobs"), "Read-only file system", "or set NEMOTRON_HOME to a writable folder")


# --- data prep: output_dir and the artifact registry ------------------------------------------------------


@pytest.mark.parametrize("exists", [False, True], ids=["new-folder", "existing-folder"])
def test_a_read_only_output_dir_is_refused_at_launch(mounts, tmp_path, exists):
    """The launch's preflight finds it (also in a dry run); a job that meets one anyway fails in one line too."""
    readonly = mounts.read_only(tmp_path / "readonly")
    out = readonly if exists else readonly / "data"
    env = isolated_env(tmp_path / "home")
    for dry_run in ((), ("--dry-run",)):
        done = nemotron(*PREP, *dry_run, f"output_dir={out}", env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        reported_error(done, str(out), "is not writable", "config key 'output_dir'")
    assert leftovers(tmp_path / "home") == []


@pytest.mark.parametrize("output_dir", [False, True], ids=["data-in-registry", "data-in-output-dir"])
def test_a_read_only_artifact_root_fails_data_prep_in_one_line(mounts, tmp_path, output_dir):
    """The shards go into the registry (output_dir null) or elsewhere (then only publishing fails)."""
    root = mounts.read_only(tmp_path / "artifacts")
    data = tmp_path / "data"
    env = isolated_env(tmp_path / "home", NEMOTRON_ARTIFACTS_ROOT=str(root))
    done = nemotron(*PREP, *([f"output_dir={data}"] if output_dir else []), env=env)
    reported_error(done, str(root), "Read-only file system", "make it writable, or set NEMOTRON_ARTIFACTS_ROOT")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["artifacts-root", "output-dir"])
def test_a_full_disk_fails_data_prep_in_one_line_and_leaves_no_temporaries(mounts, tmp_path, where):
    """The tiny corpus tokenizes to ~1 MB of shards; a 256 KiB disk fills up in the middle of the shards."""
    disk = mounts.tiny_disk(tmp_path / "disk", 256 * 1024)
    empty = free_bytes(disk)
    if where == "artifacts-root":
        env, extra, setting = (
            isolated_env(tmp_path / "home", NEMOTRON_ARTIFACTS_ROOT=str(disk)),
            (),
            "NEMOTRON_ARTIFACTS_ROOT",
        )
    else:
        env, extra, setting = isolated_env(tmp_path / "home"), (f"output_dir={disk / 'data'}",), "output_dir"
    done = nemotron(*PREP, *extra, env=env)
    reported_error(done, str(disk), "No space left on device", f"free space there, or set {setting}")
    assert leftovers(tmp_path) == []
    # only finished shards stay (a re-run keeps them): the disk is not left full of temporaries
    assert free_bytes(disk) >= empty - tree_bytes(disk) - 64 * 1024
    assert free_bytes(disk) > 0


def test_a_full_disk_fails_sft_data_prep_in_one_line_and_leaves_no_temporaries(mounts, tmp_path):
    """The tiny chat corpus renders to ~130 KB of conversation files; a 64 KiB disk fills up among them."""
    disk = mounts.tiny_disk(tmp_path / "disk", 64 * 1024)
    done = nemotron(*PREP_SFT, f"output_dir={disk / 'data'}", "workers=1", env=isolated_env(tmp_path / "home"))
    reported_error(done, str(disk), "No space left on device", "free space there, or set output_dir")
    assert leftovers(tmp_path) == []


# --- training checkpoints ----------------------------------------------------------------------------------


def test_a_full_disk_fails_a_checkpoint_save_in_one_line_and_keeps_the_previous_one(mounts, tmp_path, trained, small):
    """Room for one checkpoint and a half: step 1 is saved, the save of step 2 runs out of space."""
    size = tree_bytes(trained.checkpoint)
    disk = mounts.tiny_disk(tmp_path / "checkpoints", size * 3 // 2)
    env = isolated_env(trained.home)
    done = nemotron(*PRETRAIN, *small, "train.train_iters=2", "run_name=full", f"checkpoint.dir={disk}", env=env)
    line = reported_error(
        done,
        str(disk / "iter_0000002"),
        "No space left on device",
        "or set checkpoint.dir to a folder on a disk with room",
    )
    assert "iter_0000001" in line or "previous checkpoint" in line
    assert leftovers(disk, trained.home / "runs" / "full") == []
    assert (disk / "latest").read_text().strip() == "iter_0000001"
    assert (disk / "iter_0000001" / "nemotron_checkpoint.json").is_file()
    assert not (disk / "iter_0000002").exists()


def test_a_read_only_checkpoint_dir_is_refused_at_launch(mounts, tmp_path, trained, small):
    """The launch's preflight finds it (nothing starts); a save that meets one anyway reads as above."""
    folder = mounts.read_only(tmp_path / "readonly") / "checkpoints"
    env = isolated_env(trained.home)
    done = nemotron(*PRETRAIN, *small, "train.train_iters=1", "run_name=ro", f"checkpoint.dir={folder}", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    reported_error(done, str(folder), "is not writable", "config key 'checkpoint.dir'")
    assert not (trained.home / "runs" / "ro").exists()


# --- Hugging Face export --------------------------------------------------------------------------------


def test_export_into_a_read_only_folder_fails_in_one_line(mounts, tmp_path, trained):
    out = mounts.read_only(tmp_path / "readonly") / "hf"
    done = nemotron("nano3", "model", "export", "hf", str(trained.checkpoint), str(out), env=isolated_env(trained.home))
    assert done.returncode == 2, done.stdout + done.stderr
    reported_error(done, str(out), "Read-only file system", "or set OUT to a writable folder")
    assert not out.exists()


def test_export_onto_a_full_disk_fails_in_one_line_and_leaves_nothing(mounts, tmp_path, trained):
    """The small model's weights take ~1.2 MB in bfloat16; the disk has 256 KiB."""
    disk = mounts.tiny_disk(tmp_path / "disk", 256 * 1024)
    out = disk / "hf"
    done = nemotron("nano3", "model", "export", "hf", str(trained.checkpoint), str(out), env=isolated_env(trained.home))
    assert done.returncode == 2, done.stdout + done.stderr
    reported_error(done, str(out), "No space left on device", "or set OUT to a folder on a disk with room")
    assert list(disk.iterdir()) == []
    assert leftovers(disk) == []


# --- Hugging Face import ------------------------------------------------------------------------------


def test_model_import_hf_into_a_read_only_registry_fails_in_one_line(mounts, tmp_path):
    """The line names the registry's setting (not checkpoint.dir, which the import does not use)."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=256,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "hf")
    home = mounts.read_only(tmp_path / "home")
    done = nemotron("nano3", "model", "import", "hf", str(tmp_path / "hf"), "--name", "m", env=isolated_env(home))
    assert done.returncode == 2, done.stdout + done.stderr
    reported_error(done, str(home / "artifacts" / "m"), "Read-only file system", "set NEMOTRON_ARTIFACTS_ROOT")
    assert list(home.iterdir()) == []
