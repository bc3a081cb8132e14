"""Fixtures of the training tests: a one-process megatron process group, and the test workers importable."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# checkpoint_worker.py and preemption_worker.py also run as scripts in subprocesses; the tests import them too.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@contextmanager
def _one_process_group() -> Iterator[object]:
    """init_distributed as a single process would (no torchrun variables), torn down afterwards."""
    from nemotron.training.distributed.parallel import TORCHRUN_VARS, destroy_distributed, init_distributed
    from nemotron.training.model.config import ParallelConfig

    with pytest.MonkeyPatch.context() as patch:
        for name in TORCHRUN_VARS:
            patch.delenv(name, raising=False)
        context = init_distributed(ParallelConfig(), seed=1234)
    try:
        yield context
    finally:
        destroy_distributed()


@pytest.fixture(scope="module")
def dist():
    """A one-process gloo group with megatron's groups, shared by a module's tests."""
    with _one_process_group() as context:
        yield context


@pytest.fixture
def dist_group():
    """A one-process gloo group with megatron's groups (as a single-GPU/CPU training run has), per test."""
    with _one_process_group() as context:
        yield context
