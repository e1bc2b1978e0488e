"""Results of provider batch APIs (OpenAI Batch, Anthropic Message Batches), priced as they are read.

Each result becomes one of our call spans, priced at the provider's batch rate (`Request.batch`), under
one `batch_results <batch id>` span whose roll-up carries their sum; the processor then counts them in
totals, metrics and the ledger (`batch=true`), and their spend reaches the budgets. A result read twice
(the app reads the output file again) is counted once. SDK-specific readers turn their shapes into
`BatchResult`s; the recording is here, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import wrapt
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from otel_llm_cost import _state
from otel_llm_cost import attributes as attr
from otel_llm_cost._bounded import Bounded
from otel_llm_cost._log import exception_once
from otel_llm_cost.context import current_session
from otel_llm_cost.estimate import worst_case_usage
from otel_llm_cost.instrumentation._refusal import sdk_error
from otel_llm_cost.instrumentation._call import CallContext, LLMCall, Outcome, Request, _start_attributes

__all__ = ["BatchResult", "BatchRecorder", "RecordingIterator", "BatchRequest", "batch_worst_case",
           "results_wrapper", "admit_wrapper"]

_logger = logging.getLogger(__name__)
_SEEN_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class BatchResult:
    custom_id: str
    operation: str
    model: str | None
    outcome: Outcome
    """Only billed results (a 2xx answer, a `succeeded` message) become one."""


class _Seen:
    """(provider, batch, custom id) of results already counted, oldest forgotten beyond the limit."""

    def __init__(self) -> None:
        self._keys: Bounded[tuple[str, str, str], None] = Bounded(_SEEN_LIMIT)
        self._lock = threading.Lock()

    def first_time(self, key: tuple[str, str, str]) -> bool:
        with self._lock:
            if key in self._keys:
                return False
            self._keys.put(key, None)
            return True


_seen = _Seen()


class BatchRecorder:
    """The `batch_results` span of one read of a batch's results, and a call span per new result."""

    def __init__(self, ctx: CallContext, provider: str, api: str, batch_id: str) -> None:
        self._ctx, self._provider, self._api, self._batch_id = ctx, provider, api, batch_id
        self._span = ctx.tracer.start_span(f"batch_results {batch_id}", kind=SpanKind.INTERNAL, attributes={
            attr.GEN_AI_PROVIDER_NAME: provider, attr.LLM_COST_BATCH: True, "llm_cost.batch.id": batch_id})
        self._ended = False

    def add(self, result: BatchResult) -> None:
        try:
            if not _seen.first_time((self._provider, self._batch_id, result.custom_id)):
                return
            session = current_session()
            request = Request(operation=result.operation, provider=self._provider, api=self._api,
                              model=result.model, kwargs={}, batch=True)
            span = self._ctx.tracer.start_span(
                f"{result.operation} {result.model}" if result.model else result.operation, kind=SpanKind.CLIENT,
                attributes={**_start_attributes(request, session), "llm_cost.batch.custom_id": result.custom_id},
                context=trace.set_span_in_context(self._span))
            call = LLMCall(self._ctx, request, span, session)
            call.finish(result.outcome)
            record_unreserved = getattr(_state.budget_hook(), "record_unreserved", None)
            if call.cost is not None and call.cost.total and record_unreserved is not None:
                record_unreserved(call.cost.total, session)  # billed now, never reserved: counts against budgets
        except Exception:
            exception_once(_logger, "batch-result", "otel-llm-cost: could not record a batch result")

    def add_all(self, results: Iterable[BatchResult]) -> None:
        for result in results:
            self.add(result)
        self.close()

    def close(self) -> None:
        if not self._ended:
            self._ended = True
            self._span.end()


class RecordingIterator(wrapt.ObjectProxy):  # type: ignore[misc]
    """The SDK's own results iterator, sync or async, recording each result as the app reads it."""

    def __init__(self, wrapped: Any, recorder: BatchRecorder, read: Any) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_read = read
        self._self_iterator: Any = None

    def _self_take(self, item: Any) -> Any:
        try:
            result = self._self_read(item)
        except Exception:
            exception_once(_logger, ("batch-read", self._self_read), "otel-llm-cost: could not read a batch result")
            result = None
        if result is not None:
            self._self_recorder.add(result)
        return item

    def __iter__(self) -> RecordingIterator:
        return self

    def __next__(self) -> Any:
        if self._self_iterator is None:
            self._self_iterator = iter(self.__wrapped__)
        try:
            return self._self_take(next(self._self_iterator))
        except StopIteration:
            self._self_recorder.close()
            raise

    def __aiter__(self) -> RecordingIterator:
        return self

    async def __anext__(self) -> Any:
        if self._self_iterator is None:
            self._self_iterator = self.__wrapped__.__aiter__()
        try:
            return self._self_take(await self._self_iterator.__anext__())
        except StopAsyncIteration:
            self._self_recorder.close()
            raise

    def __del__(self) -> None:
        try:
            self._self_recorder.close()
        except Exception:
            pass


