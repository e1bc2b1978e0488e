#!/usr/bin/env bash
# Set up a fresh clone, one line per step. Idempotent, and quick when nothing changed.
#
#   bash scripts/setup.sh          .venv: the package with the SDKs, the examples and the dev tools
#                                  (exactly requirements/dev.lock)
#   bash scripts/setup.sh test     .venv-test: the same plus peer instrumentations (OpenLLMetry, the official
#                                  GenAI ones) for the coexistence tests and benchmarks (exactly
#                                  requirements/test.lock), and the servers the tests start
#                                  (prometheus/promtool, redis-server, postgresql) from Debian's packages
#   bash scripts/setup.sh bench    .venv-bench: the test set plus OpenLIT, for benchmarks/run.sh. OpenLIT pins
#                                  openai < 3 and anthropic < 1, so it is installed without its pins
#
# The demo and examples use .venv, where ours is the only LLM instrumentation: one span per call.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-dev}"
case "$mode" in
  dev) venv=.venv; lock=requirements/dev.lock ;;
  test) venv=.venv-test; lock=requirements/test.lock ;;
  bench) venv=.venv-bench; lock=requirements/test.lock ;;
  *) echo "setup: unknown mode '$mode' (use: dev, test or bench)" >&2; exit 2 ;;
esac
step() { echo "setup: $*" >&2; }

if [ "$mode" != dev ]; then
  need_apt=()
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
  command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # renders the HTML report in its test
  command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
  if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      step "installing Debian packages: ${need_apt[*]}"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}") \
        >/dev/null 2>&1 || step "could not install ${need_apt[*]}; the tests that need them will fail"
    else
      step "please install ${need_apt[*]} (Debian/Ubuntu: apt-get install ${need_apt[*]})"
    fi
  fi
fi

stamp="$venv/.otel-llm-cost-installed"
wanted="$mode $(cat pyproject.toml "$lock" requirements/focus-validator.lock | sha256sum | cut -c1-16)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  step "$venv is up to date"
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  step "creating the virtualenv $venv"
  python3 -m venv "$venv"
fi
log="$venv/setup.log"
step "installing $lock and otel-llm-cost into $venv (about two minutes the first time; log: $log)"
# Every package exactly as locked, each file checked against its hash; then this package itself, editable.
if ! { "$venv/bin/python" -m pip install --disable-pip-version-check "pip==26.3" \
       && PYTHONWARNINGS=ignore "$venv/bin/python" -m pip install --disable-pip-version-check --require-hashes \
            --no-deps -r "$lock" \
       && "$venv/bin/python" -m pip install --disable-pip-version-check --no-deps -e . ; } \
       >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  step "pip failed; the whole log is in $log"
  exit 1
fi
if [ "$mode" = test ]; then
  # the FinOps Foundation's FOCUS validator, which pins its own pandas world: a virtualenv of its own
  step "installing the FOCUS validator into .venv-focus"
  [ -x .venv-focus/bin/python ] || python3 -m venv .venv-focus
  if ! .venv-focus/bin/python -m pip install --disable-pip-version-check --require-hashes --no-deps \
         -r requirements/focus-validator.lock >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    step "pip failed; the whole log is in $log"
    exit 1
  fi
fi
if [ "$mode" = bench ]; then
  step "installing OpenLIT without its pins, and what it imports"
  if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --no-deps "openlit==1.45.0" \
         && "$venv/bin/python" -m pip install --disable-pip-version-check schedule xmltodict \
              opentelemetry-exporter-otlp opentelemetry-instrumentation-httpx opentelemetry-instrumentation-requests \
              opentelemetry-instrumentation-urllib3 opentelemetry-instrumentation-aiohttp-client; } >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    step "pip failed; the whole log is in $log"
    exit 1
  fi
fi
echo "$wanted" > "$stamp"
step "ready: $venv"
