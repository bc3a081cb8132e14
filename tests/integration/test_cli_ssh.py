"""Slurm submission over SSH, through NeMo-Run's SSHTunnel, to a login node on this machine.

The "remote" login node is a real OpenSSH server started by the fixture on 127.0.0.1 (a free
port) in front of the local Slurm cluster; nothing leaves the machine. The fixture adds the
server's host key to ~/.ssh/known_hosts (NeMo-Run's rsync uses the system ssh, which checks it)
and removes that line afterwards.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

PREP = ("nano3", "data", "prep", "pretrain")
SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def login_node(tmp_path):
    """A real sshd on 127.0.0.1 accepting a fresh key; yields (port, private key path)."""
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None or shutil.which("rsync") is None:
        if os.environ.get("NEMOTRON_REQUIRE_SSH") == "1":
            pytest.fail("openssh-server, openssh-client and rsync are required (scripts/test.sh installs them)")
        pytest.skip("openssh-server/rsync not installed")
    keys = tmp_path / "ssh"
    keys.mkdir()
    for name in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "user.pub").read_text())
    os.chmod(keys / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    port = _free_port()
    server = subprocess.Popen(
        [
            SSHD,
            "-D",
            "-e",
            "-p",
            str(port),
            "-o",
            "ListenAddress=127.0.0.1",
            "-h",
            str(keys / "host"),
            "-o",
            f"AuthorizedKeysFile={keys / 'authorized_keys'}",
            "-o",
            "StrictModes=no",
            "-o",
            "PasswordAuthentication=no",
            "-o",
            f"PidFile={keys / 'sshd.pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(keys / "sshd.log", "w"),
    )
    known_hosts = Path.home() / ".ssh" / "known_hosts"
    host_line = (
        f"[127.0.0.1]:{port} {(keys / 'host.pub').read_text().split(' ')[0]} "
        f"{(keys / 'host.pub').read_text().split(' ')[1]}"
    )
    known_hosts.parent.mkdir(mode=0o700, exist_ok=True)
    with open(known_hosts, "a") as handle:
        handle.write(host_line + "\n")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [
                    "ssh",
                    "-i",
                    str(keys / "user"),
                    "-p",
                    str(port),
                    "-o",
                    "BatchMode=yes",
                    f"{getpass.getuser()}@127.0.0.1",
                    "true",
                ],
                capture_output=True,
                timeout=20,
            )
            if probe.returncode == 0:
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"sshd did not accept the key: {(keys / 'sshd.log').read_text()[-1000:]}")
        yield port, keys / "user"
    finally:
        server.terminate()
        server.wait(timeout=10)
        lines = known_hosts.read_text().splitlines()
        known_hosts.write_text("".join(line + "\n" for line in lines if line != host_line))


@pytest.fixture
def ssh_profile(slurm_cluster, add_env_profile, tmp_path, login_node) -> Path:
    """[ssh-slurm]: local-slurm reached over SSH through the login node; returns the cluster's job_dir."""
    port, key = login_node
    remote = tmp_path / "cluster-storage" / "jobs"
    add_env_profile(
        "ssh-slurm",
        host="127.0.0.1",
        port=port,
        user=getpass.getuser(),
        identity=key,
        job_dir=remote,
        env_vars={"HF_TOKEN": "hf_ssh_secret_987"},
    )
    return remote


def test_run_over_ssh_submits_streams_and_publishes(run_cli, nemotron_home, ssh_profile):
    done = run_cli(*PREP, "-c", "tiny", "array_tasks=0", "--run", "ssh-slurm", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published nano3-pretrain-data-tiny:v1" in done.stdout  # log streamed back over SSH
    assert "hf_ssh_secret_987" not in done.stdout + done.stderr
    name = done.stdout.split("submitted ", 1)[1].split(" ", 1)[0]

    job_dir = ssh_profile / name  # the job files were copied to the cluster's job_dir
    assert (job_dir / "config.yaml").is_file() and (job_dir / "job.yaml").is_file()
    assert stat.S_IMODE((job_dir / "secrets.env").stat().st_mode) == 0o600
    assert "hf_ssh_secret_987" not in (job_dir / "job.yaml").read_text()

    record = json.loads((nemotron_home / "jobs" / name / "record.json").read_text())
    assert record["details"]["host"] == "127.0.0.1" and record["job_dir"] == str(job_dir)
    status = run_cli("jobs", "status", name, timeout=120)  # state asked over SSH (sacct on the login node)
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip().split("\t")[2] == "COMPLETED"
    logs = run_cli("jobs", "logs", name, timeout=120)
    assert "published nano3-pretrain-data-tiny:v1" in logs.stdout


def test_ssh_host_key_mismatch_is_a_clear_submission_error(run_cli, nemotron_home, ssh_profile, login_node):
    port, _ = login_node
    known_hosts = Path.home() / ".ssh" / "known_hosts"
    original = known_hosts.read_text()
    kept = [line for line in original.splitlines() if not line.startswith(f"[127.0.0.1]:{port} ")]
    known_hosts.write_text("".join(line + "\n" for line in kept))
    try:
        done = run_cli(*PREP, "-c", "tiny", "array_tasks=0", "--batch", "ssh-slurm", timeout=300)
    finally:
        known_hosts.write_text(original)
    assert done.returncode != 0
    assert "submission to Slurm failed" in done.stderr and "Host key verification failed" in done.stderr
