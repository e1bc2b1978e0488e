#!/usr/bin/env bash
# The README's main command: set up, then run the offline demo (no API key needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/otel-llm-cost demo "$@"
