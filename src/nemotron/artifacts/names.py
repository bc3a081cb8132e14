"""The one rule for names that become folders under nemotron's own folders: artifact names and run names.

An artifact name is a folder of the registry (`<artifacts root>/<name>/v1`), a run name a folder of
`runs/` (and the default model artifact name), so both follow the same rule: letters, digits, '.',
'_' and '-', starting with a letter or digit (no '/', no '..', no hidden folder), at most
`NAME_MAX_LENGTH` characters. Config schemas check it when the config is loaded (and so in
`--dry-run`), the registry again when it writes.
"""

from __future__ import annotations

import re

from nemotron.artifacts.errors import ArtifactError

NAME_MAX_LENGTH = 100
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # fullmatch: "$" would let a trailing newline in
NAME_RULE = (
    f"use letters, digits, '.', '_' and '-', starting with a letter or digit, at most {NAME_MAX_LENGTH} characters"
)


class InvalidNameError(ArtifactError, ValueError):
    """A name breaks the rule. A ValueError too, so a config schema's `__post_init__` can raise it and the
    schema reports it at the config key it names (nemotron.config.schema)."""


def name_problem(name: object) -> str | None:
    """What is wrong with `name` as an artifact or run name, or None when it follows the rule."""
    if not isinstance(name, str):
        return f"is not a string ({type(name).__name__})"
    if not name:
        return "is empty"
    if len(name) > NAME_MAX_LENGTH:
        return f"has {len(name)} characters"
    if not _NAME_RE.fullmatch(name):
        if not _NAME_RE.fullmatch(name[0]):
            return "does not start with a letter or digit"
        bad = next(c for c in name if not _NAME_RE.fullmatch("a" + c))
        return f"contains {bad!r}"
    return None


def _shown(name: object) -> str:
    text = repr(name)
    return text if len(text) <= 60 else f"{text[:40]}...{text[-12:]}"


def validate_artifact_name(name: str, key: str | None = None, *, example: str = "nano3-pretrain-data-tiny") -> str:
    """Return `name` if it follows the rule, else raise InvalidNameError (one line: the key, the value, the rule).

    With `key` (a config key such as 'artifact_name') the message starts "key '<key>'", the form a
    schema places at the full dotted key; without it, "invalid artifact name ...".
    """
    problem = name_problem(name)
    if problem is None:
        return name
    if key is None:
        raise InvalidNameError(f"invalid artifact name {_shown(name)} ({problem}): {NAME_RULE}")
    raise InvalidNameError(f"key '{key}' is {_shown(name)}, which {problem}: {NAME_RULE}, e.g. {example}.")
