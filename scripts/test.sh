#!/usr/bin/env bash
# Set up (if needed), check the code (ruff check, ruff format --check, mypy --strict, with the settings in
# pyproject.toml) and run the test suite against real servers: Mosquitto and InfluxDB started by the tests on
# free ports, PostgreSQL on 127.0.0.1:5432.
#
#   ./scripts/test.sh                      # the checks and the whole suite
#   ./scripts/test.sh tests/unit -q        # the checks and these tests (pytest arguments pass through)
#   SC_SKIP_LINT=1 ./scripts/test.sh ...   # the tests only
#
# The exit status is pytest's when pytest fails (1 tests failed, 2 interrupted, 4 usage, 5 no tests...);
# when the tests pass and a check found something, it is 1; 0 only when both are clean.
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

lint_failed=()
if [ "${SC_SKIP_LINT:-0}" != 1 ]; then
  # every check runs (each says what it found), then the tests; the checks' verdict comes at the end
  echo "lint: ruff check"
  .venv/bin/ruff check . || lint_failed+=("ruff check")
  echo "lint: ruff format --check"
  .venv/bin/ruff format --check . || lint_failed+=("ruff format --check (./.venv/bin/ruff format . fixes it)")
  echo "lint: mypy --strict"
  .venv/bin/mypy --strict . || lint_failed+=("mypy --strict")
else
  echo "lint: skipped (SC_SKIP_LINT=1)"
fi

set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e

if [ ${#lint_failed[@]} -gt 0 ]; then
  for check in "${lint_failed[@]}"; do
    echo "lint: FAILED: $check (see its output above)" >&2
  done
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
