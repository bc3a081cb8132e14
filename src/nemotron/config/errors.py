"""The root of errors raised for recipe-config problems."""

from __future__ import annotations

from nemotron.errors import NemotronError


class ConfigError(NemotronError):
    """A recipe config could not be found, loaded, overridden or validated.

    The message always names the file, override or dotted key at fault and
    says how to fix it, so the CLI can print it as-is without a traceback.
    """
