#!/usr/bin/env bash
# Installs what building and testing mcp-chat needs on a fresh Debian machine with rustup.
# Safe to run again: it only adds what is missing.
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "${component}"
  fi
done

# The MCP conformance suite and Inspector CLI (pinned, with their own Node.js 22) for
# tests/tests/conformance.rs; installed into .tools/conformance, skipped when up to date.
bash "$(dirname "$0")/conformance.sh" install

# redis-server (Debian's package) for the multi-node tests; each test starts its own.
bash "$(dirname "$0")/redis.sh" install
