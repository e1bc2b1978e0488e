"""`track()`: what a whole job costs, live, with progress; and `estimate_batch()` before it runs.

A job is a span (`llm_cost.job <name>`) and a context: every call inside carries `llm_cost.job` (and the
tag `job`, so the ledger's `job` column and, when listed in OTEL_LLM_COST_METRIC_TAGS, a metric label).
Its counts come from the processor's roll-up of the calls below its span, so they are exact whatever
runs them: `job.map` threads (which keep the job's context), asyncio tasks (which inherit it), or the
app's own pool when it runs each item in `contextvars.copy_context()`. `budget_usd` is a budget of this
run alone, checked before each call is sent.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from otel_llm_cost import attributes as attr
from otel_llm_cost._log import warn_once
from otel_llm_cost._money import column_usd
from otel_llm_cost.estimate import Estimate, estimate_cost
from otel_llm_cost.sessions import SessionSummary

__all__ = ["Job", "track", "estimate_batch"]

_logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Job:
    """A running job. Live: `calls`, `cost`, `unpriced_calls`, `errors` (its LLM calls) and `done`,
    `succeeded`, `failed` (its work items, counted by `map` or `item_done`); `summary()` at any time."""

    def __init__(self, name: str, total: int | None = None, progress: bool | str = "auto",
                 budget_usd: Any = None) -> None:
        self.name = name
        self.total = total
        self.succeeded = 0
        self.failed = 0
        self.run_id = uuid.uuid4().hex
        self._progress_mode = progress
        self._budget_usd = budget_usd
        self._budget_slot: str | None = None
        self._lock = threading.Lock()
        self._totals: Any = None
        self._span: Any = None
        self._token: Any = None
        self._bar: _Progress | None = None

    # --- live counts ---
    @property
    def calls(self) -> int:
        return self._totals.calls if self._totals is not None else 0

    @property
    def cost(self) -> Decimal:
        return self._totals.cost if self._totals is not None else Decimal(0)

    @property
    def unpriced_calls(self) -> int:
        return self._totals.unpriced if self._totals is not None else 0

    @property
    def errors(self) -> int:
        return self._totals.errors if self._totals is not None else 0

    @property
    def done(self) -> int:
        return self.succeeded + self.failed

    def summary(self) -> SessionSummary:
        """Totals of the job's calls by model and provider, as `session_usage()` gives for a session."""
        return self._totals.summary(self.name) if self._totals is not None else SessionSummary(self.name)

    # --- the context ---
    def __enter__(self) -> Job:
        from otel_llm_cost import _setup
        from otel_llm_cost.context import session

        rt = _setup.runtime(create=False)
        configured = rt is not None and rt.tracer_provider is not None
        from otel_llm_cost import __version__

        tracer = trace.get_tracer("otel_llm_cost.jobs", __version__,
                                  tracer_provider=rt.tracer_provider if configured else None)
        self._span = tracer.start_span(f"llm_cost.job {self.name}", kind=SpanKind.INTERNAL,
                                       attributes={attr.LLM_COST_JOB: self.name})
        if configured:
            self._totals = rt.processor.watch(self._span)
        else:
            warn_once(_logger, "track-before-configure", "otel-llm-cost: track() before configure(): the job's "
                      "calls are not counted until configure() attaches the span processor")
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        self._session = session(job=self.name, _job_run=self.run_id)
        self._session.__enter__()
        if self._budget_usd is not None:
            from otel_llm_cost import _api
            from otel_llm_cost.budget import Budget
            from otel_llm_cost.budget.guard import budget_slot

            budget = Budget.create(self._budget_usd, name=f"job {self.name}", scope="job", key=self.run_id,
                                   where=f"track({self.name!r}, budget_usd=...)")
            self._budget_slot = budget_slot(budget)  # this run's own: another run of the same name has its own
            _api._runtime("track").guard.set(budget)
        self._bar = _Progress.open(self, self._progress_mode)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._budget_slot is not None:
            from otel_llm_cost import _setup

            rt = _setup.runtime(create=False)
            if rt is not None:
                rt.guard.remove(self._budget_slot)
        self._session.__exit__(exc_type, exc, tb)
        otel_context.detach(self._token)
        self._span.set_attributes({"llm_cost.job.succeeded": self.succeeded, "llm_cost.job.failed": self.failed})
        if exc is not None:
            self._span.record_exception(exc)
            self._span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__qualname__))
        self._span.end()

    # --- work items ---
    def item_done(self, ok: bool = True) -> None:
        """Count one work item (for apps that run their own loop instead of `map`)."""
        with self._lock:
            if ok:
                self.succeeded += 1
            else:
                self.failed += 1
        if self._bar is not None:
            self._bar.update()

    def map(self, fn: Callable[[T], R], items: Iterable[T], workers: int = 4) -> list[R | BaseException]:
        """Run `fn` over `items` in `workers` threads that keep the job's context (span, session, budget),
        in order. An item that raises is counted as failed, and its exception stands in its result;
        the others go on (a job budget that refuses a call fails that item, not the job)."""
        items = list(items)
        if self.total is None:
            self.total = len(items)
            if self._bar is not None:
                self._bar.retotal(self.total)

        def run(item: T) -> R | BaseException:
            try:
                result = fn(item)
            except Exception as error:  # noqa: BLE001 - counted and returned, as the docstring says
                self.item_done(ok=False)
                return error
            self.item_done(ok=True)
            return result

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"job-{self.name}") as pool:
            futures = [pool.submit(contextvars.copy_context().run, run, item) for item in items]
            return [future.result() for future in futures]


