"""start_config: a pipe stage's job resolves and checks its composed config when it starts, in place."""

from __future__ import annotations

import pytest

from nemotron.artifacts import ArtifactNotFoundError
from nemotron.config.job_files import write_job_files
from nemotron.execution.launcher import LaunchRequest, prepare
from nemotron.execution.start_config import resolve_job_config
from nemotron.stages.catalog import NANO3_DATA_PREP_PRETRAIN, NANO3_SFT


def job_dir_of(request: LaunchRequest, tmp_path):
    job = prepare(request).job
    folder = tmp_path / job.name
    write_job_files(folder, job.config, job.provenance)  # as the Slurm backend writes them
    return folder


def test_the_composed_config_is_resolved_in_place_and_a_second_pass_changes_nothing(nemotron_home, tmp_path):
    request = LaunchRequest(NANO3_DATA_PREP_PRETRAIN, "tiny", ("array_tasks=0",), None, (), resolve_at_start=True)
    folder = job_dir_of(request, tmp_path)
    assert "${recipes:" in (folder / "config.yaml").read_text()
    resolve_job_config("nano3/data-prep-pretrain", folder, str(nemotron_home / "artifacts"))
    resolved = (folder / "config.yaml").read_text()
    assert "${" not in resolved and "tokenizer-tiny" in resolved
    resolve_job_config("nano3/data-prep-pretrain", folder, str(nemotron_home / "artifacts"))  # a requeued job
    assert (folder / "config.yaml").read_text() == resolved


def test_an_input_that_was_not_made_fails_the_start_naming_the_key(nemotron_home, tmp_path):
    overrides = ("run.model=nano3-pretrain-tiny:fp-0123456789abcdef",)
    folder = job_dir_of(LaunchRequest(NANO3_SFT, "tiny", overrides, None, (), resolve_at_start=True), tmp_path)
    before = (folder / "config.yaml").read_text()
    with pytest.raises(ArtifactNotFoundError, match=r"run\.(model|data)"):
        resolve_job_config("nano3/sft", folder, str(nemotron_home / "artifacts"))
    assert (folder / "config.yaml").read_text() == before  # nothing half-written
