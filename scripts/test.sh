#!/usr/bin/env bash
# The README's test command: set up .venv-test (with the peer instrumentations and the test servers),
# then run the whole suite. Fails on any failure and on zero tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
echo "test: running the suite" >&2
set +e
.venv-test/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
