"""Helpers shared by the benchmark scripts: finding the `nemotron` command, failures of measured commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path


class CommandFailed(RuntimeError):
    """A measured command exited non-zero or timed out."""


def nemotron_command() -> list[str]:
    """The `nemotron` console script next to this interpreter, else `python -m nemotron`."""
    bindir = Path(sys.executable).parent
    for name in ("nemotron", "nemotron.exe"):
        script = bindir / name
        if script.is_file() and os.access(script, os.X_OK):
            return [str(script)]
    return [sys.executable, "-m", "nemotron"]


def write_json(path: Path, payload: dict) -> None:
    """Write a benchmark's results as JSON (creating the folder) and say where."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {path}")
