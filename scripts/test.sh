#!/usr/bin/env bash
# Install nemotron with test dependencies into ./.venv, start the local Slurm cluster
# (scripts/slurm-cluster.sh: needs root or sudo), and run the whole test suite.
# Arguments go to pytest, e.g. `scripts/test.sh -m "not slurm"` for the fast tier only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv test
if [ "${NEMOTRON_SKIP_SLURM:-0}" != "1" ]; then
  if [ "$(id -u)" = "0" ] || sudo -n true 2>/dev/null; then
    bash scripts/slurm-cluster.sh start
    # The SSH submission tests start their own sshd on 127.0.0.1 in front of this cluster.
    if [ ! -x /usr/sbin/sshd ] || ! command -v rsync >/dev/null; then
      SUDO=""; [ "$(id -u)" = "0" ] || SUDO="sudo -n"
      $SUDO apt-get update -qq >/dev/null
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client rsync >/dev/null
    fi
  else
    echo "warning: not root and no passwordless sudo: Slurm and SSH tests will be skipped" >&2
  fi
fi
exec "${NEMOTRON_VENV:-.venv}/bin/python" -m pytest "$@"
