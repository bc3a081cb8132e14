"""run_name and artifact_name of a training config name folders (runs/<run_name>, the registry's <name>):
a bad one fails when the config is loaded (so in --dry-run), at its key, naming the value and the rule."""

from __future__ import annotations

import pytest

from nemotron.config import ConfigError, to_dataclass
from nemotron.training.pretrain.config import PretrainConfig

BASE = {
    "run": {"data": "data:v1"},
    "run_name": "r",
    "model": {"num_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 256, "seq_length": 32},
    "train": {"global_batch_size": 4, "micro_batch_size": 2, "train_iters": 3},
    "lr": {"lr": 1e-3, "warmup_iters": 1},
}
RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 100 characters"


def load(overrides: tuple[str, ...] = (), **keys) -> PretrainConfig:
    return to_dataclass({**BASE, **keys}, PretrainConfig, source="tiny.yaml", overrides=overrides)


@pytest.mark.parametrize("key", ["run_name", "artifact_name"])
@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../x", "'../x', which does not start with a letter or digit"),
        ("a/b", "'a/b', which contains '/'"),
        ("", "'', which is empty"),
        (".hidden", "'.hidden', which does not start with a letter or digit"),
        ("a" * 300, "which has 300 characters"),
        ("a b", "'a b', which contains ' '"),
    ],
)
def test_bad_names_fail_at_their_key_with_the_rule(key, name, problem):
    with pytest.raises(ConfigError) as caught:
        load(overrides=(f"{key}={name}",), **{key: name})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"invalid config from tiny.yaml: key '{key}' is ")
    assert problem in message and RULE in message
    assert message.endswith(f"(set by the override '{key}={name}').")


def test_good_names_load_and_artifact_name_defaults_to_the_run_name():
    config = load(run_name="nano3-pretrain-tiny")
    assert config.model_artifact_name == "nano3-pretrain-tiny"
    assert load(artifact_name="my-model.v2").model_artifact_name == "my-model.v2"
    assert load(run_name="a" * 100).run_name == "a" * 100


def test_explicit_checkpoint_dir_may_be_anywhere():
    """A folder the user names is theirs to place; only names that form paths under nemotron's folders are checked."""
    assert load(checkpoint={"dir": "../elsewhere/ckpt"}).checkpoint.dir == "../elsewhere/ckpt"
