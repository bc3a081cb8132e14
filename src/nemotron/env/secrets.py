"""Secret detection and redaction for settings, environment variables and text."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "***"

# A name is secret when one of its word parts equals one of these words ...
SECRET_WORDS = frozenset(
    {
        "token",
        "key",
        "secret",
        "password",
        "passwd",
        "pwd",
        "credential",
        "credentials",
        "apikey",
    }
)
# ... or when a word part ends with one of these (long enough to be unambiguous:
# "hftoken", "mypassword", "wandbapikey" are secret; "monkey", "keyboard" are not).
SECRET_SUFFIXES = (
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "credentials",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
)

# Secret environment variables that jobs receive from the submitting user's environment.
WELL_KNOWN_SECRET_ENV_VARS = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY")

# Values shorter than this are never replaced in free text (too likely to be ordinary words).
MIN_SECRET_TEXT_LENGTH = 4

_SEPARATORS = re.compile(r"[_\-.\s]+")
_CAMEL_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def name_parts(name: str) -> list[str]:
    """Split a name into lower-case words on '_', '-', '.', whitespace and camelCase."""
    parts: list[str] = []
    for chunk in _SEPARATORS.split(name):
        parts.extend(p.lower() for p in _CAMEL_PARTS.findall(chunk))
    return parts


def is_secret_key(name: str) -> bool:
    """True when a setting or variable name denotes a secret (token, key, password, ...)."""
    for part in name_parts(str(name)):
        if part in SECRET_WORDS or part.endswith(SECRET_SUFFIXES):
            return True
    return False


def redact(obj: Any) -> Any:
    """Deep copy of nested dicts/lists/tuples with the values of secret keys replaced by '***'."""
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if isinstance(key, str) and is_secret_key(key) and value is not None:
                out[key] = REDACTED
            else:
                out[key] = redact(value)
        return out
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact(v) for v in obj)
    return obj


def redact_text(text: str, secret_values: Iterable[str]) -> str:
    """Replace every occurrence of each secret value (length >= 4) in text by '***'."""
    values = {str(v) for v in secret_values if v is not None and len(str(v)) >= MIN_SECRET_TEXT_LENGTH}
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def secrets_from_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The well-known secret variables (WANDB_API_KEY, HF_TOKEN, ...) set non-empty in env."""
    source = os.environ if env is None else env
    return {name: source[name] for name in WELL_KNOWN_SECRET_ENV_VARS if source.get(name)}
