"""The data prep stage's config schema rejects counts that make no sense when the config is loaded (launch time)."""

from __future__ import annotations

import pytest

from nemotron.config import ConfigError, to_dataclass
from nemotron.stages.data_prep_config import DataPrepPretrainConfig

BASE = {"blend_path": "blend.json", "tokenizer": {"name_or_path": "tok"}}


def load(overrides: tuple[str, ...] = (), **keys):
    return to_dataclass({**BASE, **keys}, DataPrepPretrainConfig, source="tiny.yaml", overrides=overrides)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"workers": -1}, "key 'workers' must be >= 1, got -1. Use null for one worker per core."),
        ({"workers": 0}, "key 'workers' must be >= 1, got 0. Use null for one worker per core."),
        (
            {"max_bad_records": -1},
            "key 'max_bad_records' must be >= 0, got -1. It counts malformed records to skip before failing; "
            "0 fails on the first one.",
        ),
    ],
)
def test_negative_counts_are_rejected_naming_the_key(keys, expected):
    with pytest.raises(ConfigError) as caught:
        load(**keys)
    assert expected in str(caught.value)
    assert "tiny.yaml" in str(caught.value)


def test_valid_counts_load():
    config = load(workers=None, max_bad_records=0)
    assert config.workers is None and config.max_bad_records == 0
    assert load(workers=3, max_bad_records=10).workers == 3


def test_the_override_that_set_a_bad_count_is_named():
    with pytest.raises(ConfigError, match=r"got -1\. Use null .* \(set by the override 'workers=-1'\)\.$"):
        load(overrides=("workers=-1",), workers=-1)


# The artifact name is a folder of the registry: a bad one fails when the config is loaded (and so in
# --dry-run), naming the key, the value and the rule, before any file is written.
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../../x", "'../../x', which does not start with a letter or digit"),
        ("", "'', which is empty"),
        ("a" * 300, "which has 300 characters"),
        ("a/b", "'a/b', which contains '/'"),
        ("a b", "'a b', which contains ' '"),
        (".hidden", "'.hidden', which does not start with a letter or digit"),
        ("name\n", "which contains '\\n'"),
    ],
)
def test_bad_artifact_names_are_rejected_naming_the_key_and_the_rule(name, problem):
    with pytest.raises(ConfigError) as caught:
        load(overrides=(f"artifact_name={name}",), artifact_name=name)
    message = str(caught.value)
    assert "\n" not in message.partition(" (set by the override")[0]  # one line (the override is shown as typed)
    assert message.startswith("invalid config from tiny.yaml: key 'artifact_name' is ")
    assert problem in message
    assert "use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters" in message
    assert f"(set by the override 'artifact_name={name}')" in message


def test_a_sample_name_must_fit_the_length_with_its_suffix():
    assert load(artifact_name="a" * 100).artifact_name == "a" * 100
    assert load(artifact_name="a" * 93, sample=10).sample == 10  # a...a-sample: 100 characters
    with pytest.raises(ConfigError, match=r"key 'artifact_name' has 94 characters; with sample set .* 93 characters"):
        load(artifact_name="a" * 94, sample=10)


@pytest.mark.parametrize("name", ["nano3-pretrain-data-tiny", "data.v2_final", "7b"])
def test_good_artifact_names_load(name):
    assert load(artifact_name=name).artifact_name == name
