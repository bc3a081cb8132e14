"""Tests for nemotron.config.yaml_loader: extends chains, merging and YAML errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from nemotron.config import ConfigError, load_yaml_chain


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_single_file_without_extends(tmp_path):
    f = write(tmp_path / "a.yaml", "x: 1\nlr: 1e-4\n")
    cfg, chain = load_yaml_chain(f)
    assert OmegaConf.to_container(cfg) == {"x": 1, "lr": 1e-4}
    assert chain == (f.resolve(),)


def test_three_file_chain_deep_merges_base_first(tmp_path):
    base = write(
        tmp_path / "base.yaml",
        "model: {hidden: 64, layers: 2, act: gelu}\ntrain: {iters: 100, lr: 0.1}\ndata: [a, b, c]\n",
    )
    mid = write(
        tmp_path / "mid.yaml",
        "extends: base\nmodel: {layers: 4}\ntrain: {iters: 10}\nmid_only: true\n",
    )
    top = write(
        tmp_path / "sub" / "top.yaml",
        "extends: ../mid.yaml\nmodel: {act: relu}\ndata: [z]\nname: ${model.act}\n",
    )
    cfg, chain = load_yaml_chain(top)
    assert chain == (base.resolve(), mid.resolve(), top.resolve())
    assert OmegaConf.to_container(cfg, resolve=False) == {
        "model": {"hidden": 64, "layers": 4, "act": "relu"},
        "train": {"iters": 10, "lr": 0.1},
        "data": ["z"],  # lists are replaced, not merged
        "mid_only": True,
        "name": "${model.act}",  # interpolations stay unresolved
    }
    assert "extends" not in cfg


def test_extends_accepts_name_with_suffix(tmp_path):
    write(tmp_path / "default.yaml", "a: 1\nb: 1\n")
    child = write(tmp_path / "child.yaml", "extends: default.yaml\nb: 2\n")
    cfg, chain = load_yaml_chain(child)
    assert OmegaConf.to_container(cfg) == {"a": 1, "b": 2}
    assert len(chain) == 2


def test_extends_is_relative_to_the_file_not_cwd(tmp_path, monkeypatch):
    write(tmp_path / "cfgs" / "default.yaml", "a: 1\n")
    write(tmp_path / "cfgs" / "child.yaml", "extends: default\n")
    write(tmp_path / "default.yaml", "a: wrong\n")
    monkeypatch.chdir(tmp_path)
    cfg, _ = load_yaml_chain(Path("cfgs/child.yaml"))
    assert cfg.a == 1


def test_cycle_is_reported_with_the_files(tmp_path):
    write(tmp_path / "a.yaml", "extends: b\n")
    write(tmp_path / "b.yaml", "extends: c\n")
    write(tmp_path / "c.yaml", "extends: a\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_chain(tmp_path / "a.yaml")
    msg = str(info.value)
    assert "cycle" in msg
    assert "a.yaml -> " in msg and "b.yaml -> " in msg and "c.yaml -> " in msg
    assert msg.count("a.yaml") == 2


def test_self_extends_is_a_cycle(tmp_path):
    write(tmp_path / "a.yaml", "extends: a\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_yaml_chain(tmp_path / "a.yaml")


def test_missing_parent_names_file_and_key(tmp_path):
    child = write(tmp_path / "child.yaml", "extends: nosuch\nx: 1\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_chain(child)
    msg = str(info.value)
    assert str(child.resolve()) in msg
    assert "'extends: nosuch'" in msg
    assert "nosuch.yaml" in msg


def test_extends_must_be_a_string(tmp_path):
    child = write(tmp_path / "child.yaml", "extends: [a, b]\n")
    with pytest.raises(ConfigError, match="key 'extends' must be the name"):
        load_yaml_chain(child)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = write(tmp_path / "bad.yaml", "a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_chain(bad)
    msg = str(info.value)
    assert str(bad.resolve()) in msg
    assert "line 3" in msg


def test_yaml_syntax_error_in_parent_names_parent(tmp_path):
    parent = write(tmp_path / "parent.yaml", "a:\n\tb: 1\n")
    child = write(tmp_path / "child.yaml", "extends: parent\n")
    with pytest.raises(ConfigError) as info:
        load_yaml_chain(child)
    assert str(parent.resolve()) in str(info.value)
    assert "line 2" in str(info.value)


def test_duplicate_keys_rejected(tmp_path):
    f = write(tmp_path / "dup.yaml", "a: 1\na: 2\n")
    with pytest.raises(ConfigError, match="duplicate key"):
        load_yaml_chain(f)


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "hello\n", "3\n"])
def test_top_level_must_be_a_mapping(tmp_path, text):
    f = write(tmp_path / "x.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_yaml_chain(f)
    assert "must hold a mapping" in str(info.value)
    assert str(f.resolve()) in str(info.value)


def test_empty_file_is_empty_config(tmp_path):
    cfg, _ = load_yaml_chain(write(tmp_path / "e.yaml", ""))
    assert OmegaConf.to_container(cfg) == {}


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml_chain(tmp_path / "nope.yaml")
