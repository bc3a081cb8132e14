# Shared by quickstart.sh and test.sh: create ./.venv and install nemotron into it (idempotent).
# TORCH_SPEC picks the torch build (default: the CPU build torch==2.13.0); NEMOTRON_VENV the folder.

ensure_venv() {
  local extras="${1:-}"
  local venv="${NEMOTRON_VENV:-.venv}"
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating virtual environment $venv"
    "$python" -m venv "$venv"
  fi
  local stamp="$venv/.nemotron-installed${extras:+-$extras}"
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    return 0
  fi
  echo "==> installing nemotron${extras:+[$extras]} into $venv (first time: a few minutes)"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # torch first, so that no dependency pulls a CUDA build onto a CPU machine.
  "$venv/bin/python" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
  "$venv/bin/python" -m pip install --quiet -e ".${extras:+[$extras]}"
  touch "$stamp"
}
