"""Tests that env.toml.example loads and documents every accepted key."""

import re
from pathlib import Path

import pytest

from nemotron.env import load_env_file
from nemotron.env.loader import load_env_text
from nemotron.env.schema import ARTIFACTS_KEYS, PROFILE_KEYS, WANDB_KEYS, keys_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "env.toml.example"
DOCS = ROOT / "docs" / "env-toml.md"
SETTING = re.compile(r"^(#\s)?([a-z_]+) = ")
HEADER = re.compile(r"^\[([^\]]+)\]\s*$")


def sections(text: str) -> dict[str, list[tuple[str, bool, int]]]:
    """Section name -> [(key, commented_out, line index)] for every `key = ...` line."""
    found: dict[str, list[tuple[str, bool, int]]] = {}
    current = None
    for index, line in enumerate(text.splitlines()):
        header = HEADER.match(line)
        if header:
            current = header.group(1)
            found[current] = []
            continue
        setting = SETTING.match(line)
        if setting and current is not None:
            found[current].append((setting.group(2), bool(setting.group(1)), index))
    return found


def test_example_loads():
    env = load_env_file(EXAMPLE)
    assert set(env.profiles) == {"local", "local-slurm", "my-cluster", "my-cluster-long", "workstation-docker"}
    assert env.wandb is not None and env.artifacts_root
    assert env.profile("local-slurm").slurm.account == "local"
    assert env.profile("local-slurm").slurm.partition == "debug"
    assert env.profile("local-slurm").slurm.time == "00:10:00"
    assert env.profile("local-slurm").slurm.ssh is None
    cluster = env.profile("my-cluster").slurm
    assert (cluster.nodes, cluster.gpus_per_node) == (2, 8)
    assert cluster.container_image and cluster.container_mounts and cluster.ssh is not None
    assert env.profile("my-cluster-long").slurm.time == "24:00:00"
    assert env.profile("workstation-docker").docker is not None


def test_example_with_every_commented_setting_enabled_loads():
    lines = EXAMPLE.read_text().splitlines()
    for entries in sections("\n".join(lines)).values():
        active = {key for key, commented, _ in entries if not commented}
        for key, commented, index in entries:
            if commented and key not in active:
                lines[index] = lines[index][2:]
    text = "\n".join(lines)
    assert text != EXAMPLE.read_text()
    env = load_env_text(text, EXAMPLE)
    assert env.wandb.api_key == "..."
    assert env.profile("my-cluster").slurm.reservation


def test_example_documents_every_key_with_a_comment():
    text = EXAMPLE.read_text()
    found = sections(text)
    documented = {key for entries in found.values() for key, _, _ in entries}
    assert set(PROFILE_KEYS) <= documented, set(PROFILE_KEYS) - documented
    assert {k for k, _, _ in found["wandb"]} == set(WANDB_KEYS)
    assert {k for k, _, _ in found["artifacts"]} == set(ARTIFACTS_KEYS)
    for key in [*PROFILE_KEYS, *WANDB_KEYS, *ARTIFACTS_KEYS]:
        assert re.search(rf"^# {key}: ", text, re.M), f"{key} has no '# {key}: ...' comment"


@pytest.mark.parametrize("section", ["local", "local-slurm", "my-cluster", "my-cluster-long", "workstation-docker"])
def test_example_keys_valid_for_their_executor(section):
    env = load_env_file(EXAMPLE)
    executor = env.profile(section).executor
    found = sections(EXAMPLE.read_text())[section]
    for key, _, _ in found:
        assert key in keys_for(executor), f"[{section}] {key} is not a {executor} key"


def test_docs_list_every_key():
    text = DOCS.read_text()
    for key in [*PROFILE_KEYS, *WANDB_KEYS, *ARTIFACTS_KEYS]:
        assert f"`{key}`" in text, f"docs/env-toml.md does not document {key}"
    assert "NEMOTRON_ENV_FILE" in text
