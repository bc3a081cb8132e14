"""The real `nemotron` CLI end to end on this machine, no Slurm: tiny data prep, errors, dry run, help."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

PREP = ("nano3", "data", "prep", "pretrain")
ARTIFACT = "nano3-pretrain-data-tiny"
HEAVY_MODULES = ("torch", "megatron", "nemo_run", "wandb", "datasets", "transformers")


@pytest.fixture(autouse=True)
def _no_inherited_secrets(monkeypatch):
    """Jobs pick up well-known secret variables from the environment; keep the tests hermetic."""
    for name in ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def flat(text: str) -> str:
    """Text with Rich's box characters removed and whitespace collapsed (wrapping-proof matching)."""
    return " ".join(re.sub(r"[│╭╮╰╯─┃┏┓┗┛━]", " ", text).split())


def submitted(stdout: str) -> tuple[str, str]:
    match = re.search(r"submitted (\S+) as local process (\d+)", flat(stdout))
    assert match, f"no 'submitted ... as local process ...' line in:\n{stdout}"
    return match.group(1), match.group(2)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def versions(home: Path) -> list[str]:
    name_dir = home / "artifacts" / ARTIFACT
    if not name_dir.is_dir():
        return []
    return sorted(p.name for p in name_dir.iterdir() if re.fullmatch(r"v\d+", p.name))


def write_profiles(nemotron_home: Path) -> Path:
    """Profiles in the env.toml the nemotron_home fixture points NEMOTRON_ENV_FILE at."""
    path = nemotron_home.parent / "env.toml"
    path.write_text(
        '[dev-box]\nexecutor = "local"\n\n[my-cluster]\nexecutor = "slurm"\naccount = "acct"\npartition = "batch"\n'
    )
    return path


def check_artifact(artifact_dir: Path, job_name: str) -> None:
    record = json.loads((artifact_dir / "artifact.json").read_text())
    assert record["name"] == ARTIFACT
    assert record["kind"] == "pretrain-data"
    assert record["lineage"]["job_name"] == job_name
    assert {"nemotron", "tokenizers", "numpy"} <= set(record["lineage"]["packages"])  # library versions
    assert record["files"]["blend"] == "blend.json"
    blend = json.loads((artifact_dir / "blend.json").read_text())
    assert set(blend) == {"train", "valid", "test"}
    for split, entries in blend.items():
        # Megatron blend format: [weight, prefix, weight, prefix, ...]
        assert entries and len(entries) % 2 == 0, (split, entries)
        weights, prefixes = entries[0::2], entries[1::2]
        assert all(isinstance(w, (int, float)) and w > 0 for w in weights)
        assert abs(sum(weights) - 1.0) < 1e-6
        for prefix in prefixes:
            base = Path(prefix) if Path(prefix).is_absolute() else artifact_dir / prefix
            assert base.parent.parent.name == split, prefix  # <data dir>/<split>/<dataset>/shard_N
            assert base.name.startswith("shard_"), prefix
            for suffix in (".bin", ".idx"):
                data = base.with_name(base.name + suffix)
                assert data.is_file() and data.stat().st_size > 0, f"{data} missing or empty"


