"""Tests for nemotron.config.overrides: every Hydra override form and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
from omegaconf import OmegaConf

from nemotron.config import ConfigError, apply_overrides, to_dataclass


def base():
    return OmegaConf.create(
        {
            "model": {"name": "nano", "hidden": 64, "lr": 0.001, "tied": True, "layers": [1, 2]},
            "train": {"iters": 100, "extra": {"seed": 1}},
            "tokenizer": {"name": "gpt2", "path": None},
            "alias": "${model.name}",
            "todo": "???",
        }
    )


def apply(*overrides, cfg=None):
    return OmegaConf.to_container(apply_overrides(cfg or base(), list(overrides)), resolve=False)


def error(*overrides, source="command line"):
    with pytest.raises(ConfigError) as info:
        apply_overrides(base(), list(overrides), source=source)
    return str(info.value)


# --- change -----------------------------------------------------------------


def test_change_existing_key():
    assert apply("train.iters=5")["train"]["iters"] == 5


def test_input_config_is_not_modified():
    cfg = base()
    apply_overrides(cfg, ["train.iters=5"])
    assert cfg.train.iters == 100


def test_overrides_apply_in_order():
    assert apply("train.iters=5", "train.iters=7")["train"]["iters"] == 7


def test_no_overrides_returns_equal_config():
    assert apply() == OmegaConf.to_container(base(), resolve=False)


def test_unknown_key_suggests_close_key_and_plus():
    msg = error("model.hiden=3")
    assert "unknown key 'model.hiden'" in msg
    assert "command line override 'model.hiden=3'" in msg
    assert "did you mean 'model.hidden'?" in msg
    assert "Use '+model.hiden=3' to add a new key." in msg


def test_unknown_key_without_close_match_has_no_suggestion():
    msg = error("zzzzzz=1")
    assert "did you mean" not in msg
    assert "Use '+zzzzzz=1'" in msg


def test_unknown_key_suggests_inner_nodes_too():
    assert "did you mean 'train.extra.seed'?" in error("train.extr.seed=2")
    assert "did you mean 'train.extra'?" in error("train.extr={}")


def test_error_names_the_source():
    assert "recipe file x.yaml override" in error("nope=1", source="recipe file x.yaml")


def test_change_list_element_by_index():
    assert apply("model.layers.1=9")["model"]["layers"] == [1, 9]


# --- add / force add / delete ----------------------------------------------


def test_add_new_nested_key():
    out = apply("+extra.note=x")
    assert out["extra"] == {"note": "x"}


def test_add_existing_key_fails():
    msg = error("+train.iters=5")
    assert "key 'train.iters' already exists" in msg
    assert "use 'train.iters=5' to change it or '++train.iters=5' to force" in msg


def test_add_under_scalar_fails():
    assert "cannot add a key under 'train.iters'" in error("+train.iters.x=1")


def test_force_add_creates_and_replaces():
    out = apply("++new.key=1", "++train.iters=3")
    assert out["new"] == {"key": 1}
    assert out["train"]["iters"] == 3


def test_force_add_replaces_value_of_any_type():
    assert apply("++train.iters=abc")["train"]["iters"] == "abc"  # the schema judges it (below)


def test_delete_key():
    out = apply("~train.extra")
    assert out["train"] == {"iters": 100}


def test_delete_missing_key_fails_with_suggestion():
    msg = error("~train.iter")
    assert "cannot delete unknown key 'train.iter'" in msg
    assert "did you mean 'train.iters'?" in msg


def test_delete_with_matching_value():
    assert "iters" not in apply("~train.iters=100")["train"]


def test_delete_with_other_value_fails():
    msg = error("~train.iters=5")
    assert "its value is 100, not 5" in msg
    assert "'~train.iters'" in msg


def test_delete_with_value_compares_resolved_interpolation():
    assert "alias" not in apply("~alias=nano")


def test_delete_null_valued_key():
    assert "path" not in apply("~tokenizer.path")["tokenizer"]


# --- values and type checks ------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key", "value"),
    [
        ("train.iters=abc", "iters", "abc"),
        ("train.iters=1.5", "iters", 1.5),
        ("train.iters=true", "iters", True),
        ("model.tied=1", "tied", 1),
        ("model.name=true", "name", True),
        ("model.name=[1,2]", "name", [1, 2]),
        ("model.layers=3", "layers", 3),
        ("train.extra=3", "extra", 3),
    ],
)
def test_value_of_another_type_is_kept_as_parsed(override, key, value):
    """Overrides parse; they do not judge types: the stage's schema does that once."""
    section = override.split(".")[0]
    got = apply(override)[section][key]
    assert got == value and type(got) is type(value)


def test_int_to_float_key_converts():
    out = apply("model.lr=1")
    assert out["model"]["lr"] == 1.0 and isinstance(out["model"]["lr"], float)


def test_float_with_exponent():
    assert apply("model.lr=3e-4")["model"]["lr"] == pytest.approx(3e-4)


def test_bool_value():
    assert apply("model.tied=false")["model"]["tied"] is False


def test_str_key_with_digits_keeps_them_as_typed():
    assert apply("model.name=123")["model"]["name"] == "123"
    assert apply("model.name=1.10")["model"]["name"] == "1.10"
    assert apply("model.name=007")["model"]["name"] == "007"


def test_null_is_accepted_for_any_key():
    out = apply("train.iters=null", "model.layers=null")
    assert out["train"]["iters"] is None and out["model"]["layers"] is None


