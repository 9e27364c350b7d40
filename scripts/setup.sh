#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: a virtualenv with the package, and with
# `--test` everything the test suite needs (redis-server, Chromium, npm packages).
# Everything a test needs is installed here, never by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null

if [ "${1:-}" = "--test" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
  need=()
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then need+=(chromium); fi
  command -v node >/dev/null 2>&1 || need+=(nodejs npm)
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]} from Debian's packages"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if [ -f client/package.json ]; then
    (cd client && { [ -d node_modules ] || npm ci --silent --no-audit --no-fund; })
  fi
else
  .venv/bin/python -m pip install -q --disable-pip-version-check -e .
fi
