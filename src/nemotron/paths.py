"""Where nemotron keeps things: its home directory and the recipes shipped with the package."""

from __future__ import annotations

import os
from pathlib import Path


def nemotron_home() -> Path:
    """`$NEMOTRON_HOME`, else `~/.nemotron`: job records, local job dirs, NeMo-Run's state."""
    return Path(os.environ.get("NEMOTRON_HOME") or "~/.nemotron").expanduser().resolve()


def recipes_root() -> Path:
    """The recipes folder: inside the installed wheel, or at the top of a source checkout."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_recipes", package_dir.parents[1] / "recipes"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"recipes not found next to {package_dir}; reinstall nemotron (pip install .) or run from a checkout"
    )


def runs_root(artifacts_root: Path | str) -> Path:
    """Where run folders live (checkpoints, TensorBoard events, reports): `runs/` next to the registry."""
    return Path(artifacts_root).expanduser().resolve().parent / "runs"


def nearest_existing(path: Path) -> Path:
    """`path` made absolute, or its nearest parent that exists (what decides whether it can be created)."""
    existing = Path(path).expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return existing


def unwritable_reason(folder: Path) -> str | None:
    """Why `folder` cannot be created or written here (its nearest existing parent is not a writable
    folder: a file, read-only, not permitted), or None when it can."""
    existing = nearest_existing(folder)
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None
