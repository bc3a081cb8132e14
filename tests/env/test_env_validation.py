"""Tests for env.toml validation errors: each names the file, profile and key and says the fix."""

from pathlib import Path

import pytest

from nemotron.env import EnvError, load_env_file


def error_for(tmp_path: Path, text: str) -> EnvError:
    path = tmp_path / "env.toml"
    path.write_text(text)
    with pytest.raises(EnvError) as err:
        load_env_file(path)
    assert str(path) in str(err.value), "every error names the file"
    return err.value


def test_unknown_key_suggests_closest(tmp_path):
    err = error_for(tmp_path, '[c]\nexecutor = "slurm"\npartiton = "batch"\n')
    msg = str(err)
    assert "profile 'c'" in msg
    assert "unknown key 'partiton'" in msg
    assert "did you mean 'partition'" in msg.lower()
    assert "Valid keys for executor 'slurm'" in msg
    assert "ntasks_per_node" in msg
    assert (err.profile, err.key) == ("c", "partiton")


def test_unknown_key_in_local_profile_lists_local_keys(tmp_path):
    msg = str(error_for(tmp_path, "[l]\npyhton = 'python3'\n"))
    assert "did you mean 'python'" in msg.lower()
    assert (
        "Valid keys for executor 'local': executor, extends, env_vars, setup, python, job_dir, nproc_per_node." in msg
    )


def test_every_profile_is_validated(tmp_path):
    err = error_for(tmp_path, '[good]\n[unused]\nexecutor = "slurm"\nnodez = 2\n')
    assert err.profile == "unused" and err.key == "nodez"


def test_key_of_other_executor(tmp_path):
    msg = str(error_for(tmp_path, '[l]\nexecutor = "local"\npartition = "batch"\n'))
    assert "only applies to executor 'slurm'" in msg
    assert 'set executor = "slurm"' in msg


def test_inherited_bad_key_mentions_parent(tmp_path):
    msg = str(
        error_for(
            tmp_path, '[base]\nexecutor = "slurm"\naccount = "a"\n[child]\nextends = "base"\nexecutor = "local"\n'
        )
    )
    assert "profile 'child'" in msg
    assert "inherited from profile 'base'" in msg


@pytest.mark.parametrize(
    "line, expected",
    [
        ('nodes = "2"', "nodes must be an integer, got string '2'"),
        ("nodes = true", "nodes must be an integer, got boolean true"),
        ("nodes = 1.5", "nodes must be an integer, got float 1.5"),
        ('exclusive = "yes"', "exclusive must be a boolean"),
        ("account = 42", "account must be a string, got integer 42"),
        ('container_mounts = "/a:/a"', "container_mounts must be an array of strings, got string '/a:/a'"),
        ("container_mounts = [1]", "container_mounts must be an array of strings"),
        ('sbatch_flags = "x"', "sbatch_flags must be a table"),
        ("env_vars = { X = 1.5 }", "env_vars.X must be a string, integer or boolean, got float 1.5"),
        ("env_vars = { X = [1] }", "env_vars.X must be a string, integer or boolean"),
        ("mem = true", "mem must be a string or an integer"),
        ("python = ''", "python must not be empty"),
    ],
)
def test_wrong_types_name_expected_type(tmp_path, line, expected):
    err = error_for(tmp_path, f'[c]\nexecutor = "slurm"\n{line}\n')
    assert expected in str(err)
    assert err.profile == "c"
    assert err.key == line.split(" ")[0]


def test_quoted_integer_suggests_removing_quotes(tmp_path):
    assert "Remove the quotes: nodes = 2" in str(error_for(tmp_path, '[c]\nexecutor = "slurm"\nnodes = "2"\n'))


@pytest.mark.parametrize(
    "line, expected",
    [
        ("nodes = 0", "nodes must be >= 1, got 0"),
        ("ntasks_per_node = 0", "ntasks_per_node must be >= 1"),
        ("cpus_per_task = -1", "cpus_per_task must be >= 1"),
        ("gpus_per_node = -1", "gpus_per_node must be >= 0"),
        ('host = "h"\nport = 0', "port must be >= 1"),
        ('host = "h"\nport = 70000', "port must be <= 65535"),
    ],
)
def test_count_limits(tmp_path, line, expected):
    assert expected in str(error_for(tmp_path, f'[c]\nexecutor = "slurm"\n{line}\n'))


