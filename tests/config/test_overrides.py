"""Tests for nemotron.config.overrides: every Hydra override form and its errors."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from nemotron.config import ConfigError, apply_overrides


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


def test_force_add_still_checks_type_of_existing_value():
    assert "expects int" in error("++train.iters=abc")


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


def test_wrong_type_int_gets_str():
    msg = error("train.iters=abc")
    assert "override 'train.iters=abc': key 'train.iters' expects int (current value 100), got str 'abc'" in msg


def test_wrong_type_int_gets_float():
    assert "expects int (current value 100), got float 1.5" in error("train.iters=1.5")


def test_wrong_type_bool_gets_int():
    assert "key 'model.tied' expects bool (current value True), got int 1" in error("model.tied=1")


def test_wrong_type_int_gets_bool():
    assert "expects int" in error("train.iters=true")


def test_wrong_type_str_gets_bool_suggests_quoting():
    msg = error("model.name=true")
    assert "expects str" in msg
    assert "model.name='true'" in msg


def test_wrong_type_list_gets_scalar():
    assert "key 'model.layers' expects list (current value [1, 2]), got int 3" in error("model.layers=3")


def test_wrong_type_dict_gets_scalar():
    assert "key 'train.extra' expects dict" in error("train.extra=3")


def test_wrong_type_str_gets_list():
    assert "expects str" in error("model.name=[1,2]")


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