def track(name: str, total: int | None = None, progress: bool | str = "auto", budget_usd: Any = None) -> Job:
    """`with llm_cost.track("nightly", total=100, budget_usd=5) as job: job.map(fn, items, workers=8)`.
    `progress`: "auto" shows a bar on a terminal, True always, False never."""
    return Job(name, total, progress, budget_usd)


class _Progress:
    """done/total, failures and dollars so far: tqdm when installed, else one stderr line redrawn."""

    def __init__(self, job: Job, bar: Any) -> None:
        self._job = job
        self._bar = bar
        self._lock = threading.Lock()

    @classmethod
    def open(cls, job: Job, mode: bool | str) -> _Progress | None:
        stream = sys.stderr
        if mode is False or (mode == "auto" and not (hasattr(stream, "isatty") and stream.isatty())):
            return None
        try:
            from tqdm import tqdm

            bar: Any = tqdm(total=job.total, desc=job.name, unit="item", file=stream, dynamic_ncols=True)
        except ImportError:
            bar = None
        return cls(job, bar)

    def retotal(self, total: int) -> None:
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def _text(self) -> str:
        job = self._job
        cost = f"${column_usd(job.cost)}" + (f" (+{job.unpriced_calls} unpriced)" if job.unpriced_calls else "")
        return f"{job.failed} failed, {job.calls} calls, {cost}"

    def update(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.set_postfix_str(self._text(), refresh=False)
                self._bar.update(1)
            else:
                total = f"/{self._job.total}" if self._job.total is not None else ""
                sys.stderr.write(f"\r{self._job.name}: {self._job.done}{total} done, {self._text()}")
                sys.stderr.flush()

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.set_postfix_str(self._text())
                self._bar.close()
            else:
                sys.stderr.write("\n")
                sys.stderr.flush()


def estimate_batch(model: str, prompts: Sequence[Any], max_tokens: int | None = None, *,
                   provider: str | None = None, default_output_tokens: int | None = None,
                   price_book: Any = None) -> Estimate:
    """The worst-case cost of running every prompt (a string or a messages list) once: the sum of each
    prompt's `estimate_cost`, so an upper bound as that is. An unknown price makes the cost None."""
    from dataclasses import replace

    from otel_llm_cost import _state

    output = default_output_tokens or _state.settings().default_output_tokens
    each = [estimate_cost(model, prompt, max_tokens, provider=provider, default_output_tokens=output,
                          price_book=price_book) for prompt in prompts]
    costs = [one.cost for one in each]
    total = None
    if costs and all(cost is not None for cost in costs):
        total = costs[0]
        for cost in costs[1:]:
            total = replace(total, total=total.total + cost.total, input=total.input + cost.input,
                            output=total.output + cost.output, tools=total.tools + cost.tools)
    return Estimate(sum(one.input_tokens for one in each), sum(one.output_tokens for one in each), total)
