"""The error raised for bad artifact references and registry problems."""


class ArtifactError(Exception):
    """An artifact could not be found, parsed or published; the message says why and what exists."""
