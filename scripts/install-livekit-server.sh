#!/usr/bin/env bash
# Build the open-source LiveKit server from its Go module into .tools/bin.
# Idempotent: skipped when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${LIVEKIT_SERVER_VERSION:-v1.13.5}  # v1.13.5 has no `replace` directives
BIN=.tools/bin/livekit-server
mkdir -p .tools/bin

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "${VERSION#v}"; then
  echo "livekit-server: $VERSION already built ($BIN)"
  exit 0
fi
command -v go >/dev/null || { echo "livekit-server: Go is required to build it (https://go.dev/dl)" >&2; exit 1; }
echo "livekit-server: building $VERSION from the Go module (about 2 minutes the first time)..."
start=$(date +%s)
tmp=$(mktemp -d)
GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod \
  go install -trimpath "github.com/livekit/livekit-server/cmd/server@$VERSION" 2>&1 \
  | grep -v '^go: downloading' || true
[ -x "$tmp/server" ] || { echo "livekit-server: build failed" >&2; rm -rf "$tmp"; exit 1; }
mv "$tmp/server" "$BIN"
rm -rf "$tmp"
echo "livekit-server: built $("$BIN" --version) in $(( $(date +%s) - start ))s -> $BIN"
