"""Tests for env.toml discovery: $NEMOTRON_ENV_FILE, walk-up, then the XDG config dir."""

from pathlib import Path

import pytest

from nemotron.env import EnvError, find_env_file
from nemotron.env.discovery import describe_search


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("NEMOTRON_ENV_FILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def _no_env_toml_above(path: Path) -> bool:
    return not any((p / "env.toml").is_file() for p in (path, *path.parents))


def test_env_var_wins_over_walk_up(monkeypatch, tmp_path):
    (tmp_path / "env.toml").write_text("[local]\n")
    explicit = tmp_path / "elsewhere" / "custom.toml"
    explicit.parent.mkdir()
    explicit.write_text("[other]\n")
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(explicit))
    assert find_env_file(tmp_path) == explicit


def test_env_var_relative_to_cwd(monkeypatch, tmp_path):
    (tmp_path / "my.toml").write_text("")
    monkeypatch.setenv("NEMOTRON_ENV_FILE", "my.toml")
    assert find_env_file(tmp_path) == tmp_path.resolve() / "my.toml"


def test_env_var_missing_file_names_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(EnvError) as err:
        find_env_file(tmp_path)
    assert "NEMOTRON_ENV_FILE" in str(err.value)
    assert "nope.toml" in str(err.value)


def test_env_var_pointing_at_directory_is_error(monkeypatch, tmp_path):
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(tmp_path))
    with pytest.raises(EnvError, match="is a directory"):
        find_env_file(tmp_path)


def test_walks_up_to_nearest(tmp_path):
    outer = tmp_path / "env.toml"
    outer.write_text("[a]\n")
    deep = tmp_path / "x" / "y" / "z"
    deep.mkdir(parents=True)
    assert find_env_file(deep) == outer.resolve()
    inner = tmp_path / "x" / "env.toml"
    inner.write_text("[b]\n")
    assert find_env_file(deep) == inner.resolve()


def test_walk_up_beats_user_config(tmp_path):
    cfg = tmp_path / "xdg" / "nemotron" / "env.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "env.toml").write_text("")
    assert find_env_file(project) == (project / "env.toml").resolve()


def test_falls_back_to_xdg_config(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    if not _no_env_toml_above(work):
        pytest.skip("an env.toml exists above the temporary directory")
    assert find_env_file(work) is None
    cfg = tmp_path / "xdg" / "nemotron" / "env.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("")
    assert find_env_file(work) == cfg


def test_falls_back_to_home_config_without_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    work = tmp_path / "work"
    work.mkdir()
    if not _no_env_toml_above(work):
        pytest.skip("an env.toml exists above the temporary directory")
    cfg = tmp_path / "home" / ".config" / "nemotron" / "env.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("")
    assert find_env_file(work) == cfg


def test_defaults_to_process_cwd(monkeypatch, tmp_path):
    (tmp_path / "env.toml").write_text("")
    monkeypatch.chdir(tmp_path)
    assert find_env_file() == (tmp_path / "env.toml").resolve()


def test_describe_search_lists_all_places(tmp_path):
    text = " ".join(describe_search(tmp_path))
    assert "NEMOTRON_ENV_FILE (not set)" in text
    assert str(tmp_path.resolve()) in text
    assert str(tmp_path / "xdg" / "nemotron" / "env.toml") in text
