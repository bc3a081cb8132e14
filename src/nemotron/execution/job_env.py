"""The environment a job gets: job identity for lineage, the registry root, and secrets kept apart."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

SECRETS_FILE = "secrets.env"


def job_identity_env(
    job_name: str, artifacts_root: str, git_commit: str | None, fingerprint: str | None = None
) -> dict[str, str]:
    """The job's name, registry root, code commit and (in a pipe) the stage's fingerprint, which its
    published artifact records and is found by (`NAME:fp-<fingerprint>`)."""
    env = {"NEMOTRON_JOB_NAME": job_name, "NEMOTRON_ARTIFACTS_ROOT": artifacts_root}
    if git_commit:
        env["NEMOTRON_GIT_COMMIT"] = git_commit
    if fingerprint:
        env["NEMOTRON_FINGERPRINT"] = fingerprint
    return env


def write_secrets_file(job_dir: Path, secrets: dict[str, str]) -> Path:
    """Write `export KEY=value` lines readable only by the owner (mode 0600)."""
    path = job_dir / SECRETS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        for key, value in sorted(secrets.items()):
            handle.write(f"export {key}={shlex.quote(value)}\n")
    os.chmod(path, 0o600)
    return path


def source_secrets_line(secrets_path: str) -> str:
    """A shell line that loads the secrets file with echo and tracing off (`set -v`/`-x` would print
    its lines into the job's log), then restores the shell's options."""
    quoted = shlex.quote(secrets_path)
    return (
        f"{{ _nemotron_opts=$-; set +xv; }} 2>/dev/null; if [ -f {quoted} ]; then . {quoted}; fi; "
        "case $_nemotron_opts in *v*) set -v;; esac; case $_nemotron_opts in *x*) set -x;; esac"
    )
