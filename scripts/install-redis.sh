#!/usr/bin/env bash
# Install Debian's redis-server (the tests start their own on a free loopback port; the
# bot uses it with BOT_STORE=redis://...). Idempotent: does nothing when it is there.
set -euo pipefail
if command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ]; then
  exit 0
fi
echo "setup: installing redis-server (Debian package)..."
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends redis-server >/dev/null
# the package starts a system service; the tests do not use it
$SUDO service redis-server stop >/dev/null 2>&1 || true
echo "setup: redis-server $(redis-server --version | awk '{print $3}')"
