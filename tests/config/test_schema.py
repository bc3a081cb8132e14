"""Tests for nemotron.config.schema.to_dataclass and resolved_container."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
from omegaconf import MISSING, OmegaConf

from nemotron.config import ConfigError, resolved_container, to_dataclass


class Precision(enum.Enum):
    BF16 = "bf16"
    FP32 = "fp32"


@dataclass(frozen=True)
class Optim:
    lr: float
    kind: Literal["adam", "sgd"] = "adam"
    betas: tuple[float, float] = (0.9, 0.95)


@dataclass(frozen=True)
class Model:
    name: str
    hidden: int = 64
    tied: bool = False
    layers: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Recipe:
    model: Model
    optim: Optim
    iters: int = 10
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    seed: Optional[int] = None  # noqa: UP045 -- typing.Union on purpose; `X | Y` (types.UnionType) below
    out: Path = Path("out")
    precision: Precision = Precision.BF16
    mode: Literal["pretrain", "sft"] = "pretrain"
    stages: list[Optim] = field(default_factory=list)
    run_id: str = MISSING


@dataclass(frozen=True)
class Checked:
    size: int = 1

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError("size must be positive")


@dataclass(frozen=True)
class Outer:
    checked: Checked = field(default_factory=Checked)


GOOD = {
    "model": {"name": "nano", "hidden": 128, "tied": True, "layers": [1, 2]},
    "optim": {"lr": 1, "kind": "sgd", "betas": [0.8, 0.9]},
    "iters": "${model.hidden}",
    "tags": {"team": "x", 7: "seven"},
    "extra": {"anything": [1, {"b": None}]},
    "seed": None,
    "out": "/tmp/run",
    "precision": "fp32",
    "mode": "sft",
    "stages": [{"lr": 0.5}, {"lr": 0.1, "kind": "adam"}],
    "run_id": "r1",
}


def build(data, schema=Recipe):
    return to_dataclass(OmegaConf.create(data), schema, source="recipe tiny.yaml")


def problems(data, schema=Recipe) -> str:
    with pytest.raises(ConfigError) as info:
        build(data, schema)
    msg = str(info.value)
    assert "recipe tiny.yaml" in msg
    return msg


def with_(**changes):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in GOOD.items()}
    for dotted, value in changes.items():
        parts = dotted.split("__")
        node = data
        for p in parts[:-1]:
            node = node[p]
        if value is dataclasses.MISSING:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value
    return data


def test_success_builds_nested_instances():
    r = build(GOOD)
    assert isinstance(r, Recipe) and isinstance(r.model, Model) and isinstance(r.optim, Optim)
    assert r.model == Model(name="nano", hidden=128, tied=True, layers=[1, 2])
    assert r.optim.lr == 1.0 and isinstance(r.optim.lr, float)
    assert r.optim.betas == (0.8, 0.9)
    assert r.iters == 128  # interpolation resolved
    assert r.tags == {"team": "x", "7": "seven"}
    assert r.extra == {"anything": [1, {"b": None}]}
    assert r.out == Path("/tmp/run")
    assert r.precision is Precision.FP32
    assert r.mode == "sft"
    assert r.stages == [Optim(lr=0.5), Optim(lr=0.1, kind="adam")]
    assert isinstance(r.model.layers, list)


def test_defaults_fill_absent_keys():
    r = build({"model": {"name": "n"}, "optim": {"lr": 0.1}, "run_id": "x"})
    assert r.iters == 10 and r.model.hidden == 64 and r.stages == [] and r.seed is None


def test_plain_mapping_is_accepted():
    r = to_dataclass({"model": {"name": "n"}, "optim": {"lr": 0.1}, "run_id": "x"}, Recipe, source="s")
    assert r.model.name == "n"


def test_unknown_top_level_key_with_suggestion():
    msg = problems(with_(iter=5))
    assert "unknown key 'iter'" in msg
    assert "did you mean 'iters'?" in msg


def test_unknown_nested_key_names_dotted_key():
    msg = problems(with_(model__hiden=3))
    assert "unknown key 'model.hiden'" in msg
    assert "did you mean 'model.hidden'?" in msg


def test_unknown_key_in_list_of_dataclasses():
    data = with_()
    data["stages"] = [{"lr": 0.1, "knd": "sgd"}]
    msg = problems(data)
    assert "unknown key 'stages[0].knd'" in msg
    assert "did you mean 'stages[0].kind'?" in msg


def test_wrong_type_int():
    assert "key 'model.hidden' expects int, got str 'big'; give a whole number." in problems(with_(model__hidden="big"))


def test_a_problem_at_a_key_an_override_set_names_the_override():
    data = with_(model__hidden="big", iters=True)
    with pytest.raises(ConfigError) as info:
        to_dataclass(OmegaConf.create(data), Recipe, source="tiny.yaml", overrides=("model.hidden=big", "lr=0.1"))
    message = str(info.value)
    assert (
        "key 'model.hidden' expects int, got str 'big'; give a whole number (set by the override 'model.hidden=big')."
        in message
    )
    assert "key 'iters' expects int, got bool True; give a whole number." in message  # from the YAML: no override named
    assert message.count("set by the override") == 1


def test_an_unknown_key_an_override_added_names_the_override():
    data = with_(foo={"bar": 1}, model__extra=2)
    data["optim"]["betas"] = "x"  # from the YAML: no override named
    overrides = ("+foo.bar=1", "+model.extra=2")
    with pytest.raises(ConfigError) as info:
        to_dataclass(OmegaConf.create(data), Recipe, source="tiny.yaml", overrides=overrides)
    message = str(info.value)
    assert "unknown key 'foo'." in message and "(set by the override '+foo.bar=1')." in message
    assert "unknown key 'model.extra'" in message and "(set by the override '+model.extra=2')." in message
    assert message.count("set by the override") == 2


def test_a_problem_under_a_mapping_an_override_added_names_the_override():
    data = with_(model__hidden="big", optim__lr="fast")
    overrides = ("model={name: m, hidden: big}", "optim.l=1")
    with pytest.raises(ConfigError) as info:
        to_dataclass(OmegaConf.create(data), Recipe, source="tiny.yaml", overrides=overrides)
    message = str(info.value)
    assert "key 'model.hidden' expects int" in message
    assert "(set by the override 'model={name: m, hidden: big}')" in message
    assert "key 'optim.lr' expects float" in message  # from the YAML: 'optim.l' is not a prefix of 'optim.lr'
    assert message.count("set by the override") == 1


def test_bool_is_not_int():
    assert "key 'iters' expects int, got bool True; give a whole number." in problems(with_(iters=True))


def test_wrong_type_bool():
    assert "key 'model.tied' expects bool, got int 1; give true or false." in problems(with_(model__tied=1))


def test_wrong_type_str():
    msg = problems(with_(model__name=[1]))
    assert "key 'model.name' expects str, got list [1]; quote the value to pass it as a string." in msg


def test_bool_for_str_says_quote_it():
    msg = problems(with_(model__name=True))
    assert "key 'model.name' expects str, got bool True; quote the value to pass it as a string." in msg


def test_wrong_type_float():
    assert "key 'optim.lr' expects float, got str 'fast'; give a number." in problems(with_(optim__lr="fast"))


def test_int_accepted_for_str():
    assert build(with_(model__name=123)).model.name == "123"


def test_wrong_type_list_item():
    assert "key 'model.layers[1]' expects int, got str 'x'" in problems(with_(model__layers=[1, "x"]))


def test_wrong_type_list():
    assert "key 'model.layers' expects list[int], got int 3; give a list like [a, b]." in problems(
        with_(model__layers=3)
    )


def test_wrong_type_nested_dataclass():
    assert "key 'optim' expects a mapping (Optim), got int 3" in problems(with_(optim=3))


def test_wrong_type_dict_value():
    assert "key 'tags.team' expects str, got list [1]" in problems(with_(tags={"team": [1]}))


def test_wrong_tuple_length():
    assert "key 'optim.betas' expects tuple[float, float] (2 items), got 3 items" in problems(
        with_(optim__betas=[1, 2, 3])
    )


def test_optional_rejects_other_types():
    assert "key 'seed' expects int or null, got str 'x'; give a whole number." in problems(with_(seed="x"))


def test_literal_value_must_be_a_choice():
    msg = problems(with_(mode="sfft"))
    assert "key 'mode' must be one of 'pretrain', 'sft'; got 'sfft'" in msg
    assert "did you mean 'sft'?" in msg


def test_enum_value_must_be_a_member():
    assert "key 'precision' must be one of 'BF16', 'FP32'; got 'fp8'" in problems(with_(precision="fp8"))


def test_missing_required_field():
    msg = problems(with_(model__name=dataclasses.MISSING))
    assert "missing required key 'model.name' (str)" in msg


def test_missing_marker_field_default():
    assert "missing required key 'run_id'" in problems(with_(run_id=dataclasses.MISSING))


def test_missing_marker_value_in_config():
    assert "key 'run_id' has no value ('???')" in problems(with_(run_id="???"))


def test_all_problems_reported_together():
    msg = problems(with_(iter=5, iters=3, model__hidden="x", mode="bad"))
    assert "(3 problems)" in msg
    assert "'iter'" in msg and "'model.hidden'" in msg and "'mode'" in msg


def test_interpolation_error_names_key():
    msg = problems(with_(iters="${model.nope}"))
    assert "cannot resolve key 'iters'" in msg
    assert "${model.nope}" in msg


def test_post_init_error_is_a_config_error():
    with pytest.raises(ConfigError, match="key 'checked' .*size must be positive"):
        to_dataclass({"checked": {"size": 0}}, Outer, source="s")


def test_schema_must_be_a_dataclass():
    with pytest.raises(TypeError):
        to_dataclass({}, dict, source="s")  # type: ignore[type-var]


def test_resolved_container_resolves():
    cfg = OmegaConf.create({"a": 1, "b": "${a}", "c": {"d": "x${a}"}})
    assert resolved_container(cfg) == {"a": 1, "b": 1, "c": {"d": "x1"}}


def test_resolved_container_error_names_nested_key():
    cfg = OmegaConf.create({"a": 1, "c": {"d": "${nope.x}"}})
    with pytest.raises(ConfigError) as info:
        resolved_container(cfg)
    assert "cannot resolve key 'c.d' = '${nope.x}'" in str(info.value)
    assert "c.d=VALUE" in str(info.value)


def test_resolved_container_unknown_resolver():
    cfg = OmegaConf.create({"a": "${no_such_resolver:1}"})
    with pytest.raises(ConfigError, match="cannot resolve key 'a'"):
        resolved_container(cfg)


@dataclass(frozen=True)
class Unions:
    either: int | str = 0
    # Optional[...] is typing.Union, a different runtime type than `X | None`: the schema handles both.
    maybe_model: Optional[Model] = None  # noqa: UP045
    maybe_mode: Optional[Literal["a", "b"]] = None  # noqa: UP045


def test_union_takes_first_fitting_member():
    assert to_dataclass({"either": "x"}, Unions, source="s").either == "x"
    assert to_dataclass({"either": 3}, Unions, source="s").either == 3
    with pytest.raises(ConfigError) as info:
        to_dataclass({"either": [1]}, Unions, source="s")
    assert str(info.value).endswith("key 'either' expects int or str, got list [1].")  # no single way to fix


def test_optional_nested_dataclass():
    assert to_dataclass({"maybe_model": None}, Unions, source="s").maybe_model is None
    u = to_dataclass({"maybe_model": {"name": "m"}}, Unions, source="s")
    assert u.maybe_model == Model(name="m")
    with pytest.raises(ConfigError, match="unknown key 'maybe_model.nam'"):
        to_dataclass({"maybe_model": {"nam": "m"}}, Unions, source="s")


def test_optional_literal():
    with pytest.raises(ConfigError, match="key 'maybe_mode' must be one of 'a', 'b'; got 'c'"):
        to_dataclass({"maybe_mode": "c"}, Unions, source="s")


def test_interpolation_to_missing_value_names_key():
    cfg = OmegaConf.create({"a": "???", "b": "${a}"})
    with pytest.raises(ConfigError, match="cannot resolve key 'b'"):
        resolved_container(cfg)
