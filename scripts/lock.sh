#!/usr/bin/env bash
# Re-make the lock files from pyproject.toml: run after changing a dependency, and commit the locks in the
# same commit. uv resolves for CPython 3.11 on x86_64 Linux (the CI machine) and records every file's hash.
#
#   requirements/test.lock   .venv-test and .venv-bench: extras dev + peers, plus requirements/test.in
#   requirements/dev.lock    .venv (the demo, the examples): extra dev, plus requirements/test.in
#   requirements/focus-validator.lock   .venv-focus: the FinOps Foundation's FOCUS validator, for its test
#
# requirements/overrides.txt lifts google-cloud-aiplatform's google-genai < 3 pin, so the Vertex AI SDK's
# tests run beside the google-genai SDK users install today.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.venv-tools
if [ ! -x "$tools/bin/uv" ]; then
  python3 -m venv "$tools" && "$tools/bin/python" -m pip install -q --disable-pip-version-check uv
fi
compile() {  # output, extras...
  local out="$1"; shift
  local extras=()
  for extra in "$@"; do extras+=(--extra "$extra"); done
  "$tools/bin/uv" pip compile pyproject.toml requirements/test.in "${extras[@]}" \
    --override requirements/overrides.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --generate-hashes --no-header --quiet -o "$out.tmp"
  { echo "# Made by: bash scripts/lock.sh (uv pip compile pyproject.toml requirements/test.in ${extras[*]}"
    echo "#   --override requirements/overrides.txt --python-version 3.11 --python-platform x86_64-manylinux_2_28"
    echo "#   --generate-hashes). Installed by scripts/setup.sh with pip --require-hashes --no-deps."
    cat "$out.tmp"; } > "$out"
  rm "$out.tmp"
  echo "lock: $out ($(grep -c '==' "$out") packages)" >&2
}
compile requirements/test.lock dev peers
compile requirements/dev.lock dev
# the FOCUS validator's own virtualenv (.venv-focus), for the FOCUS export test
"$tools/bin/uv" pip compile requirements/focus-validator.in --python-version 3.11 \
  --python-platform x86_64-manylinux_2_28 --generate-hashes --quiet -o requirements/focus-validator.lock
echo "lock: requirements/focus-validator.lock" >&2