def test_gpus_per_node_zero_is_fine(tmp_path):
    path = tmp_path / "env.toml"
    path.write_text('[c]\nexecutor = "slurm"\ngpus_per_node = 0\n')
    assert load_env_file(path).profile("c").slurm.gpus_per_node == 0


@pytest.mark.parametrize("value", ["30", "30:00", "04:00:00", "100:00:00", "1-12", "1-12:30", "2-00:00:00", "0"])
def test_valid_times(tmp_path, value):
    path = tmp_path / "env.toml"
    path.write_text(f'[c]\nexecutor = "slurm"\ntime = "{value}"\n')
    assert load_env_file(path).profile("c").slurm.time == value


@pytest.mark.parametrize("value", ["4h", "04:00:00:00", "1-25", "1-12:60", "10:61", "01:60:00", "", "-1", "1-", "a:b"])
def test_bad_time_format(tmp_path, value):
    err = error_for(tmp_path, f'[c]\nexecutor = "slurm"\ntime = "{value}"\n')
    msg = str(err)
    assert err.key == "time"
    assert "time must" in msg
    if value:
        assert "D-HH:MM:SS" in msg and "04:00:00" in msg


def test_unknown_executor_suggests(tmp_path):
    err = error_for(tmp_path, '[c]\nexecutor = "slurmm"\n')
    assert "executor must be one of local, slurm, docker, got string 'slurmm'" in str(err)
    assert "Did you mean 'slurm'?" in str(err)


def test_docker_requires_image(tmp_path):
    err = error_for(tmp_path, '[d]\nexecutor = "docker"\ngpus_per_node = 1\n')
    assert "needs container_image" in str(err)
    assert (err.profile, err.key) == ("d", "container_image")


@pytest.mark.parametrize("key, value", [("user", '"me"'), ("identity", '"~/.ssh/id"'), ("port", "22")])
def test_ssh_keys_need_host(tmp_path, key, value):
    err = error_for(tmp_path, f'[c]\nexecutor = "slurm"\n{key} = {value}\n')
    assert f"{key} is set" in str(err) and "host" in str(err)
    assert err.key == key


def test_sbatch_flag_with_dashes(tmp_path):
    msg = str(error_for(tmp_path, '[c]\nexecutor = "slurm"\nsbatch_flags = { "--mail-type" = "END" }\n'))
    assert 'without leading dashes: "mail-type"' in msg


def test_sbatch_flag_with_own_key(tmp_path):
    msg = str(error_for(tmp_path, '[c]\nexecutor = "slurm"\nsbatch_flags = { partition = "x" }\n'))
    assert "Set partition = ..." in msg


def test_bad_env_var_name(tmp_path):
    msg = str(error_for(tmp_path, '[c]\nenv_vars = { "1BAD" = "x" }\n'))
    assert "'1BAD' is not a valid environment variable name" in msg


def test_top_level_scalar(tmp_path):
    msg = str(error_for(tmp_path, 'executor = "slurm"\n[c]\n'))
    assert "top-level key 'executor'" in msg and "[local]" in msg


def test_extends_must_be_string(tmp_path):
    assert "extends must be the name of another profile" in str(error_for(tmp_path, "[a]\nextends = 1\n"))


def test_wandb_unknown_key(tmp_path):
    msg = str(error_for(tmp_path, '[wandb]\nprojct = "p"\n'))
    assert "[wandb]: unknown key 'projct'" in msg and "Did you mean 'project'?" in msg


def test_wandb_needs_project(tmp_path):
    assert "[wandb] needs a project" in str(error_for(tmp_path, '[wandb]\nentity = "e"\n'))


def test_wandb_wrong_type(tmp_path):
    assert "api_key must be a string" in str(error_for(tmp_path, '[wandb]\nproject = "p"\napi_key = 5\n'))


def test_artifacts_unknown_key(tmp_path):
    msg = str(error_for(tmp_path, '[artifacts]\nrot = "/x"\n'))
    assert "Did you mean 'root'?" in msg
