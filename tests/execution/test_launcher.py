"""The launcher validates the stage config once and carries the typed config into the job; launch-time
decisions (the Slurm job array) read its attributes, not the resolved dict."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from nemotron.env import Profile
from nemotron.execution.launcher import LaunchRequest, prepare, slurm_phases
from nemotron.stages.catalog import NANO3_DATA_PREP_PRETRAIN


@pytest.fixture
def slurm_env(nemotron_home, tmp_path):
    (tmp_path / "env.toml").write_text('[cluster]\nexecutor = "slurm"\naccount = "acct"\n')


def prepared(profile: str | None, *overrides: str):
    return prepare(LaunchRequest(NANO3_DATA_PREP_PRETRAIN, "tiny", overrides, profile, ()))


def test_job_carries_the_typed_config_it_was_validated_into(slurm_env):
    job = prepared("cluster", "array_tasks=3", "batch_size=64").job
    assert isinstance(job.typed_config, NANO3_DATA_PREP_PRETRAIN.load_schema())
    assert (job.typed_config.array_tasks, job.typed_config.batch_size) == (3, 64)
    assert (job.config["array_tasks"], job.config["batch_size"]) == (3, 64)  # config.yaml says the same


def test_slurm_array_size_comes_from_the_typed_config(slurm_env):
    shards, finalize = prepared("cluster", "array_tasks=3").job.phases
    assert (shards.name, shards.array_size, shards.args) == ("shards", 3, ("--phase", "shards"))
    assert (finalize.name, finalize.array_size, finalize.args) == ("finalize", None, ("--phase", "finalize"))
    assert prepared("cluster", "array_tasks=0").job.phases == ()
    assert prepared(None, "array_tasks=3").job.phases == ()  # locally the stage runs whole


def test_slurm_phases_read_attributes_of_the_typed_config():
    profile = dataclasses.replace(Profile.default_local(), executor="slurm")
    (shards, _) = slurm_phases(NANO3_DATA_PREP_PRETRAIN, profile, SimpleNamespace(array_tasks=2))
    assert shards.array_size == 2
    unsharded = dataclasses.replace(NANO3_DATA_PREP_PRETRAIN, array_size=None)
    assert slurm_phases(unsharded, profile, SimpleNamespace(array_tasks=2)) == ()
    with pytest.raises(AttributeError):  # a dict is not a typed config: no string lookups
        slurm_phases(NANO3_DATA_PREP_PRETRAIN, profile, {"array_tasks": 2})
