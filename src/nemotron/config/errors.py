"""The single exception type raised for every recipe-config problem."""

from __future__ import annotations


class ConfigError(Exception):
    """A recipe config could not be found, loaded, overridden or validated.

    The message always names the file, override or dotted key at fault and
    says how to fix it, so the CLI can print it as-is without a traceback.
    """
