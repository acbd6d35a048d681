#!/usr/bin/env bash
# The web side: the TypeScript client's npm packages (clients/js, `npm ci`), its build
# (types generated from docs/protocol.schema.json, tsc, esbuild bundles into web/dist
# for the chat page `bot up` serves), and with --browser Debian's chromium for the
# browser tests. Idempotent: rebuilds only when a source changed.
# Usage: scripts/install-web.sh [--browser]
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install-web: unknown option $arg" >&2; exit 2 ;;
  esac
done

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: installing Node.js and npm (Debian packages)..."
  apt_install nodejs npm
fi
if [ "$browser" = 1 ] && [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "setup: installing Chromium for the browser tests (Debian package, a few minutes)..."
  apt_install chromium
fi

js=clients/js
stamp=$js/node_modules/.lkbot-build
want=$(cat $js/package.json $js/package-lock.json $js/tsconfig.json docs/protocol.schema.json \
  $js/scripts/*.mjs $js/src/*.ts web/*.ts web/*.tsx 2>/dev/null | sha1sum | cut -c1-12)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f web/dist/chat.js ]; then
  echo "setup: web bundles are up to date"
  exit 0
fi
lock=$(sha1sum $js/package-lock.json | cut -c1-12)
if [ "$(cat $js/node_modules/.lkbot-lock 2>/dev/null)" != "$lock" ]; then
  echo "setup: installing the TypeScript client's npm packages..."
  (cd $js && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock" > $js/node_modules/.lkbot-lock
fi
echo "setup: building the TypeScript client and the chat page..."
(cd $js && npm run --silent build)
echo "$want" > "$stamp"
