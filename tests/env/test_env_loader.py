"""Tests for loading env.toml: parsing, extends, typed profiles and lookups."""

from pathlib import Path

import pytest

from nemotron.env import (
    DockerSettings,
    EnvError,
    EnvFile,
    Profile,
    SlurmSettings,
    SSHSettings,
    WandbSettings,
    load_env_file,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env.toml"
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str) -> EnvFile:
    return load_env_file(write(tmp_path, text))


def test_none_gives_empty_env_file():
    env = load_env_file(None)
    assert env.path is None
    assert env.profiles == {}
    assert env.wandb is None
    assert env.artifacts_root is None


def test_missing_file_is_env_error(tmp_path):
    with pytest.raises(EnvError, match="file not found"):
        load_env_file(tmp_path / "absent.toml")


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, '[local]\nexecutor = "local"\nnodes = = 2\n')
    with pytest.raises(EnvError) as err:
        load_env_file(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "invalid TOML" in msg
    assert "line 3" in msg


def test_minimal_profiles_and_defaults(tmp_path):
    env = load(
        tmp_path,
        """
[local]
[cluster]
executor = "slurm"
""",
    )
    local = env.profile("local")
    assert local == Profile(name="local", executor="local", source=env.path)
    assert local.python == "python" and local.setup == () and local.job_dir is None
    assert local.slurm is None and local.docker is None
    slurm = env.profile("cluster").slurm
    assert slurm == SlurmSettings()
    assert slurm.nodes == 1 and slurm.ntasks_per_node == 1
    assert slurm.time == "01:00:00" and slurm.exclusive is False and slurm.ssh is None


def test_full_slurm_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    env = load(
        tmp_path,
        """
[c]
executor = "slurm"
account = "acct"
partition = "batch"
nodes = 2
ntasks_per_node = 8
gpus_per_node = 8
cpus_per_task = 16
mem = "0"
time = "04:00:00"
exclusive = true
qos = "normal"
reservation = "res"
constraint = "h100"
sbatch_flags = { "mail-type" = "END", requeue = true, "array" = 3 }
container_image = "/img.sqsh"
container_mounts = ["/lustre:/lustre"]
env_vars = { NCCL_DEBUG = "WARN", RETRIES = 3, FLAG = true }
setup = ["source /venv/bin/activate"]
python = "/venv/bin/python"
job_dir = "/lustre/jobs"
host = "login"
user = "me"
identity = "~/.ssh/id_ed25519"
port = 2222
""",
    )
    p = env.profile("c")
    assert p.executor == "slurm"
    assert p.env_vars == {"NCCL_DEBUG": "WARN", "RETRIES": "3", "FLAG": "true"}
    assert p.setup == ("source /venv/bin/activate",)
    assert p.python == "/venv/bin/python"
    assert p.job_dir == "/lustre/jobs"
    s = p.slurm
    assert (s.account, s.partition, s.nodes, s.ntasks_per_node) == ("acct", "batch", 2, 8)
    assert (s.gpus_per_node, s.cpus_per_task, s.mem, s.time) == (8, 16, "0", "04:00:00")
    assert (s.exclusive, s.qos, s.reservation, s.constraint) == (True, "normal", "res", "h100")
    assert s.sbatch_flags == {"mail-type": "END", "requeue": "", "array": "3"}
    assert s.container_image == "/img.sqsh" and s.container_mounts == ("/lustre:/lustre",)
    assert s.ssh == SSHSettings(
        host="login", user="me", identity=str(tmp_path / "home" / ".ssh" / "id_ed25519"), port=2222
    )


def test_ssh_port_defaults_to_22(tmp_path):
    env = load(tmp_path, '[c]\nexecutor = "slurm"\nhost = "login"\n')
    assert env.profile("c").slurm.ssh == SSHSettings(host="login", user=None, identity=None, port=22)


def test_docker_profile(tmp_path):
    env = load(
        tmp_path,
        """
[d]
executor = "docker"
container_image = "nvcr.io/x"
container_mounts = ["/data:/data"]
gpus_per_node = 0
network = "host"
shm_size = "16g"
""",
    )
    assert env.profile("d").docker == DockerSettings(
        container_image="nvcr.io/x", container_mounts=("/data:/data",), gpus_per_node=0, network="host", shm_size="16g"
    )


def test_mem_integer_becomes_string(tmp_path):
    env = load(tmp_path, '[c]\nexecutor = "slurm"\nmem = 64000\n')
    assert env.profile("c").slurm.mem == "64000"


def test_setup_accepts_single_string(tmp_path):
    env = load(tmp_path, '[l]\nsetup = "module load cuda"\n')
    assert env.profile("l").setup == ("module load cuda",)


def test_wandb_and_artifacts(tmp_path):
    env = load(
        tmp_path,
        """
[artifacts]
root = "/lustre/artifacts"
[wandb]
project = "nemotron"
entity = "team"
api_key = "wk_secret_value"
[local]
""",
    )
    assert env.artifacts_root == "/lustre/artifacts"
    assert env.wandb == WandbSettings(project="nemotron", entity="team", api_key="wk_secret_value")
    assert "wk_secret_value" not in repr(env.wandb)
    assert set(env.profiles) == {"local"}


def test_extends_deep_merge(tmp_path):
    env = load(
        tmp_path,
        """
[base]
executor = "slurm"
account = "a"
time = "04:00:00"
env_vars = { A = "1", B = "2" }
sbatch_flags = { "mail-type" = "END", "mail-user" = "me@x" }
container_mounts = ["/a:/a", "/b:/b"]
setup = ["one", "two"]

[child]
extends = "base"
time = "24:00:00"
env_vars = { B = "20", C = "3" }
sbatch_flags = { "mail-user" = false }
container_mounts = ["/c:/c"]

[grandchild]
extends = "child"
nodes = 4
""",
    )
    child = env.profile("child")
    assert child.executor == "slurm"
    assert child.slurm.account == "a"
    assert child.slurm.time == "24:00:00"
    assert child.env_vars == {"A": "1", "B": "20", "C": "3"}
    assert child.slurm.sbatch_flags == {"mail-type": "END"}
    assert child.slurm.container_mounts == ("/c:/c",)  # lists are replaced
    assert child.setup == ("one", "two")
    grand = env.profile("grandchild")
    assert grand.slurm.nodes == 4 and grand.slurm.time == "24:00:00"
    assert grand.env_vars == {"A": "1", "B": "20", "C": "3"}
    base = env.profile("base")
    assert base.env_vars == {"A": "1", "B": "2"}  # parent untouched
    assert base.slurm.time == "04:00:00"


def test_extends_order_independent(tmp_path):
    env = load(tmp_path, '[child]\nextends = "base"\nnodes = 2\n[base]\nexecutor = "slurm"\n')
    assert env.profile("child").slurm.nodes == 2


def test_extends_cycle(tmp_path):
    path = write(tmp_path, '[a]\nextends = "b"\n[b]\nextends = "a"\n')
    with pytest.raises(EnvError) as err:
        load_env_file(path)
    msg = str(err.value)
    assert "a -> b -> a" in msg
    assert str(path) in msg
    assert "cycle" in msg


def test_extends_self_cycle(tmp_path):
    with pytest.raises(EnvError, match="a -> a"):
        load(tmp_path, '[a]\nextends = "a"\n')


def test_extends_missing_parent(tmp_path):
    path = write(tmp_path, '[my-cluster]\nexecutor = "slurm"\n[long]\nextends = "my-clustr"\n')
    with pytest.raises(EnvError) as err:
        load_env_file(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "profile 'long'" in msg
    assert "'my-clustr'" in msg
    assert "Available profiles: my-cluster, long" in msg
    assert "Did you mean 'my-cluster'?" in msg
    assert err.value.profile == "long" and err.value.key == "extends"


def test_extends_reserved_table_is_not_a_profile(tmp_path):
    with pytest.raises(EnvError, match="reserved table"):
        load(tmp_path, '[wandb]\nproject = "p"\n[a]\nextends = "wandb"\n')


def test_profile_lookup_missing_lists_available(tmp_path):
    env = load(tmp_path, '[local]\n[my-cluster]\nexecutor = "slurm"\n')
    with pytest.raises(EnvError) as err:
        env.profile("my-clsuter")
    msg = str(err.value)
    assert str(env.path) in msg
    assert "Available profiles: local, my-cluster" in msg
    assert "Did you mean 'my-cluster'?" in msg


def test_profile_lookup_without_file(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    env = load_env_file(None)
    with pytest.raises(EnvError) as err:
        env.profile("local")
    msg = str(err.value)
    assert "no env.toml found; searched:" in msg
    assert "NEMOTRON_ENV_FILE" in msg
    assert str(tmp_path.resolve()) in msg


def test_default_local_profile():
    assert Profile.default_local() == Profile(name="local", executor="local")
