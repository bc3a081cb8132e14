#!/usr/bin/env bash
# Install nemotron into ./.venv (first run only) and run the tiny pipeline locally on the CPU as one command,
# `nemotron nano3 pipe -c tiny`: pretraining data prep, pretraining of a ~5M-parameter model, SFT data prep and
# supervised fine-tuning of that model, RL data prep and GRPO from the fine-tuned model, then the three models
# evaluated side by side (about 15 minutes on 2 cores, install included), ending with a table of each stage's time and result.
# A second run skips every stage that is done. Extra arguments go to the pipe, e.g.
# `scripts/quickstart.sh pretrain.train.train_iters=100` (overrides start with the stage's name).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv
exec "${NEMOTRON_VENV:-.venv}/bin/nemotron" nano3 pipe -c tiny "$@"
