"""Fixtures of the execution tests."""

from __future__ import annotations

import io
import sys

import pytest


@pytest.fixture(autouse=True)
def readable_stdin(monkeypatch):
    """NeMo-Run's dry run runs `mkdir` through invoke, which copies stdin; pytest's captured stdin raises."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
