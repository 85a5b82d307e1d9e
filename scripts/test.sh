#!/usr/bin/env bash
# Set up (idempotent) and run the test suite. Exit code 5 from pytest (no tests collected) fails.
set -euo pipefail
cd "$(dirname "$0")/.."
pip_install() {  # quiet, but a failed install fails the run
  local log status
  log=$(python3 -m pip install -q "$@" 2>&1) && status=0 || status=$?
  printf '%s\n' "$log" | grep -v -e "as the 'root' user" -e "^WARNING: Location" -e '^$' || true
  return "$status"
}
pip_install torch==2.13.0
pip_install -e ".[dev]"
# ExecuTorch without its declared tool chain (coremltools, pandas, scikit-learn, ...): the export and
# runtime paths edgesr uses need only these two modules beyond torch; --no-deps never pulls another torch.
pip_install --no-deps executorch==1.5.1 torchao==0.18.0
pip_install ruamel.yaml tabulate
set +e
# One xdist worker per core (EDGESR_TEST_WORKERS overrides; 0 runs in this process); a file's tests stay on
# one worker so module fixtures are built once.
workers=${EDGESR_TEST_WORKERS:-$(python3 -c "import os; print(min(4, os.cpu_count() or 1))")}
python3 -m pytest -q -m "not slow" -n "$workers" --dist loadfile --durations=25 "$@"  # slowest tests + peak RSS end the log
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
