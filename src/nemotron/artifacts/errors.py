"""The root of errors raised for bad artifact references and registry problems."""

from __future__ import annotations

from nemotron.errors import NemotronError


class ArtifactError(NemotronError):
    """An artifact could not be found, parsed or published; the message says why and what exists."""
