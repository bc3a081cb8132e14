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
  else
    echo "warning: not root and no passwordless sudo: Slurm tests will be skipped" >&2
  fi
fi
exec "${NEMOTRON_VENV:-.venv}/bin/python" -m pytest "$@"
