"""Planning a pipe: fingerprints, inputs wired to earlier stages, skip when done, rerun what changed or failed.

The stage configs are the real tiny recipes; "done" artifacts are published into a real FileRegistry with the
fingerprint in their lineage, as a stage run by a pipe publishes them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron.artifacts import ArtifactKind, ArtifactNotFoundError, FileRegistry, Lineage
from nemotron.config.errors import ConfigError
from nemotron.errors import NemotronError
from nemotron.pipeline import fingerprint as fingerprint_module
from nemotron.pipeline.pipe_config import load_pipe_config, split_overrides
from nemotron.pipeline.plan import OFF, RUN, SKIP, WAIT, PipePlan, plan_pipe
from nemotron.pipeline.records import PipeRecord, PipeStageRecord, save_pipe_record
from nemotron.pipeline.selection import select_stages


@pytest.fixture
def registry(nemotron_home) -> FileRegistry:
    return FileRegistry(nemotron_home / "artifacts")


def plan(registry: FileRegistry, *overrides: str, config: str = "tiny", **selection: str) -> PipePlan:
    pipe = load_pipe_config(config, "nano3")
    return plan_pipe(pipe, split_overrides(overrides, pipe), select_stages(pipe.names, **selection), registry)


def publish(registry: FileRegistry, name: str, fingerprint: str | None) -> str:
    """A stand-in output of a stage, published the way a stage publishes: its fingerprint in the lineage."""
    with registry.staging(name) as staging:
        (staging.path / "blend.json").write_text("{}")
        artifact = registry.publish(
            staging,
            kind=ArtifactKind.PRETRAIN_DATA,
            lineage=Lineage(stage="test", fingerprint=fingerprint),
            metadata={},
            files={"blend": "blend.json"},
        )
    return artifact.ref


def by_name(plan: PipePlan) -> dict:
    return {stage.name: stage for stage in plan.stages}


def test_a_fresh_registry_runs_every_stage_reading_the_outputs_of_the_stages_before(registry):
    stages = by_name(plan(registry))
    assert all(stage.action == RUN for stage in stages.values())
    assert stages["pretrain"].reason == "no nano3-pretrain-tiny yet"
    pretrain, sft = stages["pretrain"], stages["sft"]
    assert f"run.model=nano3-pretrain-tiny:fp-{pretrain.fingerprint}" in sft.overrides
    assert f"run.data=nano3-sft-data-tiny:fp-{stages['prep_sft'].fingerprint}" in sft.overrides
    assert sft.upstream == ("prep_sft", "pretrain")
    models = [link.source for link in stages["eval"].inputs if link.key.startswith("run.models")]
    assert models == ["pretrain", "sft", "rl"]
    # a run folder per fingerprint; the artifact keeps its name
    assert f"run_name=nano3-sft-tiny-{sft.fingerprint[:8]}" in sft.overrides
    assert "artifact_name=nano3-sft-tiny" in sft.overrides
    assert not any(o.startswith("run_name") for o in stages["prep_sft"].overrides)  # data prep: no run folder


def test_fingerprints_are_stable_and_a_change_reaches_exactly_the_stages_that_read_it(registry):
    first, again = by_name(plan(registry)), by_name(plan(registry))
    assert {n: s.fingerprint for n, s in first.items()} == {n: s.fingerprint for n, s in again.items()}
    changed = by_name(plan(registry, "pretrain.train.train_iters=100"))
    differs = {name for name in first if first[name].fingerprint != changed[name].fingerprint}
    assert differs == {"pretrain", "sft", "rl", "eval"}  # not the data preps, which do not read pretrain
    # run_name is the pipe's to choose (a folder per fingerprint): it does not count
    assert "run_name" not in first["sft"].parts.config and "train" in first["sft"].parts.config


def test_the_code_version_policy_decides_what_of_the_code_counts(registry, tmp_path):
    package = plan(registry)
    assert package.code.startswith("nemotron ") and "commit" not in package.code
    text = (Path(load_pipe_config("tiny", "nano3").path)).read_text().replace("package", "commit")
    (tmp_path / "pipe.yaml").write_text(text)
    commit = plan(registry, config=str(tmp_path / "pipe.yaml"))
    assert "commit" in commit.code
    assert commit.stages[0].fingerprint != package.stages[0].fingerprint


def test_a_recipe_file_counts_by_its_content(tmp_path, monkeypatch):
    (tmp_path / "blend.json").write_text('{"a": 1}')
    monkeypatch.setattr(fingerprint_module, "recipes_root", lambda: tmp_path)
    config = {"blend_path": "${recipes:blend.json}", "tokenizer": "${recipes:tok}"}
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.json").write_text("{}")
    before = fingerprint_module.recipe_file_digests(config)
    (tmp_path / "tok" / "vocab.json").write_text('{"x": 1}')
    after = fingerprint_module.recipe_file_digests(config)
    assert before["blend.json"] == after["blend.json"] and before["tok"] != after["tok"]
    assert fingerprint_module.recipe_file_digests({"x": "${recipes:gone.json}"}) == {"gone.json": "missing"}


def test_a_stage_whose_output_has_its_fingerprint_is_skipped_and_read_by_version(registry):
    first = by_name(plan(registry))
    ref = publish(registry, "nano3-pretrain-data-tiny", first["prep_pretrain"].fingerprint)
    stages = by_name(plan(registry))
    assert stages["prep_pretrain"].action == SKIP and stages["prep_pretrain"].done == ref
    assert stages["prep_pretrain"].reason == f"done: {ref} has this fingerprint"
    assert f"run.data={ref}" in stages["pretrain"].overrides
    assert stages["pretrain"].fingerprint == first["pretrain"].fingerprint  # same inputs, same fingerprint
    forced = by_name(plan(registry, force="prep_pretrain"))
    assert forced["prep_pretrain"].action == RUN and forced["prep_pretrain"].reason.startswith("forced (--force)")
    # what reads a forced stage reads the version it makes now, not the one done before
    alias = f"nano3-pretrain-data-tiny:fp-{first['prep_pretrain'].fingerprint}"
    assert f"run.data={alias}" in forced["pretrain"].overrides


def test_a_changed_or_foreign_output_reruns_and_says_why(registry):
    publish(registry, "nano3-pretrain-data-tiny", None)
    assert (
        by_name(plan(registry))["prep_pretrain"].reason
        == "nano3-pretrain-data-tiny:v1 was made outside a pipe (no fingerprint)"
    )
    publish(registry, "nano3-pretrain-data-tiny", "0123456789abcdef")
    stage = by_name(plan(registry))["prep_pretrain"]
    assert stage.action == RUN
    assert stage.reason == "changed: nano3-pretrain-data-tiny:v2 has fingerprint 0123456789abcdef"


def test_a_stage_that_failed_before_says_where_its_log_is(registry):
    stages = by_name(plan(registry))
    sft = stages["sft"]
    record = PipeRecord(
        name="nano3-pipe-x",
        config="tiny",
        profile=None,
        backend="local",
        started_at="2026-12-01T00:00:00",
        code="nemotron",
        argv=(),
        stages=(PipeStageRecord("sft", "nano3/sft", sft.fingerprint, RUN, "", state="FAILED", log="/logs/sft.log"),),
    )
    save_pipe_record(record)
    reason = by_name(plan(registry))["sft"].reason
    assert reason.startswith("failed in nano3-pipe-x (FAILED; log /logs/sft.log); no nano3-sft-tiny yet")
    assert by_name(plan(registry, "sft.lr.lr=1e-3"))["sft"].reason == "no nano3-sft-tiny yet"  # another fingerprint


def test_stages_outside_the_selection_are_reused_when_done_and_refused_when_needed_but_missing(registry):
    stages = by_name(plan(registry, stop="pretrain"))
    assert [stages[n].action for n in ("prep_pretrain", "pretrain", "sft", "eval")] == [RUN, RUN, OFF, OFF]
    with pytest.raises(
        ConfigError,
        match=r"stage sft reads nano3-sft-data-tiny \(run\.data\) from stage prep_sft, "
        r"which is not selected .* include stage prep_sft",
    ):
        plan(registry, only="sft")
    first = by_name(plan(registry))
    for name, artifact in (
        ("prep_pretrain", "nano3-pretrain-data-tiny"),
        ("pretrain", "nano3-pretrain-tiny"),
        ("prep_sft", "nano3-sft-data-tiny"),
    ):
        publish(registry, artifact, first[name].fingerprint)
    stages = by_name(plan(registry, only="sft"))
    assert stages["pretrain"].action == SKIP and stages["pretrain"].reason.startswith("not selected; ")
    assert stages["sft"].action == RUN and "run.model=nano3-pretrain-tiny:v1" in stages["sft"].overrides


def test_an_input_no_stage_makes_is_pinned_and_a_missing_one_is_named(registry):
    publish(registry, "my-base", None)
    pipe_overrides = ("sft.run.model=my-base:latest",)
    sft = by_name(plan(registry, *pipe_overrides))["sft"]
    assert "run.model=my-base:v1" in sft.overrides and sft.parts.inputs["run.model"] == "artifact my-base:v1"
    with pytest.raises(ArtifactNotFoundError, match=r"run\.model of stage sft.*no stage of this pipe publishes it"):
        plan(registry, "sft.run.model=nobody:latest")


def test_config_mistakes_name_the_stage_and_the_override_as_the_pipe_takes_it(registry):
    with pytest.raises(ConfigError, match=r"stage sft: unknown key 'train\.train_itrs'.*'\+sft\.train\.train_itrs=5'"):
        plan(registry, "sft.train.train_itrs=5")


def test_a_stage_an_earlier_pipe_still_runs_is_waited_for_not_started_twice(registry):
    sft = by_name(plan(registry))["sft"]
    running = PipeStageRecord("sft", "nano3/sft", sft.fingerprint, RUN, "", state="RUNNING", job="nano3-sft-job")
    save_pipe_record(
        PipeRecord("nano3-pipe-y", "tiny", "cluster", "slurm", "2026-12-01T00:00:00", "nemotron", (), (running,))
    )
    planned = plan(registry)
    stages = by_name(planned)
    assert (
        stages["sft"].action == WAIT
        and stages["sft"].reason == "still RUNNING as job nano3-sft-job of pipe nano3-pipe-y"
    )
    assert stages["rl"].action == RUN  # planned as usual; nothing starts while a stage waits
    with pytest.raises(NemotronError, match=r"stage sft .* is still RUNNING .*nemotron jobs cancel nano3-pipe-y"):
        planned.refuse_if_waiting()
