"""A stage's fingerprint: a hash of its config, the recipe files it names, its inputs and the code version.

Two runs of a stage with the same fingerprint are meant to produce the same output, so a pipe skips a
stage whose artifact carries its fingerprint. What counts:
- the stage (`nano3/sft`) and its config after the pipe's and the command line's overrides, with
  interpolations as written (`${art:model,...}` values come from the inputs, which count on their own);
- each `${recipes:REL}` file or folder the config names, by content (a blend JSON's own data files count
  by the paths it lists);
- each input: another stage's fingerprint when the pipe makes it, else the exact version (`name:v3`,
  immutable) or the path it names;
- the code: nemotron's version (`code_version: package`), or its version and git commit (`commit`).
The run's own name (`run_name`) does not count: the pipe derives it from the fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nemotron.checksums import sha256_file
from nemotron.paths import recipes_root

FINGERPRINT_LENGTH = 16  # hex digits kept (64 bits): names a stage's output among its own versions
_RECIPES = re.compile(r"\$\{recipes:([^}]*)\}")


@dataclass(frozen=True)
class FingerprintParts:
    """Everything a fingerprint hashes, kept so a plan can say what went into it."""

    stage: str  # "nano3/sft"
    config: dict[str, Any]  # the config as written, inputs replaced by their tokens, run_name left out
    recipe_files: dict[str, str]  # REL of each ${recipes:REL} -> sha256 of its content
    inputs: dict[str, str]  # config key (run.model) -> "stage sft fp-..." | "artifact name:v3" | "path P"
    code: str  # "nemotron 0.1.0" or "nemotron 0.1.0 commit abc123"

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def code_identity(policy: str) -> str:
    """What of the code counts under a pipe's `code_version` policy ("package" or "commit")."""
    from nemotron import __version__
    from nemotron.config.job_files import source_git_commit

    if policy == "commit":
        return f"nemotron {__version__} commit {source_git_commit() or 'unknown (not a git checkout)'}"
    return f"nemotron {__version__}"


def recipe_file_digests(config: Any) -> dict[str, str]:
    """sha256 of each file or folder a `${recipes:REL}` interpolation in `config` names (missing: 'missing')."""
    text = json.dumps(config, sort_keys=True, default=str)
    return {rel: _content_digest(recipes_root() / rel) for rel in sorted(set(_RECIPES.findall(text)))}


def _content_digest(path: Path) -> str:
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()
