#!/usr/bin/env bash
# Install nemotron with test dependencies into ./.venv and run the static checks configured in
# pyproject.toml: ruff lint, ruff format (check only) and mypy. Exit non-zero when any of them fails.
# `scripts/lint.sh --fix` first applies ruff's safe fixes and formats the code, then checks.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/venv.sh
ensure_venv test
bin="${NEMOTRON_VENV:-.venv}/bin"
if [ "${1:-}" = "--fix" ]; then
  "$bin/ruff" check --fix --exit-zero --quiet .
  "$bin/ruff" format .
fi
status=0
echo "==> ruff check"
"$bin/ruff" check . || status=1
echo "==> ruff format --check"
"$bin/ruff" format --check --output-format concise . || status=1  # `ruff format --diff` shows the changes
echo "==> mypy"
"$bin/mypy" || status=1
exit "$status"
