"""The error raised for bad data inputs (blend files, sources, tokenizers)."""


class DataError(Exception):
    """A data input is missing or malformed; the message names the file/key and the fix."""
