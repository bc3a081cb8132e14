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
