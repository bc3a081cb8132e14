#!/usr/bin/env bash
# Install nemotron into ./.venv (first run only) and run the tiny pipeline locally on the CPU: pretraining
# data prep, pretraining of a ~5M-parameter model, SFT data prep, then supervised fine-tuning of that model
# (several minutes on 2 cores). Extra arguments are passed to the pretrain command, e.g.
# `scripts/quickstart.sh train.train_iters=100`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv
nemotron="${NEMOTRON_VENV:-.venv}/bin/nemotron"
"$nemotron" nano3 data prep pretrain -c tiny
"$nemotron" nano3 pretrain -c tiny "$@"
"$nemotron" nano3 data prep sft -c tiny
exec "$nemotron" nano3 sft -c tiny
