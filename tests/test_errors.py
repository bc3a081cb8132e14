"""One error base: every package's root error is a NemotronError, reported as one line by the CLI and by stages."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from nemotron.artifacts.errors import ArtifactError
from nemotron.config.errors import ConfigError
from nemotron.data.errors import DataError
from nemotron.env.errors import EnvError
from nemotron.errors import NemotronError, run_reporting_errors
from nemotron.execution.errors import ExecutionError
from nemotron.stages.errors import StageFailure
from nemotron.stages.runtime import run_stage
from nemotron.training.errors import TrainingError

ROOTS = (ConfigError, EnvError, DataError, ArtifactError, ExecutionError, TrainingError, StageFailure)
# One of each kind the issue names: a training failure, a stage's own failure, an env.toml problem.
REPORTED = (TrainingError, StageFailure, EnvError)


@pytest.mark.parametrize("root", ROOTS, ids=lambda c: c.__name__)
def test_every_package_root_is_a_nemotron_error(root):
    assert issubclass(root, NemotronError)


def test_package_roots_are_distinct():
    """A failed checkpoint save is not a config problem: no root derives from another."""
    for root in ROOTS:
        assert [other for other in ROOTS if other is not root and issubclass(root, other)] == []


def _raiser(error: type[Exception], message: str):
    def main() -> None:
        raise error(message)

    return main


@pytest.mark.parametrize("error", REPORTED, ids=lambda c: c.__name__)
def test_run_stage_reports_one_line_and_exits_1(error, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_stage(_raiser(error, f"{error.__name__}: train.iters=0 must be >= 1; set train.iters=100"))
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"error: {error.__name__}: train.iters=0 must be >= 1; set train.iters=100\n"


def test_other_exceptions_keep_their_traceback():
    """Only NemotronErrors are reported as one line; anything else is a bug and must show where."""
    with pytest.raises(ValueError, match="a bug"):
        run_reporting_errors(_raiser(ValueError, "a bug"), exit_code=1)


def test_a_result_passes_through():
    assert run_reporting_errors(lambda: 42, exit_code=1) == 42


@pytest.mark.parametrize("error", REPORTED, ids=lambda c: c.__name__)
def test_the_cli_reports_one_line_and_exits_2(error, tmp_path):
    """The real CLI entry point with one more real command that raises: exit 2 and one `error:` line."""
    script = textwrap.dedent(f"""
        import sys
        from {error.__module__} import {error.__name__}
        from nemotron.cli.app import app, main

        @app.command("boom")
        def boom() -> None:
            raise {error.__name__}("boom: the fix is in the message")

        sys.argv = ["nemotron", "boom"]
        main()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr == "error: boom: the fix is in the message\n"


def test_a_real_env_error_from_the_cli_is_one_line(run_cli):
    done = run_cli("nano3", "data", "prep", "pretrain", "-c", "tiny", "--run", "nowhere", "--dry-run")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no profile 'nowhere'" in lines[0], done.stderr
