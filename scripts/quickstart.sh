#!/usr/bin/env bash
# Install nemotron into ./.venv (first run only) and run the tiny pipeline locally: data prep, then
# pretraining of a ~5M-parameter model (a couple of minutes on 2 cores). Extra arguments are passed to
# the pretrain command, e.g. `scripts/quickstart.sh train.train_iters=100`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv
nemotron="${NEMOTRON_VENV:-.venv}/bin/nemotron"
"$nemotron" nano3 data prep pretrain -c tiny
exec "$nemotron" nano3 pretrain -c tiny "$@"
