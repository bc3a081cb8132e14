#!/usr/bin/env bash
# Install nemotron into ./.venv (first run only) and run the tiny pretraining data prep locally.
# Extra arguments are passed to the stage command, e.g. `scripts/quickstart.sh split.seed=7`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv
exec "${NEMOTRON_VENV:-.venv}/bin/nemotron" nano3 data prep pretrain -c tiny "$@"
