"""Tests for secret detection and redaction."""

import pytest

from nemotron.env import is_secret_key, redact, redact_text, secrets_from_environment


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "WANDB_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "NGC_API_KEY",
        "GITHUB_TOKEN",
        "hf-token",
        "db.password",
        "DB_PASSWD",
        "MYSQL_PWD",
        "client_secret",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "credential",
        "apiKey",
        "wandbApiKey",
        "HFToken",
        "APIKEY",
        "MYTOKEN",
        "adminpassword",
        "token",
        "KEY",
    ],
)
def test_secret_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    [
        "KEYBOARD_LAYOUT",
        "MONKEY",
        "HOCKEY_TEAM",
        "TOKENIZERS_PARALLELISM",
        "tokenizer",
        "MAX_TOKENS",
        "NCCL_DEBUG",
        "CUDA_VISIBLE_DEVICES",
        "project",
        "entity",
        "container_image",
        "sbatch_flags",
        "identity",
        "PATH",
        "keycloak_url",
        "",
    ],
)
def test_benign_names(name):
    assert not is_secret_key(name)


def test_redact_nested_and_copies():
    data = {
        "wandb": {"project": "p", "api_key": "abcd1234"},
        "env_vars": {"HF_TOKEN": "hf_xyz", "NCCL_DEBUG": "WARN"},
        "list": [{"password": "pw"}, ("x", {"MY_SECRET": 1})],
        "token": None,
    }
    out = redact(data)
    assert out["wandb"] == {"project": "p", "api_key": "***"}
    assert out["env_vars"] == {"HF_TOKEN": "***", "NCCL_DEBUG": "WARN"}
    assert out["list"][0] == {"password": "***"}
    assert out["list"][1] == ("x", {"MY_SECRET": "***"})
    assert out["token"] is None
    # the input is untouched
    assert data["wandb"]["api_key"] == "abcd1234"
    assert data["env_vars"]["HF_TOKEN"] == "hf_xyz"


def test_redact_whole_value_under_secret_key():
    assert redact({"credentials": {"user": "u", "x": "y"}}) == {"credentials": "***"}


def test_redact_text_replaces_every_occurrence():
    text = "export HF_TOKEN=hf_abc123\necho hf_abc123; key=wk_9999 pw=abc"
    out = redact_text(text, ["hf_abc123", "wk_9999", "abc", "", None])
    assert "hf_abc123" not in out
    assert "wk_9999" not in out
    assert out.count("***") == 3
    assert "pw=abc" in out  # too short to redact safely


def test_redact_text_longest_first():
    assert redact_text("secretvalue-long", ["secretvalue", "secretvalue-long"]) == "***"


def test_secrets_from_environment():
    env = {"WANDB_API_KEY": "w", "HF_TOKEN": "h", "NGC_API_KEY": "", "PATH": "/bin", "MY_TOKEN": "m"}
    assert secrets_from_environment(env) == {"WANDB_API_KEY": "w", "HF_TOKEN": "h"}


def test_secrets_from_environment_defaults_to_os_environ(monkeypatch):
    for name in ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "NGC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "tok")
    assert secrets_from_environment() == {"HUGGING_FACE_HUB_TOKEN": "tok"}
