#!/usr/bin/env bash
# The README's main command: set up .venv, then run the offline demo (no API key, no network), which
# serves /metrics until Ctrl-C. Options go to `otel-llm-cost demo` (e.g. --exit, --port 0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
echo "demo: starting the fake provider and running the workload through the real SDK clients" >&2
exec .venv/bin/otel-llm-cost demo "$@"
