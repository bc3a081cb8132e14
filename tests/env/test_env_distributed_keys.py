"""The keys for distributed stages: `nproc_per_node` (local) and `requeue_signal_seconds` (slurm)."""

from pathlib import Path

import pytest

from nemotron.env import EnvError, load_env_file


def load(tmp_path: Path, text: str):
    path = tmp_path / "env.toml"
    path.write_text(text)
    return load_env_file(path)


def error_for(tmp_path: Path, text: str) -> EnvError:
    with pytest.raises(EnvError) as err:
        load(tmp_path, text)
    assert str(tmp_path / "env.toml") in str(err.value), "every error names the file"
    return err.value


def test_defaults(tmp_path):
    env = load(tmp_path, '[l]\n[s]\nexecutor = "slurm"\n')
    assert env.profile("l").nproc_per_node == 1
    assert env.profile("s").slurm.requeue_signal_seconds is None


def test_values_are_read_and_inherited(tmp_path):
    env = load(
        tmp_path,
        '[l]\nnproc_per_node = 2\n[l2]\nextends = "l"\n'
        '[s]\nexecutor = "slurm"\nrequeue_signal_seconds = 300\n[s2]\nextends = "s"\n',
    )
    assert env.profile("l").nproc_per_node == env.profile("l2").nproc_per_node == 2
    assert env.profile("s2").slurm.requeue_signal_seconds == 300
    assert env.profile("l").to_dict()["nproc_per_node"] == 2
    assert env.profile("s").to_dict()["slurm"]["requeue_signal_seconds"] == 300


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ('[l]\nnproc_per_node = "2"\n', "nproc_per_node", "nproc_per_node must be an integer, got string '2'"),
        ("[l]\nnproc_per_node = 0\n", "nproc_per_node", "nproc_per_node must be >= 1, got 0"),
        ("[l]\nnproc_per_node = true\n", "nproc_per_node", "nproc_per_node must be an integer, got boolean true"),
        (
            '[s]\nexecutor = "slurm"\nrequeue_signal_seconds = "120"\n',
            "requeue_signal_seconds",
            "requeue_signal_seconds must be an integer, got string '120'",
        ),
        (
            '[s]\nexecutor = "slurm"\nrequeue_signal_seconds = 0\n',
            "requeue_signal_seconds",
            "requeue_signal_seconds must be >= 1, got 0",
        ),
        (
            '[s]\nexecutor = "slurm"\nrequeue_signal_seconds = 70000\n',
            "requeue_signal_seconds",
            "requeue_signal_seconds must be <= 65535, got 70000",
        ),
        (
            '[s]\nexecutor = "slurm"\nrequeue_signal_seconds = 1.5\n',
            "requeue_signal_seconds",
            "requeue_signal_seconds must be an integer, got float 1.5",
        ),
    ],
)
def test_bad_values_name_file_profile_and_key(tmp_path, text, key, expected):
    err = error_for(tmp_path, text)
    assert expected in str(err)
    assert err.key == key and f"profile '{err.profile}'" in str(err)


def test_quoted_number_suggests_removing_quotes(tmp_path):
    assert "Remove the quotes: nproc_per_node = 2." in str(error_for(tmp_path, '[l]\nnproc_per_node = "2"\n'))


@pytest.mark.parametrize(
    "text, key, owner",
    [
        ('[s]\nexecutor = "slurm"\nnproc_per_node = 2\n', "nproc_per_node", "'local'"),
        ("[l]\nrequeue_signal_seconds = 60\n", "requeue_signal_seconds", "'slurm'"),
        ('[d]\nexecutor = "docker"\ncontainer_image = "i"\nnproc_per_node = 2\n', "nproc_per_node", "'local'"),
    ],
)
def test_key_of_other_executor(tmp_path, text, key, owner):
    err = error_for(tmp_path, text)
    assert err.key == key and f"only applies to executor {owner}" in str(err)


def test_typo_suggests_the_key(tmp_path):
    msg = str(error_for(tmp_path, "[l]\nnproc_per_nodes = 2\n"))
    assert "did you mean 'nproc_per_node'" in msg.lower()
