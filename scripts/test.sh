#!/usr/bin/env bash
# Runs every test: the Python suite (real sockets, real Redis, real SQLite,
# PostgreSQL when reachable) and the JavaScript client's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
if [ -f client/package.json ]; then
  (cd client && npm test --silent) || status=$?
fi
exit $status
