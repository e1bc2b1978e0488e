"""Hooks that `opentelemetry-instrument` loads through entry points (see pyproject.toml).

* `pre_instrument` reads the OTEL_LLM_COST_* settings before any SDK is patched, so a bad value stops
  start-up with one line that names the variable and the value (the instrumentor loader would only
  log a traceback and go on without budgets: the wrong failure for a spend limit).
* the `llm_cost_*` instrumentors patch the SDKs, as in code;
* `post_instrument` attaches the CostSpanProcessor and the metrics to the providers that
  opentelemetry-distro configured (OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER): once, through
  `configure()`, whatever order the hooks run in.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any


def _or_exit(step: Callable[[], Any]) -> Any:
    """Run a start-up step; on a bad setting print one line and exit with status 2.

    Any other error stops start-up too, in one line: opentelemetry-instrument would log a traceback,
    then run the app with no tracing and, worse, no budget. Set OTEL_LLM_COST_ENABLED=false to run
    without us. `os._exit`, not `SystemExit`: these hooks run inside Python's `sitecustomize`, where a
    SystemExit becomes a "Fatal Python error" with a traceback, and nothing of the app has started yet.
    """
    try:
        return step()
    except Exception as error:
        if type(error).__name__ in ("ConfigError", "BudgetError", "PricingError"):  # a bad setting: it says why
            message = str(error)
        else:  # a bug of ours, or a broken install
            message = (f"start-up failed ({type(error).__name__}: {error}); "
                       "set OTEL_LLM_COST_ENABLED=false to run the app without otel-llm-cost")
    print(f"otel-llm-cost: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(2)


def pre_instrument() -> None:
    def check() -> None:
        from otel_llm_cost import _state

        if _state.settings().enabled:
            importlib.import_module("otel_llm_cost._setup")  # the whole pipeline imports, or we stop here

    _or_exit(check)


def post_instrument() -> None:
    from otel_llm_cost._setup import configure

    _or_exit(lambda: configure(instrument=False))
