#!/usr/bin/env bash
# Install nemotron into ./.venv (first run only) and run the tiny pipeline locally on the CPU: pretraining
# data prep, pretraining of a ~5M-parameter model, SFT data prep and supervised fine-tuning of that model, RL
# data prep and GRPO from the fine-tuned model, then the three models evaluated side by side (about 22
# minutes on 2 cores). Extra arguments are passed to the pretrain command, e.g.
# `scripts/quickstart.sh train.train_iters=100`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv
nemotron="${NEMOTRON_VENV:-.venv}/bin/nemotron"
"$nemotron" nano3 data prep pretrain -c tiny
"$nemotron" nano3 pretrain -c tiny "$@"
"$nemotron" nano3 data prep sft -c tiny
"$nemotron" nano3 sft -c tiny
"$nemotron" nano3 data prep rl -c tiny
"$nemotron" nano3 rl -c tiny
exec "$nemotron" nano3 eval -c tiny
