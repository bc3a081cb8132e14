"""The root of errors raised for bad data inputs (blend files, sources, tokenizers)."""

from __future__ import annotations

from nemotron.errors import NemotronError


class DataError(NemotronError):
    """A data input is missing or malformed; the message names the file/key and the fix."""


class DataFolderBusy(DataError):
    """Another process holds the data prep output folder's lease: two writers would mix their shards."""
