"""What our instrumentors add to an app's start-up under `opentelemetry-instrument`.

    .venv-test/bin/python benchmarks/bench_startup.py [--runs 15]

Times `opentelemetry-instrument python -c 'import openai'` (and the same for an app that imports no
SDK) with every `llm_cost_*` instrumentor loaded, and with them disabled through
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS; the peer instrumentations installed next to us are disabled in
both, so the difference is ours alone. Runs are interleaved; medians are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")


def _run(code: str, disabled: list[str]) -> float:
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
           "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": ",".join(disabled), "PYTHONWARNINGS": "ignore"}
    started = time.perf_counter()
    subprocess.run([INSTRUMENT, sys.executable, "-c", code], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(runs: int) -> dict[str, tuple[float, float]]:
    """{command: (median seconds without ours, with ours)}, runs interleaved."""
    names = sorted({ep.name for ep in entry_points(group="opentelemetry_instrumentor")})
    ours = [n for n in names if n.startswith("llm_cost_")]
    peers = [n for n in names if not n.startswith("llm_cost_")]
    results = {}
    for label, code in (("import openai", "import openai"), ("pass", "pass")):
        with_ours, without = [], []
        for _ in range(runs):
            without.append(_run(code, peers + ours))
            with_ours.append(_run(code, peers))
        results[label] = (statistics.median(without), statistics.median(with_ours))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    for label, (without, with_ours) in measure(args.runs).items():
        print(f"opentelemetry-instrument python -c '{label}': without ours {without * 1000:5.0f} ms, with ours "
              f"{with_ours * 1000:5.0f} ms, added {(with_ours - without) * 1000:+4.0f} ms (median of {args.runs})")


if __name__ == "__main__":
    main()