Adopt = Any
"""`adopt(ctx, instance, args, kwargs, result)` -> what the app gets: the SDK's result itself (after
recording what it holds) or a `RecordingIterator` around it."""

WorstCase = Any
"""`worst_case(ctx, instance, args, kwargs)` -> the most a batch being created can bill (a `Decimal`), or
None when it cannot be told."""


def _adopt(adopt: Adopt, ctx: CallContext, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
           result: Any) -> Any:
    try:
        return adopt(ctx, instance, args, kwargs, result)
    except Exception:
        exception_once(_logger, ("batch-adopt", adopt), "otel-llm-cost: could not read batch results")
        return result


def _admit(worst_case: WorstCase, ctx: CallContext, instance: Any, args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> None:
    """Raise `BudgetExceededError` before a batch is created when its worst case would pass a budget."""
    from otel_llm_cost.budget import BudgetExceededError

    guard = _state.budget_hook()
    admit = getattr(guard, "admit", None)
    if admit is None or not getattr(guard, "budgets", None):
        return  # no budget to check: not even the worst case is computed
    try:
        amount = worst_case(ctx, instance, args, kwargs)
        if amount:
            admit(amount, current_session())
    except BudgetExceededError as refusal:  # a batch has no message to answer with: raised, as the SDK's error
        raise sdk_error(refusal, ctx.error_base) from None
    except Exception:
        exception_once(_logger, ("batch-admit", worst_case), "otel-llm-cost: could not check a batch against budgets")


def _around(before: Any = None, after: Any = None, *, is_async: bool) -> Any:
    """A wrapper factory (for `Target.wrapper_factory`): `before(ctx, instance, args, kwargs)` runs before
    the SDK sends, `after(ctx, instance, args, kwargs, result)` gives what the app gets; neither runs
    once uninstrumented or disabled."""

    def factory(ctx: CallContext) -> Any:
        def live() -> bool:
            return ctx.active and _state.settings().enabled

        def sync_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if not live():
                return wrapped(*args, **kwargs)
            if before is not None:
                before(ctx, instance, args, kwargs)
            result = wrapped(*args, **kwargs)
            return after(ctx, instance, args, kwargs, result) if after is not None else result

        async def async_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if not live():
                return await wrapped(*args, **kwargs)
            if before is not None:
                before(ctx, instance, args, kwargs)
            result = await wrapped(*args, **kwargs)
            return after(ctx, instance, args, kwargs, result) if after is not None else result

        return async_wrapper if is_async else sync_wrapper

    return factory


def results_wrapper(adopt: Adopt, *, is_async: bool) -> Any:
    """For an SDK method that returns batch results (or says where they are)."""
    return _around(after=lambda *call: _adopt(adopt, *call), is_async=is_async)


def admit_wrapper(worst_case: WorstCase, *, is_async: bool) -> Any:
    """For an SDK method that creates a batch: the budget check runs before anything is sent."""
    return _around(before=lambda *call: _admit(worst_case, *call), is_async=is_async)


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request of a batch being created, as its worst case needs it."""

    model: str | None
    prompt: Any
    max_tokens: int | None
    system: Any = None
    tools: Any = None


def batch_worst_case(ctx: CallContext, provider: str, requests: Iterable[BatchRequest]) -> Decimal:
    """The most a batch can bill, at the batch rate. A request whose price is unknown adds nothing
    (budgets are best effort for it, as for a single call)."""
    default_output = _state.settings().default_output_tokens
    total = Decimal(0)
    for request in requests:
        usage = worst_case_usage(request.prompt, request.max_tokens, default_output, system=request.system,
                                 tools=request.tools)
        cost = ctx.price_book.compute_cost(provider, request.model or "", usage, batch=True)
        if cost is not None:
            total += cost.total
    return total
