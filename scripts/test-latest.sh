#!/usr/bin/env bash
# Run the suite against the newest release of every supported SDK (not the lock), and list what broke.
#
#   bash scripts/test-latest.sh [pytest args]
#
# Sets up .venv-latest with `pip install --upgrade -e .[dev,peers]`, prints each package whose newest
# release differs from requirements/test.lock, then runs the suite and lists the tests that failed.
# Exit status: pytest's. Nothing here changes the lock: when the newest releases pass, `bash scripts/lock.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test >/dev/null  # the Debian servers the tests start
venv=.venv-latest
step() { echo "test-latest: $*" >&2; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
log="$venv/setup.log"
step "installing the newest release of every dependency into $venv (log: $log)"
if ! { "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade pip \
       && PYTHONWARNINGS=ignore "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade \
            --upgrade-strategy eager -e ".[dev,peers]" \
       && "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade --no-deps \
            "google-cloud-aiplatform>=1.38"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  step "pip failed; the whole log is in $log"
  exit 1
fi
step "newer than the lock:"
"$venv/bin/python" - <<'PY'
import re
from importlib.metadata import distributions

locked = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", open("requirements/test.lock").read(), re.M))
locked = {name.lower().replace("_", "-"): version for name, version in locked.items()}
newer = sorted((d.metadata["Name"].lower().replace("_", "-"), d.version) for d in distributions())
lines = [f"  {name} {locked[name]} -> {version}" for name, version in newer
         if name in locked and locked[name] != version]
print("\n".join(lines) if lines else "  nothing: the lock is the newest")
PY
step "running the suite"
set +e
"$venv/bin/python" -m pytest -rf "$@" | tee "$venv/pytest.log"
status=${PIPESTATUS[0]}
set -e
failed=$(grep -c '^FAILED ' "$venv/pytest.log" || true)
step "$failed test(s) broke on the newest releases$([ "$failed" = 0 ] || echo ': the FAILED lines above')"
exit "$status"
