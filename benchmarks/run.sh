#!/usr/bin/env bash
# Every benchmark row of the README in one run: sets up .venv-bench (the test set plus OpenLIT, installed
# without its pins), then runs benchmarks/bench_all.py. `--write-readme` puts this run's table in README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh bench
exec .venv-bench/bin/python benchmarks/bench_all.py "$@"
