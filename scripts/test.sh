#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Exit code 5 from pytest (no tests collected) fails.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q torch==2.13.0 2>&1 | grep -v -e "as the 'root' user" -e "^WARNING: Location" || true
python3 -m pip install -q -e ".[dev]" 2>&1 | grep -v -e "as the 'root' user" -e "^WARNING: Location" || true
set +e
python3 -m pytest -q -m "not slow" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
