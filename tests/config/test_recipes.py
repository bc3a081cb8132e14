"""Tests for nemotron.config.recipes: finding configs by name or path and load_config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nemotron.config import ConfigError, LoadedConfig, list_configs, load_config, resolve_config_path, to_dataclass


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    d = tmp_path / "configs"
    d.mkdir()
    (d / "default.yaml").write_text("train: {iters: 100, lr: 0.1}\ntokenizer: {name: gpt2}\n")
    (d / "tiny.yaml").write_text("extends: default\ntrain: {iters: 5}\n")
    (d / "notes.txt").write_text("not a config\n")
    (d / "other.yml").write_text("a: 1\n")
    return d


def test_list_configs_sorted_yaml_only(config_dir):
    assert list_configs(config_dir) == ["default", "tiny"]


def test_list_configs_missing_dir(tmp_path):
    assert list_configs(tmp_path / "nope") == []


def test_resolve_by_name(config_dir):
    assert resolve_config_path("tiny", config_dir) == (config_dir / "tiny.yaml").resolve()


def test_resolve_by_name_with_suffix(config_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("tiny.yaml", config_dir) == (config_dir / "tiny.yaml").resolve()


def test_resolve_by_path(config_dir, tmp_path, monkeypatch):
    own = tmp_path / "mine" / "exp.yaml"
    own.parent.mkdir()
    own.write_text("a: 1\n")
    assert resolve_config_path(str(own), config_dir) == own.resolve()
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("mine/exp.yaml", config_dir) == own.resolve()


def test_resolve_yml_path_in_cwd(config_dir, tmp_path, monkeypatch):
    (tmp_path / "x.yml").write_text("a: 1\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("x.yml", config_dir) == (tmp_path / "x.yml").resolve()


def test_unknown_name_lists_builtins_and_suggests(config_dir):
    with pytest.raises(ConfigError) as info:
        resolve_config_path("tinyy", config_dir)
    assert str(info.value) == (
        f"unknown config 'tinyy' for {config_dir}; built-in configs: default, tiny; "
        "did you mean 'tiny'? Pass a name or a path to a YAML file."
    )


def test_unknown_name_without_suggestion(config_dir):
    with pytest.raises(ConfigError) as info:
        resolve_config_path("zzzz", config_dir)
    assert "did you mean" not in str(info.value)
    assert "built-in configs: default, tiny. Pass a name" in str(info.value)


def test_missing_path(config_dir, tmp_path):
    with pytest.raises(ConfigError) as info:
        resolve_config_path(str(tmp_path / "nope" / "x.yaml"), config_dir)
    assert "does not exist" in str(info.value)
    assert "default, tiny" in str(info.value)


def test_directory_is_not_a_config(config_dir):
    with pytest.raises(ConfigError, match="is a directory"):
        resolve_config_path(str(config_dir) + "/", config_dir)


def test_load_config_applies_chain_and_overrides(config_dir):
    loaded = load_config("tiny", config_dir, ["train.lr=0.5", "+extra.note=x", "~tokenizer.name"])
    assert isinstance(loaded, LoadedConfig)
    assert loaded.path == (config_dir / "tiny.yaml").resolve()
    assert loaded.chain == ((config_dir / "default.yaml").resolve(), loaded.path)
    assert loaded.overrides == ("train.lr=0.5", "+extra.note=x", "~tokenizer.name")
    assert OmegaConf.to_container(loaded.cfg) == {
        "train": {"iters": 5, "lr": 0.5},
        "tokenizer": {},
        "extra": {"note": "x"},
    }


def test_load_config_is_frozen(config_dir):
    loaded = load_config("default", config_dir)
    with pytest.raises(AttributeError):
        loaded.path = Path("x")  # type: ignore[misc]


def test_load_config_override_errors_are_strict(config_dir):
    with pytest.raises(ConfigError, match="did you mean 'train.iters'"):
        load_config("tiny", config_dir, ["train.itres=3"])


@dataclass(frozen=True)
class TrainSchema:
    iters: int
    lr: float


@dataclass(frozen=True)
class TokenizerSchema:
    name: str


@dataclass(frozen=True)
class RecipeSchema:
    train: TrainSchema
    tokenizer: TokenizerSchema


def test_load_config_does_not_judge_override_types(config_dir):
    loaded = load_config("tiny", config_dir, ["train.iters=abc", "tokenizer.name=true"])  # no error here
    assert OmegaConf.to_container(loaded.cfg) == {"train": {"iters": "abc", "lr": 0.1}, "tokenizer": {"name": True}}


def test_override_type_is_checked_once_by_the_schema(config_dir):
    loaded = load_config("tiny", config_dir, ["train.iters=abc"])
    with pytest.raises(ConfigError) as info:
        to_dataclass(loaded.cfg, RecipeSchema, source=str(loaded.path))
    assert str(info.value).splitlines() == [
        f"invalid config from {loaded.path}: key 'train.iters' expects int, got str 'abc'; give a whole number."
    ]


def test_override_parsing_still_reads_values_like_the_yaml(config_dir):
    loaded = load_config("tiny", config_dir, ["train.lr=1", "tokenizer.name=007"])
    built = to_dataclass(loaded.cfg, RecipeSchema, source=str(loaded.path))
    assert built.train.lr == 1.0 and isinstance(built.train.lr, float)
    assert built.tokenizer.name == "007"  # digits as typed, not 7


def test_import_does_not_pull_heavy_modules():
    import subprocess
    import sys

    code = (
        "import sys, nemotron.config; "
        "bad = [m for m in ('torch', 'transformers', 'megatron', 'nemo_run') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    result = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": src}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
