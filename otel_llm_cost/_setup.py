"""`configure()` and the process-wide pieces it wires: settings, prices, budgets, processor, metrics.

Both entry points end here exactly once, whatever order they load in: `configure()` for apps that
set up OpenTelemetry in code, and the `opentelemetry_post_instrument` hook for
`opentelemetry-instrument`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics, trace

from otel_llm_cost import _state
from otel_llm_cost.budget.guard import BudgetGuard
from otel_llm_cost.budget.loading import budgets_from_settings
from otel_llm_cost.budget.stores import StoreOpenError, store_from_url
from otel_llm_cost.config import BUDGET_STORE, ConfigError, Settings, prepare_price_book
from otel_llm_cost.processor import CostSpanProcessor

__all__ = ["configure", "runtime", "Runtime"]

_logger = logging.getLogger(__name__)
_lock = threading.RLock()


@dataclass
class Runtime:
    """Everything configure() made; one per process."""

    settings: Settings
    guard: BudgetGuard
    processor: CostSpanProcessor
    tracer_provider: Any = None
    meter_provider: Any = None
    metrics: Any = None
    ledger: Any = None


_runtime: Runtime | None = None


def runtime(create: bool = True) -> Runtime | None:
    """The process's runtime; created unattached on first use (e.g. `set_budget` before `configure`)."""
    global _runtime
    if _runtime is None and create:
        with _lock:
            if _runtime is None:
                settings = _state.settings()
                guard = _new_guard(settings)
                _runtime = Runtime(settings, guard, CostSpanProcessor(guard=guard))
                _state.set_budget_hook(guard)
    return _runtime


def _new_guard(settings: Settings) -> BudgetGuard:
    """The budget guard over the configured store. A store that cannot be used stops start-up: running
    without the budget the user asked for is the one failure we must not hide."""
    try:
        store = store_from_url(settings.budget_store)
    except StoreOpenError as error:
        raise ConfigError(f"{BUDGET_STORE}={settings.budget_store!r} cannot be used: {error}") from None
    guard = BudgetGuard(store, default_output_tokens=settings.default_output_tokens,
                        on_store_failure=settings.budget_store_failure, fallback_models=settings.fallback_models,
                        lease=settings.budget_lease)
    for budget in budgets_from_settings(settings):
        guard.set(budget)
    return guard


def _sdk_tracer_provider(given: Any) -> Any:
    if given is not None:
        return given
    provider = trace.get_tracer_provider()
    if hasattr(provider, "add_span_processor"):
        return provider
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()


def configure(tracer_provider: Any = None, meter_provider: Any = None, *, instrument: bool = True,
              **settings: Any) -> CostSpanProcessor:
    """Attach the cost processor (and metrics) once, instrument the installed SDKs, return the processor.

    Keyword settings are the OTEL_LLM_COST_* variables in lower case without the prefix (`budget_usd=5`, `budget_window="day"`, ...) and win
    over the environment. A second call returns the same processor and changes nothing; it warns, naming what it ignored.
    """
    global _runtime
    with _lock:
        if _runtime is not None and _runtime.tracer_provider is not None:
            _warn_ignored(_runtime, tracer_provider, meter_provider, settings)
            return _runtime.processor
        resolved = Settings.from_env().with_overrides(**settings) if settings else _state.settings()
        _state.set_settings(resolved)
        if not resolved.enabled:
            current = runtime()
            assert current is not None
            return current.processor
        prepare_price_book(resolved)
        guard = _new_guard(resolved)
        if _runtime is not None:  # set_budget() before configure(): keep those budgets too
            for budget in _runtime.guard.budgets.values():
                guard.set(budget)
        processor = CostSpanProcessor(guard=guard)
        ledger = _open_ledger(resolved, processor)
        provider = _sdk_tracer_provider(tracer_provider)
        provider.add_span_processor(processor)
        _runtime = Runtime(resolved, guard, processor, provider, ledger=ledger)
        _state.set_budget_hook(guard)
        _attach_metrics(_runtime, meter_provider)
        if instrument:
            from otel_llm_cost.instrumentation import instrument as instrument_sdks

            instrument_sdks(tracer_provider=provider)
        return processor


def _open_ledger(settings: Settings, processor: CostSpanProcessor) -> Any:
    """The usage ledger, fed by the processor; one that cannot be opened stops start-up."""
    if settings.ledger is None:
        return None
    from otel_llm_cost.config import LEDGER
    from otel_llm_cost.ledger import Ledger, LedgerOpenError, open_backend

    try:
        ledger = Ledger(open_backend(settings.ledger), exit_timeout=settings.ledger_exit_timeout,
                        spool_dir=settings.ledger_spool)
    except LedgerOpenError as error:
        raise ConfigError(f"{LEDGER}={settings.ledger!r} cannot be used: {error}") from None
    processor.add_listener(ledger.record, flush=ledger.flush, shutdown=ledger.shutdown)
    return ledger


def _warn_ignored(rt: Runtime, tracer_provider: Any, meter_provider: Any, settings: dict[str, Any]) -> None:
    """A second configure() changes nothing: name what it asked for that differs from what is active."""
    ignored = []
    if tracer_provider is not None and tracer_provider is not rt.tracer_provider:
        ignored.append("tracer_provider")
    if meter_provider is not None and meter_provider is not rt.meter_provider:
        ignored.append("meter_provider")
    if settings:
        requested = Settings.from_env().with_overrides(**settings)  # a bad value still raises ConfigError
        for name in settings:
            active, wanted = getattr(rt.settings, name), getattr(requested, name)
            if active != wanted:
                ignored.append(f"{name}={_shown(wanted)} (active: {_shown(active)})")
    if ignored:
        _logger.warning("otel-llm-cost: configure() was already called; this call changes nothing and ignored "
                        "%s. Use set_budget() and set_pricing() to change budgets and prices at run time",
                        ", ".join(ignored))


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return "none" if value is None else str(value)


def _attach_metrics(rt: Runtime, meter_provider: Any) -> None:
    try:
        from otel_llm_cost.metrics import CostMetrics
    except ImportError:
        return
    rt.meter_provider = meter_provider or metrics.get_meter_provider()
    rt.metrics = CostMetrics(rt.meter_provider, rt.guard, rt.settings.metric_tags, ledger=rt.ledger)
    rt.processor.add_listener(rt.metrics.record)


def reset_for_tests() -> None:
    global _runtime
    with _lock:
        if _runtime is not None and _runtime.ledger is not None:
            _runtime.ledger.shutdown()
        if _runtime is not None:  # its leases and queued settles go to its store now, not into the next test's
            release = getattr(_runtime.guard.store, "release_all", None)
            if release is not None:
                release()
        _runtime = None
        _state.set_budget_hook(None)
