"""Tests for the plain-dict views of profiles and env files, and their secret handling."""

from pathlib import Path

from nemotron.env import load_env_file

TEXT = """
[wandb]
project = "p"
api_key = "wk_very_secret_key"

[c]
executor = "slurm"
env_vars = { HF_TOKEN = "hf_very_secret", NCCL_DEBUG = "WARN", WANDB_API_KEY = "wk_other_secret" }
host = "login"
"""


def load(tmp_path: Path):
    path = tmp_path / "env.toml"
    path.write_text(TEXT)
    return load_env_file(path)


def test_profile_to_dict_redacted_hides_secrets(tmp_path):
    env = load(tmp_path)
    data = env.profile("c").to_dict(redacted=True)
    assert data["env_vars"] == {"HF_TOKEN": "***", "NCCL_DEBUG": "WARN", "WANDB_API_KEY": "***"}
    assert "hf_very_secret" not in repr(data)
    assert "wk_other_secret" not in repr(data)
    assert data["executor"] == "slurm"
    assert data["slurm"]["ssh"]["host"] == "login"
    assert data["source"] == str(env.path)


def test_profile_to_dict_default_is_redacted(tmp_path):
    assert load(tmp_path).profile("c").to_dict()["env_vars"]["HF_TOKEN"] == "***"


def test_profile_to_dict_unredacted(tmp_path):
    data = load(tmp_path).profile("c").to_dict(redacted=False)
    assert data["env_vars"]["HF_TOKEN"] == "hf_very_secret"


def test_env_file_to_dict_never_shows_wandb_key(tmp_path):
    env = load(tmp_path)
    data = env.to_dict(redacted=True)
    assert data["wandb"]["api_key"] == "***"
    text = repr(data)
    for secret in ("wk_very_secret_key", "hf_very_secret", "wk_other_secret"):
        assert secret not in text
    assert "wk_very_secret_key" not in repr(env)
    assert "hf_very_secret" not in repr(env.profile("c"))


def test_public_and_secret_env_vars(tmp_path):
    p = load(tmp_path).profile("c")
    assert p.public_env_vars() == {"NCCL_DEBUG": "WARN"}
    assert p.secret_env_vars() == {"HF_TOKEN": "hf_very_secret", "WANDB_API_KEY": "wk_other_secret"}


def test_to_dict_is_plain_data(tmp_path):
    data = load(tmp_path).profile("c").to_dict()
    assert isinstance(data["setup"], list)
    assert isinstance(data["slurm"]["container_mounts"], list)
    assert data["docker"] is None