def test_tiny_local_run_publishes_versioned_artifacts_and_job_files(run_cli, nemotron_home):
    done = run_cli(*PREP, "-c", "tiny", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    name, pid = submitted(done.stdout)
    assert f"published {ARTIFACT}:v1" in done.stdout  # the stage's own log is streamed
    assert f"job {name} COMPLETED" in flat(done.stdout)
    assert versions(nemotron_home) == ["v1"]
    v1 = nemotron_home / "artifacts" / ARTIFACT / "v1"
    check_artifact(v1, name)
    assert json.loads((v1 / "artifact.json").read_text())["lineage"]["job_id"] == pid  # lineage names the job

    job_dir = nemotron_home / "jobs" / name
    job = yaml.safe_load((job_dir / "job.yaml").read_text())
    config = yaml.safe_load((job_dir / "config.yaml").read_text())
    assert job["job"]["job_name"] == name
    assert job["job"]["executor"] == "local"
    assert job["provenance"]["argv"] == [*PREP, "-c", "tiny"]
    assert job["provenance"]["overrides"] == []
    assert job["provenance"]["nemotron_version"]
    assert job["config"] == config
    assert config["artifact_name"] == ARTIFACT
    assert Path(config["blend_path"]).is_file()  # interpolations resolved to real paths
    assert (job_dir / "exit_code").read_text().strip() == "0"
    assert (job_dir / "secrets.env").stat().st_mode & 0o777 == 0o600

    # The job's log and status are available afterwards.
    logs = run_cli("jobs", "logs", name, timeout=60)
    assert logs.returncode == 0 and f"published {ARTIFACT}:v1" in logs.stdout
    status = run_cli("jobs", "status", name, "--wait", timeout=60)
    assert status.returncode == 0
    assert status.stdout.strip().split("\t") == [name, pid, "COMPLETED"]

    # A second run (with an override recorded in provenance) publishes the next version.
    again = run_cli(*PREP, "split.seed=99", "-c", "tiny", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    name2, _ = submitted(again.stdout)
    assert name2 != name
    assert f"published {ARTIFACT}:v2" in again.stdout
    assert versions(nemotron_home) == ["v1", "v2"]
    check_artifact(nemotron_home / "artifacts" / ARTIFACT / "v2", name2)
    assert json.loads((v1 / "artifact.json").read_text())["lineage"]["job_name"] == name  # v1 untouched
    job2 = yaml.safe_load((nemotron_home / "jobs" / name2 / "job.yaml").read_text())
    assert job2["provenance"]["overrides"] == ["split.seed=99"]
    assert job2["config"]["split"]["seed"] == 99
    assert "split.seed=99" in job2["provenance"]["argv"]


def test_failing_local_job_exits_nonzero_and_publishes_nothing(run_cli, nemotron_home, tmp_path):
    # launch reads the blend (a missing blend file is refused there); only the job opens its dataset
    blend = tmp_path / "blend.json"
    blend.write_text('{"datasets": [{"name": "gone", "path": "/nonexistent/docs.jsonl", "weight": 1}]}')
    done = run_cli(*PREP, "-c", "tiny", f"blend_path={blend}", timeout=300)
    assert done.returncode != 0, done.stdout + done.stderr
    name, _ = submitted(done.stdout)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert name in errors[0] and "FAILED" in errors[0]
    assert "Traceback" not in done.stderr
    assert "/nonexistent/docs.jsonl" in done.stdout  # the stage's one-line reason, from its log
    assert versions(nemotron_home) == []
    job_dir = nemotron_home / "jobs" / name
    assert (job_dir / "exit_code").read_text().strip() not in ("", "0")
    status = run_cli("jobs", "status", name, "--wait", timeout=60)
    assert status.returncode != 0
    assert status.stdout.strip().endswith("\tFAILED")


def assert_rejected_before_running(done: subprocess.CompletedProcess, nemotron_home: Path) -> str:
    """Non-zero exit, no traceback, nothing started; returns stderr with wrapping undone."""
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "submitted" not in done.stdout
    assert files_under(nemotron_home / "jobs") == []
    assert versions(nemotron_home) == []
    return flat(done.stderr)


def test_bad_invocations_fail_before_running_with_helpful_messages(run_cli, nemotron_home):
    write_profiles(nemotron_home)

    err = assert_rejected_before_running(
        run_cli(*PREP, "-c", "tiny", "--run", "dev-box", "--batch", "dev-box"), nemotron_home
    )
    assert "--run" in err and "--batch" in err

    err = assert_rejected_before_running(run_cli(*PREP, "-c", "tiny", "tokenizer.nme=x"), nemotron_home)
    assert "tokenizer.nme" in err
    assert "did you mean 'tokenizer.name_or_path'" in err

    # an override's type is judged once, by the stage's schema: one error line, exit code 2
    for extra in ((), ("--dry-run",)):
        done = run_cli(*PREP, "-c", "tiny", *extra, "batch_size=abc")
        err = assert_rejected_before_running(done, nemotron_home)
        assert done.returncode == 2, done.stderr
        assert len([line for line in done.stderr.splitlines() if line.startswith("error:")]) == 1, done.stderr
        assert "error: invalid config from " in err
        assert "key 'batch_size' expects int, got str 'abc'; give a whole number" in err
        assert "(set by the override 'batch_size=abc')" in err

    err = assert_rejected_before_running(run_cli(*PREP, "-c", "tinyy"), nemotron_home)
    assert "tinyy" in err and "did you mean 'tiny'" in err

    err = assert_rejected_before_running(run_cli(*PREP, "-c", "tiny", "--run", "nope"), nemotron_home)
    assert "'nope'" in err and "env.toml" in err
    assert "dev-box" in err and "my-cluster" in err

    err = assert_rejected_before_running(run_cli(*PREP, "-c", "tiny", "--bogus"), nemotron_home)
    assert "--bogus" in err


def test_dry_run_without_profile_shows_config_and_command_and_writes_nothing(run_cli, nemotron_home):
    done = run_cli(*PREP, "-c", "tiny", "--dry-run", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "--- resolved config (config.yaml) ---" in out
    assert f"artifact_name: {ARTIFACT}" in out
    assert re.search(r"^blend_path: /\S+/tiny\.json$", out, re.M), out
    command = re.search(r"^--- command ---\n(.+)$", out, re.M)
    assert command, out
    interpreter = command.group(1).split(" ")[0]  # the CLI's own interpreter (python or python3)
    assert interpreter.startswith(str(Path(sys.executable).parent) + "/python"), interpreter
    assert " -m nemotron.stages.data_prep_pretrain --config " in command.group(1)
    assert command.group(1).endswith("/config.yaml")
    assert str(nemotron_home / "jobs") in command.group(1)
    assert "nothing was written or submitted" in out
    assert not (nemotron_home / "jobs").exists() or files_under(nemotron_home / "jobs") == []
    assert not (nemotron_home / "artifacts").exists() or files_under(nemotron_home / "artifacts") == []
    assert files_under(nemotron_home) == []


def test_overrides_may_come_before_options(run_cli, nemotron_home):
    done = run_cli(*PREP, "split.seed=7", "-c", "tiny", "--dry-run", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^  seed: 7$", done.stdout, re.M), done.stdout
    assert "overrides: split.seed=7" in done.stdout
    assert f"artifact_name: {ARTIFACT}" in done.stdout  # -c tiny after the override still applied
    assert files_under(nemotron_home) == []


def test_help_lists_commands_configs_and_profiles(run_cli, nemotron_home, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # keep Rich from wrapping long env.toml paths
    env_path = write_profiles(nemotron_home)

    top = run_cli("--help", timeout=60)
    assert top.returncode == 0, top.stderr
    assert "nano3" in top.stdout and "jobs" in top.stdout

    stage = run_cli(*PREP, "--help", timeout=60)
    assert stage.returncode == 0, stage.stderr
    text = flat(stage.stdout)
    assert "Built-in configs (-c NAME): default, tiny." in text
    assert "dev-box (local), my-cluster (slurm)" in text
    assert str(env_path) in text
    for option in ("--config", "--run", "--batch", "--dry-run"):
        assert option in text

    jobs = run_cli("jobs", "--help", timeout=60)
    assert jobs.returncode == 0
    for verb in ("list", "status", "logs", "cancel"):
        assert verb in jobs.stdout
    assert files_under(nemotron_home) == []


def test_cli_help_does_not_import_heavy_libraries(nemotron_home):
    write_profiles(nemotron_home)
    code = f"""
import sys
from nemotron.cli.app import app
for args in (["--help"], {list(PREP)!r} + ["--help"], ["jobs", "--help"], ["jobs", "status", "--help"]):
    try:
        app(args, prog_name="nemotron", standalone_mode=False)
    except SystemExit:
        pass
heavy = {set(HEAVY_MODULES)!r}
print("HEAVY=" + ",".join(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    assert "Built-in configs" in done.stdout  # the stage help really was rendered
    assert "dev-box" in done.stdout  # ... including the env.toml profiles
    heavy = [line for line in done.stdout.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="], heavy


def test_jobs_list_shows_state_at_default_width(run_cli, nemotron_home, monkeypatch):
    """`jobs list` must be readable in pipes and narrow terminals (no truncation of job id or state)."""
    monkeypatch.setenv("COLUMNS", "80")
    done = run_cli(*PREP, "-c", "tiny", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    name, pid = submitted(done.stdout)
    listed = run_cli("jobs", "list", timeout=60)
    assert listed.returncode == 0
    row = next((line for line in listed.stdout.splitlines() if name in line), "")
    assert pid in row
    assert "COMPLETED" in row, listed.stdout


def test_unclear_invocations_get_messages_naming_the_key_and_the_fix(run_cli, nemotron_home):
    """Issue 9 point 8: each message says what, where (key or option) and the fix, on one line."""
    # a missing data artifact is not an interpolation problem of model.vocab_size
    done = run_cli("nano3", "pretrain", "-c", "tiny", "--dry-run", timeout=120)
    err = assert_rejected_before_running(done, nemotron_home)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "model.vocab_size" not in err and "interpolation" not in err
    assert f"artifact {ARTIFACT}:latest not found in registry {nemotron_home / 'artifacts'}" in err
    assert "config key 'run.data'" in err
    assert "make it with `nemotron nano3 data prep pretrain -c tiny`" in err
    assert "or set run.data=NAME:VERSION" in err

    # `-c ''` is not the default config
    for option in ("-c", "--config"):
        done = run_cli(*PREP, option, "", "--dry-run", timeout=120)
        err = assert_rejected_before_running(done, nemotron_home)
        assert "-c/--config is empty" in err and "default, tiny" in err

    # an unknown key an override added is the override's, not the YAML's
    done = run_cli(*PREP, "-c", "tiny", "--dry-run", "+foo.bar=1", timeout=120)
    err = assert_rejected_before_running(done, nemotron_home)
    assert "unknown key 'foo'" in err and "(set by the override '+foo.bar=1')" in err

    # negative counts are rejected at launch, naming the key and the override
    for override, fix in (("workers=-1", "Use null for one worker per core"), ("max_bad_records=-1", "0 fails on")):
        done = run_cli(*PREP, "-c", "tiny", "--dry-run", override, timeout=120)
        err = assert_rejected_before_running(done, nemotron_home)
        key = override.partition("=")[0]
        assert f"key '{key}' must be >= " in err and fix in err and f"(set by the override '{override}')" in err
