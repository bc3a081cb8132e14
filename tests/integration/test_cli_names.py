"""Bad artifact and run names fail at launch, in --dry-run and in a real run alike, before any work (issue 9, 3 and 7):
exit 2, one `error:` line naming the key, the value and the rule, no traceback, no job, no file written anywhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PREP = ("nano3", "data", "prep", "pretrain")
PRETRAIN = ("nano3", "pretrain")
RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"
BAD_NAMES = {
    "../../x": "'../../x', which does not start with a letter or digit",
    "": "'', which is empty",
    "a" * 300: "which has 300 characters",
    "../x": "'../x', which does not start with a letter or digit",
    "a/b": "'a/b', which contains '/'",
}


@pytest.fixture(autouse=True)
def _no_inherited_secrets(monkeypatch):
    for name in ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def tree(root: Path) -> set[str]:
    """Every file and folder under `root` (the test's whole tmp_path: NEMOTRON_HOME and what lies beside it)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def assert_rejected_at_key(done: subprocess.CompletedProcess, key: str, name: str, override: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert "submitted" not in done.stdout and "tokens" not in done.stdout  # no job started, nothing tokenized
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: invalid config from "), errors[0]
    assert f"key '{key}' is " in errors[0] and BAD_NAMES[name] in errors[0] and RULE in errors[0], errors[0]
    assert errors[0].endswith(f"(set by the override '{override}')."), errors[0]


def test_bad_data_artifact_names_fail_before_any_work(run_cli, nemotron_home, tmp_path):
    before = tree(tmp_path)
    for name in ("../../x", "", "a" * 300):
        override = f"artifact_name={name}" if name else 'artifact_name=""'
        for mode in (("--dry-run",), ()):
            done = run_cli(*PREP, "-c", "tiny", *mode, override, timeout=300)
            assert_rejected_at_key(done, "artifact_name", name, override)
            assert tree(tmp_path) == before, sorted(tree(tmp_path) - before)  # no data/<hash>, nothing outside


def test_bad_run_and_model_names_fail_before_any_work(run_cli, nemotron_home, tmp_path):
    prep = run_cli(*PREP, "-c", "tiny", timeout=300)  # pretrain reads the tiny data artifact
    assert prep.returncode == 0, prep.stdout + prep.stderr
    before = tree(tmp_path)
    cases = [("artifact_name", "../../x"), ("run_name", "a" * 300), ("run_name", "../x"), ("run_name", "a/b")]
    for key, name in cases:
        for mode in (("--dry-run",), ()):
            done = run_cli(*PRETRAIN, "-c", "tiny", *mode, f"{key}={name}", timeout=300)
            assert_rejected_at_key(done, key, name, f"{key}={name}")
            assert tree(tmp_path) == before, sorted(tree(tmp_path) - before)  # no runs/ folder, no job
