#!/usr/bin/env bash
# Create .venv and install the bot with its dev tools. Idempotent: a second run
# only re-checks. Usage: scripts/setup.sh [--no-dev]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }

extras="[dev]"
[ "${1:-}" = "--no-dev" ] && extras=""

stamp=.venv/.installed
want="$(cat pyproject.toml | sha1sum | cut -c1-12)$extras"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi
echo "setup: creating .venv with $($PY --version) and installing lkbot$extras (about a minute the first time)..."
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --progress-bar off -e ".$extras"
echo "$want" > "$stamp"
echo "setup: done"
