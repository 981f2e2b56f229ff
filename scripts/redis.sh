#!/usr/bin/env bash
# redis-server for the multi-node tests (tests/tests/http_nodes.rs), from Debian's
# packages. Each test starts its own redis-server on a free loopback port in a temporary
# directory and stops it; nothing here starts a server.
#
#   bash scripts/redis.sh install   installs redis-server if it is not on PATH
set -euo pipefail

case "${1:-}" in
  install)
    if command -v redis-server >/dev/null 2>&1; then
      exit 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "redis.sh: redis-server is missing and apt-get is not available: install Redis 6.2 or newer" >&2
      exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      SUDO="sudo"
    fi
    echo "redis.sh: installing redis-server from Debian's packages" >&2
    # The package may try to start a system service; where there is no init system that
    # fails harmlessly, and the tests never use it.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server >&2
    command -v redis-server >/dev/null 2>&1 || { echo "redis.sh: redis-server still missing" >&2; exit 1; }
    ;;
  *)
    echo "usage: bash scripts/redis.sh install" >&2
    exit 2
    ;;
esac
