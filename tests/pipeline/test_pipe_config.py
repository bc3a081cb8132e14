"""Pipe configs: the built-in ones load; mistakes name the file, the key and what would be right."""

from __future__ import annotations

from pathlib import Path

import pytest

from nemotron.config.errors import ConfigError
from nemotron.pipeline.pipe_config import load_pipe_config, split_overrides


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "pipe.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_the_built_in_pipes_list_the_whole_chain_in_order(name):
    pipe = load_pipe_config(name, "nano3")
    assert pipe.names == ("prep_pretrain", "pretrain", "prep_sft", "sft", "prep_rl", "rl", "eval")
    assert [stage.spec.key for stage in pipe.stages] == [
        "data-prep-pretrain",
        "pretrain",
        "data-prep-sft",
        "sft",
        "data-prep-rl",
        "rl",
        "eval",
    ]
    assert {stage.config for stage in pipe.stages} == {name}
    assert pipe.code_version == "package"


def test_a_misspelled_stage_kind_is_named_with_a_suggestion(tmp_path):
    path = write(tmp_path, "stages:\n  a:\n    stage: pretrian\n    config: tiny\n")
    with pytest.raises(ConfigError, match=r"stages\.a\.stage='pretrian' is not a nano3 stage; did you mean 'pretrain'"):
        load_pipe_config(path, "nano3")


def test_an_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = write(tmp_path, "stages:\n  a:\n    stage: pretrain\n    confg: tiny\n")
    with pytest.raises(ConfigError, match=r"unknown key 'stages\.a\.confg'; did you mean 'config'"):
        load_pipe_config(path, "nano3")
    path = write(tmp_path, "code_versoin: commit\nstages:\n  a:\n    stage: pretrain\n")
    with pytest.raises(ConfigError, match=r"unknown key 'code_versoin'; did you mean 'code_version'"):
        load_pipe_config(path, "nano3")


def test_bad_values_are_refused_with_the_fix(tmp_path):
    cases = {
        "code_version: always\nstages:\n  a: {stage: pretrain}\n": r"code_version='always'; use 'package'",
        "stages: []\n": r"'stages' must map stage names",
        "stages:\n  Pre-Train: {stage: pretrain}\n": r"stage name 'Pre-Train' must be lower-case",
        "stages:\n  a: {stage: pretrain, overrides: x=1}\n": r"stages\.a\.overrides must be a list",
        "stages:\n  a: pretrain\n": r"stages\.a must be a mapping",
    }
    for text, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load_pipe_config(write(tmp_path, text), "nano3")


def test_a_config_path_in_a_pipe_file_is_relative_to_that_file(tmp_path):
    (tmp_path / "mine.yaml").write_text("extends: default\n")
    path = write(tmp_path, "stages:\n  a: {stage: pretrain, config: ./mine.yaml}\n")
    assert load_pipe_config(path, "nano3").stage("a").config == str(tmp_path / "mine.yaml")


def test_command_line_overrides_go_to_the_stage_they_name():
    pipe = load_pipe_config("tiny", "nano3")
    split = split_overrides(("pretrain.train.train_iters=5", "+sft.a.b=1", "~rl.x", "sft.peft.kind=lora"), pipe)
    assert split["pretrain"] == ("train.train_iters=5",)
    assert split["sft"] == ("+a.b=1", "peft.kind=lora")
    assert split["rl"] == ("~x",)
    assert split["eval"] == ()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sfx.train.train_iters=5", r"no stage 'sfx' in pipe tiny\.yaml\. Did you mean 'sft'\?"),
        ("train_iters=5", r"no stage 'train_iters'.*STAGE\.key=value"),
        ("pretrain=5", r"no stage 'pretrain'.*STAGE\.key=value"),
    ],
)
def test_an_override_without_a_known_stage_is_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        split_overrides((override,), load_pipe_config("tiny", "nano3"))
