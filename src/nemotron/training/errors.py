"""The root of errors raised while training runs (checkpoints, processes, data, divergence, export)."""

from __future__ import annotations

from nemotron.errors import NemotronError


class TrainingError(NemotronError):
    """Training could not go on; the message names the file or setting and the fix."""