def test_existing_null_accepts_any_type():
    assert apply("tokenizer.path=[a,b]")["tokenizer"]["path"] == ["a", "b"]


def test_existing_interpolation_accepts_any_type():
    assert apply("alias=5")["alias"] == 5


def test_missing_marker_accepts_any_type():
    assert apply("todo=5")["todo"] == 5


def test_double_quoted_string_with_spaces():
    assert apply('tokenizer.name="a b"')["tokenizer"]["name"] == "a b"


def test_single_quoted_string_with_equals():
    assert apply("tokenizer.name='x=y'")["tokenizer"]["name"] == "x=y"


def test_quoted_number_stays_string():
    assert apply("+extra.v='123'")["extra"]["v"] == "123"


def test_list_value():
    assert apply("model.layers=[3,4,5]")["model"]["layers"] == [3, 4, 5]


def test_list_value_replaces_not_merges():
    assert apply("model.layers=[7]")["model"]["layers"] == [7]


def test_nested_list_and_dict_values():
    out = apply("+extra.v={a:[1,{b:c}],d:null}")
    assert out["extra"]["v"] == {"a": [1, {"b": "c"}], "d": None}


def test_dict_value_merges_into_existing_dict_like_hydra():
    out = apply("train.extra={other:2}")
    assert out["train"]["extra"] == {"seed": 1, "other": 2}


def test_interpolation_kept_unresolved():
    cfg = apply_overrides(base(), ["+extra.dup=${train.iters}", "tokenizer.name=${model.name}"])
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert raw["extra"]["dup"] == "${train.iters}"
    assert raw["tokenizer"]["name"] == "${model.name}"
    assert cfg.extra.dup == 100
    assert cfg.tokenizer.name == "nano"


def test_interpolation_accepted_for_int_key():
    cfg = apply_overrides(base(), ["train.iters=${train.extra.seed}"])
    assert cfg.train.iters == 1


def test_empty_value_is_empty_string():
    assert apply("tokenizer.name=")["tokenizer"]["name"] == ""


# --- rejected forms --------------------------------------------------------


@pytest.mark.parametrize("override", ["train.iters=1,2", "train.iters=choice(1,2)", "train.iters=range(3)"])
def test_sweeps_rejected(override):
    msg = error(override)
    assert "sweeps are not supported; give one value" in msg
    assert override in msg


@pytest.mark.parametrize("override", ["train.iters==", "tokenizer.name=a=b", "=5", "train.iters=[1,"])
def test_unparseable_override(override):
    msg = error(override)
    assert f"cannot parse command line override '{override}'" in msg
    assert "key=value" in msg


def test_package_override_rejected():
    assert "'@package' overrides are not supported" in error("model@x=1")


def test_error_in_second_override_names_it():
    msg = error("train.iters=5", "model.nmae=x")
    assert "'model.nmae=x'" in msg and "did you mean 'model.name'" in msg


# --- the type check is the schema's, and happens once ------------------------


@dataclass(frozen=True)
class ModelSection:
    name: str
    hidden: int
    lr: float
    tied: bool
    layers: list[int]


@dataclass(frozen=True)
class TrainSection:
    iters: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenizerSection:
    name: str
    path: Optional[str] = None  # noqa: UP045 -- as stage schemas write it


@dataclass(frozen=True)
class BaseSchema:
    model: ModelSection
    train: TrainSection
    tokenizer: TokenizerSection
    alias: str


def schema_error(*overrides):
    cfg = apply_overrides(base(), ["~todo", *overrides])  # no error here: overrides do not judge types
    with pytest.raises(ConfigError) as info:
        to_dataclass(cfg, BaseSchema, source="x.yaml")
    return str(info.value)


def test_base_with_fitting_overrides_builds():
    cfg = apply_overrides(base(), ["~todo", "model.lr=1", "model.name=007", "train.iters=5"])
    built = to_dataclass(cfg, BaseSchema, source="x.yaml")
    assert built.model.lr == 1.0 and built.model.name == "007" and built.train.iters == 5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.iters=abc", "key 'train.iters' expects int, got str 'abc'; give a whole number."),
        ("train.iters=1.5", "key 'train.iters' expects int, got float 1.5; give a whole number."),
        ("++train.iters=true", "key 'train.iters' expects int, got bool True; give a whole number."),
        ("model.tied=1", "key 'model.tied' expects bool, got int 1; give true or false."),
        ("model.lr=fast", "key 'model.lr' expects float, got str 'fast'; give a number."),
        (
            "tokenizer.name=true",
            "key 'tokenizer.name' expects str, got bool True; quote the value to pass it as a string.",
        ),
        ("model.layers=3", "key 'model.layers' expects list[int], got int 3; give a list like [a, b]."),
        ("train.extra=3", "key 'train.extra' expects dict[str, Any], got int 3; give a mapping like {k: v}."),
        (
            "tokenizer.path=[a]",
            "key 'tokenizer.path' expects str or null, got list ['a']; quote the value to pass it as a string.",
        ),
    ],
)
def test_wrong_type_is_reported_once_by_the_schema(override, message):
    assert schema_error(override) == f"invalid config from x.yaml: {message}"


def test_each_wrong_override_is_one_problem():
    msg = schema_error("train.iters=abc", "model.tied=1")
    assert msg.splitlines() == [
        "invalid config from x.yaml (2 problems):",
        "  - key 'model.tied' expects bool, got int 1; give true or false.",
        "  - key 'train.iters' expects int, got str 'abc'; give a whole number.",
    ]
