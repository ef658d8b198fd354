#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite against real servers:
# Mosquitto and InfluxDB started by the tests on free ports, PostgreSQL on 127.0.0.1:5432.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The tests use the PostgreSQL server on 127.0.0.1:5432; start a stopped local cluster.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null && [ "$(id -u)" = 0 ]; then
    ver=$(ls /etc/postgresql 2>/dev/null | head -n1)
    [ -n "$ver" ] && pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  fi
fi
exec .venv/bin/python -m pytest "$@"
