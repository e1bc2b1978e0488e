"""`LLMCall`: the lifecycle of one LLM call, written once for every SDK, sync and async.

span start (request attributes, session, tags) -> budget reservation -> the SDK call (current span,
so the SDK's own spans nest under ours) -> usage -> cost -> attributes -> end.

A wrapper in ``instrumentation/<sdk>.py`` only describes its SDK with an `Endpoint`: how to read the
request, the response and the stream items. Everything here guards the host app: an error in our
code is logged once and swallowed, the SDK's return value and exceptions pass through untouched,
and the only exception we raise on purpose is `BudgetExceededError`.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from contextvars import ContextVar
from decimal import Decimal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from otel_llm_cost import _state
from otel_llm_cost import attributes as attr
from otel_llm_cost._log import exception_once, warn_once
from otel_llm_cost.budget import BudgetExceededError
from otel_llm_cost.context import SessionContext, current_session
from otel_llm_cost.estimate import estimate_input_tokens, worst_case_usage
from otel_llm_cost.instrumentation._attempts import Attempt, serve, unserve, unwatch, watch
from otel_llm_cost.instrumentation._outcome import Outcome, StreamAccumulator
from otel_llm_cost.instrumentation._stream import StreamProxy
from otel_llm_cost.instrumentation._read import (
    is_async_raw_response,
    is_raw_response,
    parsed_raw_response,
    replace_parsed_raw_response,
)
from otel_llm_cost.instrumentation._refusal import (
    Answer,
    AnswerBuilder,
    Direct,
    ErrorBase,
    Resend,
    Wire,
    refusal_text,
    sdk_error,
)
from otel_llm_cost.pricing import Cost, PriceBook, default_price_book
from otel_llm_cost.providers import believable_cost, reported_cost_header
from otel_llm_cost.sessions import CallRecord, LastUsage, publish_exact_record, set_last_usage
from otel_llm_cost.usage import Usage

__all__ = [
    "Request", "Outcome", "StreamAccumulator", "UsageChunks", "Endpoint", "streaming", "LLMCall", "wrap_endpoint", "run_sync",
    "run_async",
]

_logger = logging.getLogger(__name__)

SCOPE_NAME = "otel_llm_cost"
"""Our instrumentation scope: how the processor tells our spans from other instrumentations'."""

_sending: ContextVar[bool] = ContextVar("otel_llm_cost_sending", default=False)
"""True while one of our calls is sending. An SDK method wrapped by us and called meanwhile is part of
that call (LiteLLM sending through the openai SDK, `acompletion` running `completion`): it passes
through, so each call is counted, priced and budgeted once."""


@dataclass(slots=True)
class Request:
    """What a wrapper read from the request. `prompt` feeds the budget estimate; it never goes on a span."""

    operation: str
    provider: str
    api: str
    model: str | None
    kwargs: dict[str, Any]
    max_tokens: int | None = None
    stream: bool = False
    service_tier: str | None = None
    batch: bool = False
    prompt: Any = None
    system: Any = None
    tools: Any = None
    hide_usage_chunk: bool = False
    server_address: str | None = None
    server_port: int | None = None
    regional: bool = False
    """Sent to a regional endpoint that may cost more than the global one (Claude on Vertex AI)."""
    units: Usage | None = None
    """What the request alone says it bills, in units that are not tokens (characters to speak, images to
    draw, seconds of audio): the worst case, and the usage when the response reports none."""

    model_key: str | None = "model"
    """The keyword argument that names the model in `kwargs` (Bedrock: `modelId`): what a fallback changes."""

    def use_model(self, model: str) -> bool:
        """Send this request with `model` instead (a budget's fallback); False when it cannot be changed
        (the model was passed positionally, or is not what the kwarg says)."""
        key = self.model_key
        current = self.kwargs.get(key) if key else None
        if not isinstance(current, str) or not self.model or self.model not in current:
            return False
        self.kwargs[key] = current.replace(self.model, model, 1)  # keeps a prefix: "models/", "openai/"
        self.model = model
        return True

    def worst_case(self, default_output_tokens: int) -> Usage:
        """The most one attempt can bill: budgets reserve it, and an unanswered attempt is charged it."""
        if self.units is not None:
            return self.units
        return worst_case_usage(self.prompt, self.max_tokens, default_output_tokens, system=self.system,
                                tools=self.tools)


def _same(item: Any) -> Any:
    return item


@dataclass(frozen=True, slots=True)
class UsageChunks:
    """The stream accumulator of APIs whose chunks carry the usage so far: Gemini repeats it,
    cumulatively, on every chunk; Mistral sends it on the last. The last chunk that has it is read
    once, at the end, as a whole response. A stream that ends before any finish reason keeps the
    exact prompt count and is an estimate, with at least a token for each chunk seen."""

    read_chunk: Callable[[Any], Outcome]
    has_usage: Callable[[Any], bool]
    finish_reasons: Callable[[Any], tuple[str, ...]]
    chunk_of: Callable[[Any], Any] = _same
    """The chunk inside a stream item (Mistral wraps each in an event's `data`)."""

    def __call__(self, request: Request) -> StreamAccumulator:
        return _UsageChunkStream(self, request)


class _UsageChunkStream:
    __slots__ = ("_api", "_request", "_last", "_finish", "_chunks")

    def __init__(self, api: UsageChunks, request: Request) -> None:
        self._api = api
        self._request = request
        self._last: Any = None
        self._finish: tuple[str, ...] = ()
        self._chunks = 0

    def observe(self, item: Any) -> bool:
        api = self._api
        chunk = api.chunk_of(item)
        self._chunks += 1
        if api.has_usage(chunk):
            self._last = chunk
        finish = api.finish_reasons(chunk)
        if finish:
            self._finish = finish
        return True

    def outcome(self, complete: bool) -> Outcome:
        if self._last is None:
            return Outcome(usage=estimated_usage(self._request, self._chunks), estimated=True)
        outcome = self._api.read_chunk(self._last)
        outcome.finish_reasons = self._finish
        usage = outcome.usage
        if not self._finish and usage is not None:
            outcome.estimated = True
            if usage.output_tokens < self._chunks:
                outcome.usage = replace(usage, output_tokens=self._chunks)
        return outcome


RequestReader = Callable[[Any, tuple[Any, ...], dict[str, Any]], Request | None]


def streaming(read_request: RequestReader) -> RequestReader:
    """The request reader of an SDK's stream method, from the reader of its plain one: same
    request, marked as a stream (`generate_content_stream`, `chat.stream`, `messages.stream()`...)."""

    def read(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
        request = read_request(instance, args, kwargs)
        if request is not None:
            request.stream = True
        return request

    return read


@dataclass(frozen=True, slots=True)
class Endpoint:
    """How one SDK method is read. Pure functions of the SDK's shapes, no telemetry."""

    read_request: RequestReader
    read_response: Callable[[Any], Outcome]
    new_accumulator: Callable[[Request], StreamAccumulator] | None = None
    stream_key: str | None = None
    """When the SDK returns the stream inside a dict (Bedrock's `response["stream"]`), its key: the
    proxy then takes the stream's place in that same dict."""
    answer_refusal: AnswerBuilder | None = None
    """The answer a budget with `on_exceed="respond"` gives instead of sending (see `_refusal`); without
    one, the operation has no message to answer with and a refusal raises."""
    resend: Callable[[Request, BaseException], bool] | None = None
    """Given the error of the first send, whether the server rejected something WE added to the request
    (OpenAI-compatible servers that refuse `stream_options`): it then changes `request.kwargs` and
    returns True, and the call is sent once more, so the app gets what it would get uninstrumented."""

    until_done: Callable[[Any, Any], Any] | None = None
    """For an API whose response can still be running (a Replicate prediction): given the response and
    the call, returns what the app gets instead, which ends the call itself once it sees the work end;
    None when the response is already final (it is then read at once)."""

    def is_stream(self, request: Request, result: Any) -> bool:
        return self.new_accumulator is not None and request.stream


@dataclass(slots=True)
class CallContext:
    """What every call of one instrumentor shares."""

    tracer: Tracer
    price_book: PriceBook = field(default_factory=default_price_book)
    active: bool = True
    """False once uninstrumented: a wrapper that another instrumentation still holds passes through."""
    error_base: ErrorBase | None = None
    """The SDK's base error class: a refusal raised into the app is one of those too."""


class LLMCall:
    """One call in flight. `finish` and `fail` end it exactly once.

    What it is charged: the usage the response reports, plus the worst case (`worst_case_usage`) of each
    attempt that left the client and was never answered (timeouts, cancellations, resets mid-response:
    the provider may have processed them). A failed call that never sent anything, or was answered
    with an error status, costs nothing. Usage that cannot be believed is charged at least the worst case.
    """

    __slots__ = ("request", "span", "session", "started", "reservation", "_ctx", "_ended", "cost", "attempts")

    def __init__(self, ctx: CallContext, request: Request, span: Span, session: SessionContext | None) -> None:
        self._ctx = ctx
        self.request = request
        self.span = span
        self.session = session
        self.started = time.perf_counter()
        self.reservation: Any = None
        self._ended = False
        self.cost: Cost | None = None
        self.attempts: list[Attempt] = []

    @classmethod
    def begin(cls, ctx: CallContext, request: Request, endpoint: Endpoint | None = None) -> LLMCall | Answer | None:
        """Start the span and reserve the budget. A refused call ends here: it returns the refused answer
        (`on_exceed="respond"`), or raises `BudgetExceededError` (also the SDK's own base error)."""
        try:
            session = current_session()
            span = ctx.tracer.start_span(
                f"{request.operation} {request.model}" if request.model else request.operation,
                kind=SpanKind.CLIENT,
                attributes=_start_attributes(request, session),
            )
            call = cls(ctx, request, span, session)
        except Exception:
            exception_once(_logger, "call-begin", "otel-llm-cost: could not start a span; call not instrumented")
            return None
        try:
            _state.budget_hook().reserve(call)
        except BudgetExceededError as refusal:
            answer = _refused_answer(endpoint, request, refusal)
            call._end_blocked(refusal, responded=answer is not None)
            if answer is None:
                raise sdk_error(refusal, ctx.error_base, request) from None
            return answer
        except Exception:
            exception_once(_logger, "budget-reserve", "otel-llm-cost: budget reservation failed; call allowed")
        return call

    def make_current(self) -> tuple[object, object, object]:
        """Make our span current while the SDK sends, so the SDK's own spans become its children, and
        record the requests it sends (`_attempts`). Returns the tokens for `release`."""
        return context.attach(trace.set_span_in_context(self.span)), watch(self.attempts), _sending.set(True)

    @staticmethod
    def release(tokens: tuple[object, object, object]) -> None:
        _sending.reset(tokens[2])  # type: ignore[arg-type]
        unwatch(tokens[1])  # type: ignore[arg-type]
        context.detach(tokens[0])  # type: ignore[arg-type]

    def finish(self, outcome: Outcome) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            if outcome.usage is None and self.request.units is not None:
                outcome = replace(outcome, usage=self.request.units)
            elif outcome.estimate_unreported:
                output = outcome.usage.output_tokens if outcome.usage is not None else 0
                outcome = replace(outcome, usage=estimated_usage(self.request, output), estimated=True)
            outcome = self._billed(outcome, self._unanswered(answered=True))
            self._record(outcome)
            self._publish(outcome, "ok")
        except Exception:
            exception_once(_logger, "call-finish", "otel-llm-cost: could not record usage and cost")
        self._settle(failed=False)
        self.span.end()

    def fail(self, error: BaseException, outcome: Outcome | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            unanswered = self._unanswered(answered=False)
            if unanswered:
                outcome = self._billed(outcome or Outcome(), unanswered, cut=True)
            if outcome is not None and outcome.usage is not None:
                self._record(outcome)
            self.span.set_attribute(attr.ERROR_TYPE, type(error).__qualname__)
            self.span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
            self._publish(outcome or Outcome(), "error")
        except Exception:
            exception_once(_logger, "call-fail", "otel-llm-cost: could not record a failed call")
        self._settle(failed=self.cost is None)
        self.span.end()

    def _end_blocked(self, refusal: BudgetExceededError, responded: bool = False) -> None:
        """A call a budget refused: never sent, counted as blocked. `responded`: the app got the refusal
        message as the model's answer, so for the app it did not fail."""
        self._ended = True
        try:
            self.span.set_attributes({attr.LLM_COST_BUDGET_NAME: refusal.budget,
                                      attr.LLM_COST_BUDGET_OUTCOME: "responded" if responded else "blocked"})
            if not responded:
                self.span.set_attribute(attr.ERROR_TYPE, type(refusal).__qualname__)
                self.span.set_status(Status(StatusCode.ERROR, "BudgetExceededError"))
            self._publish(Outcome(), "blocked")
        finally:
            self.span.end()

    def _publish(self, outcome: Outcome, result: str) -> None:
        """The exact record for the processor, and `last_usage()` for the app's context."""
        request, session = self.request, self.session
        usage = outcome.usage or Usage()
        model = outcome.response_model or request.model or "unknown"
        cost = self.cost.total if self.cost is not None else None
        if cost is None and result != "ok" and usage.total_tokens == 0:
            cost = Decimal(0)  # nothing billed: a known zero, not an unknown price
        if result != "blocked":
            set_last_usage(LastUsage(request.provider, model, usage, cost, outcome.estimated))
        if self.span.is_recording():
            publish_exact_record(self.span.get_span_context().span_id, CallRecord(
                request.provider, model, usage, cost,
                session.session_id if session else None, session.user_id if session else None,
                dict(session.tags) if session else {}, result))

    def _unanswered(self, answered: bool) -> int:
        """Attempts that may have been processed without their response reaching us: all the billable
        ones, except the last when it was answered (its usage is in the response)."""
        attempts = self.attempts[:-1] if answered else self.attempts
        return sum(1 for attempt in attempts if attempt.billable)

    def worst_case(self) -> Usage:
        """What the budget reserved for this call: the most one attempt can bill."""
        return self.request.worst_case(_state.settings().default_output_tokens)

    def _billed(self, outcome: Outcome, unanswered: int, cut: bool = False) -> Outcome:
        """The outcome with the usage to charge. `cut`: the last attempt failed mid-response, so what it
        reported so far is raised to the worst case; so is usage that cannot be believed."""
        usage = outcome.usage
        if usage is not None and not usage.complete:
            warn_once(_logger, ("implausible-usage", self.request.provider),
                      "otel-llm-cost: %s reported usage that cannot be right (missing, negative, fractional or "
                      "beyond any model's size); such calls are charged their worst-case estimate",
                      self.request.provider)
        if not unanswered and (usage is None or usage.complete):
            return outcome
        worst = self.worst_case()
        extra = unanswered
        if usage is not None and (cut or not usage.complete):
            usage = _at_least(usage, worst)
            extra -= 1 if cut else 0
        if extra > 0:
            many = worst.times(extra)
            usage = many if usage is None else usage + many
        return replace(outcome, usage=usage, estimated=True)

    def _settle(self, failed: bool) -> None:
        try:
            _state.budget_hook().settle(self, self.cost, failed)
        except Exception:
            exception_once(_logger, "budget-settle", "otel-llm-cost: could not settle a budget reservation")

    def _record(self, outcome: Outcome) -> None:
        request = self.request
        values: dict[str, Any] = {}
        if outcome.response_model:
            values[attr.GEN_AI_RESPONSE_MODEL] = outcome.response_model
        if outcome.response_id:
            values[attr.GEN_AI_RESPONSE_ID] = outcome.response_id
        if outcome.finish_reasons:
            values[attr.GEN_AI_RESPONSE_FINISH_REASONS] = list(outcome.finish_reasons)
        if outcome.service_tier:
            values[attr.service_tier_keys(request.provider)[1]] = outcome.service_tier
        usage = outcome.usage
        if usage is None:
            values[attr.LLM_COST_PRICING_SOURCE] = "unknown"
            self.span.set_attributes(values)
            return
        values.update(_usage_attributes(usage))
        if len(self.attempts) > 1:
            values[attr.LLM_COST_ATTEMPTS] = len(self.attempts)
        if outcome.estimated:
            values[attr.LLM_COST_USAGE_ESTIMATED] = True
        if not usage.complete:
            values[attr.LLM_COST_USAGE_INCOMPLETE] = True
        local = self._price(usage, outcome)
        cost = local
        reported = outcome.provider_cost if outcome.provider_cost is not None else self._gateway_cost()
        if reported is not None and not outcome.estimated:
            if self._believed(reported, local, outcome):
                cost = _reported(reported, local, outcome.response_model or self.request.model or "")
            else:
                values[attr.LLM_COST_COST_REPORTED] = float(reported)
        elif local is None and outcome.fallback_cost is not None and not outcome.estimated:
            cost = Cost(total=outcome.fallback_cost, input=outcome.fallback_cost, output=Decimal(0),
                        source=outcome.fallback_source, model=outcome.response_model or self.request.model or "")
        self.cost = cost
        if cost is None:
            values[attr.LLM_COST_PRICING_SOURCE] = "unknown"
        else:
            total = float(cost.total)
            values[attr.GEN_AI_USAGE_COST_AMOUNT] = total
            values[attr.GEN_AI_USAGE_COST_CURRENCY] = cost.currency
            provided = cost.source == attr.COST_SOURCE_PROVIDER
            values[attr.GEN_AI_USAGE_COST_SOURCE] = attr.COST_SOURCE_PROVIDER if provided else attr.COST_SOURCE_LOCAL
            if local is not None:  # the split is ours; a total from elsewhere alone has none
                values[attr.LLM_COST_COST_INPUT] = float(cost.input)
                values[attr.LLM_COST_COST_OUTPUT] = float(cost.output)
            values[attr.LLM_COST_PRICING_SOURCE] = cost.source
            values[attr.LLM_COST_PRICING_MODEL] = cost.model
            if _state.settings().compat_cost_attribute:
                values[attr.GEN_AI_USAGE_COST_COMPAT] = total
        self.span.set_attributes(values)

    def _believed(self, reported: Decimal, local: Cost | None, outcome: Outcome) -> bool:
        """A reported cost far above our own price for the same usage is not believed (section 9)."""
        ratio = _state.settings().reported_cost_max_ratio
        if believable_cost(reported, local.total if local is not None else None, ratio):
            return True
        model = outcome.response_model or self.request.model
        warn_once(_logger, ("implausible-cost", self.request.provider, model),
                  "otel-llm-cost: %s reported $%s for a %s call that costs $%s at our prices, more than "
                  "OTEL_LLM_COST_REPORTED_COST_MAX_RATIO=%s times as much; our price is used, and the reported "
                  "amount kept in llm_cost.cost.reported", self.request.provider, reported, model,
                  local.total if local is not None else "?", ratio)
        return False

    def _gateway_cost(self) -> Decimal | None:
        """A gateway's cost header on the answered attempt (a LiteLLM proxy's `x-litellm-response-cost`)."""
        if not self.attempts:
            return None
        return reported_cost_header(self.attempts[-1].headers)

    def _price(self, usage: Usage, outcome: Outcome) -> Cost | None:
        request = self.request
        tier = outcome.service_tier or None
        book = self._ctx.price_book
        for model in (outcome.response_model, request.model):
            if model:
                cost = book.compute_cost(request.provider, model, usage, service_tier=tier, batch=request.batch,
                                         regional=request.regional)
                if cost is not None:
                    return cost
        return None


def _reported(total: Decimal, local: Cost | None, model: str) -> Cost:
    """The provider's own figure, split into input and output as our price splits it (when we have one)."""
    if local is None or not local.total:
        return Cost(total=total, input=total, output=Decimal(0), source=attr.COST_SOURCE_PROVIDER, model=model)
    share = total / local.total
    return Cost(total=total, input=local.input * share, output=total - local.input * share,
                source=attr.COST_SOURCE_PROVIDER, model=local.model)


def _at_least(usage: Usage, floor: Usage) -> Usage:
    """`usage` with its input and output totals raised to `floor`'s, its subsets kept."""
    if usage.input_tokens >= floor.input_tokens and usage.output_tokens >= floor.output_tokens:
        return usage
    return replace(usage, input_tokens=max(usage.input_tokens, floor.input_tokens),
                   output_tokens=max(usage.output_tokens, floor.output_tokens))


def estimated_usage(request: Request, output_tokens: int) -> Usage:
    """Usage for a call whose real usage never arrived: input from the request's upper-bound
    estimate, output as counted so far. Marked estimated on the span, never priced at 0."""
    input_tokens = estimate_input_tokens(request.prompt or "", system=request.system, tools=request.tools)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens)


def _start_attributes(request: Request, session: SessionContext | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        attr.GEN_AI_OPERATION_NAME: request.operation,
        attr.GEN_AI_PROVIDER_NAME: request.provider,
        attr.GEN_AI_REQUEST_STREAM: request.stream,
    }
    if request.model:
        values[attr.GEN_AI_REQUEST_MODEL] = request.model
    if request.max_tokens is not None:
        values[attr.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
    if request.service_tier:
        values[attr.service_tier_keys(request.provider)[0]] = request.service_tier
    if request.batch:
        values[attr.LLM_COST_BATCH] = True
    if request.server_address:
        values[attr.SERVER_ADDRESS] = request.server_address
        if request.server_port:
            values[attr.SERVER_PORT] = request.server_port
    if session is not None:
        if session.session_id is not None:
            values[attr.SESSION_ID] = session.session_id
            values[attr.GEN_AI_CONVERSATION_ID] = session.session_id
        if session.user_id is not None:
            values[attr.USER_ID] = session.user_id
        for key, value in session.tags.items():
            values[attr.LLM_COST_TAG_PREFIX + key] = value
        job = session.tags.get("job")
        if job is not None:
            values[attr.LLM_COST_JOB] = job
    return values


def _usage_attributes(usage: Usage) -> dict[str, Any]:
    values: dict[str, Any] = {
        attr.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens,
        attr.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens,
    }
    if usage.cache_read_tokens:
        values[attr.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cache_read_tokens
    if usage.cache_write_tokens:
        values[attr.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = usage.cache_write_tokens
        values[attr.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = usage.cache_write_tokens
    if usage.reasoning_tokens:
        values[attr.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
    if usage.audio_seconds or usage.input_characters or usage.rerank_searches or usage.images:
        for key, count in ((attr.LLM_COST_USAGE_AUDIO_SECONDS, float(usage.audio_seconds)),
                           (attr.LLM_COST_USAGE_INPUT_CHARACTERS, usage.input_characters),
                           (attr.LLM_COST_USAGE_IMAGES, usage.images),
                           (attr.LLM_COST_USAGE_RERANK_SEARCHES, usage.rerank_searches)):
            if count:
                values[key] = count
    return values


# ---------------------------------------------------------------------------------------------
# wrappers: one factory, two thin entry points (sync and async) that differ only in `await`
# ---------------------------------------------------------------------------------------------


def read_request(
    ctx: CallContext, endpoint: Endpoint, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Request | None:
    """The request to instrument, or None to pass the call straight through."""
    if not ctx.active or _sending.get() or not _state.settings().enabled:
        return None
    try:
        return endpoint.read_request(instance, args, kwargs)
    except Exception:
        exception_once(_logger, ("read-request", endpoint.read_request), "otel-llm-cost: could not read a request")
        return None


def _complete(call: LLMCall, endpoint: Endpoint, result: Any, parsed: Any = None) -> Any:
    """Finish a plain response, or wrap a stream so it finishes when the stream does. A raw response
    (`with_raw_response`) is read through the object it parses to (`parsed`, when the caller already
    awaited it), and keeps its own type."""
    try:
        stream = endpoint.is_stream(call.request, result)
        raw = parsed is not None or is_raw_response(result, stream)
        if raw and parsed is None:
            parsed = parsed_raw_response(result)
        if endpoint.until_done is not None:
            pending = endpoint.until_done(result, call)
            if pending is not None:
                return pending
        if stream:
            assert endpoint.new_accumulator is not None
            accumulator = endpoint.new_accumulator(call.request)
            key = endpoint.stream_key
            if raw:
                replace_parsed_raw_response(result, StreamProxy(parsed, call, accumulator))
            elif key is None:
                return StreamProxy(result, call, accumulator)
            else:
                result[key] = StreamProxy(result[key], call, accumulator)
            return result
        outcome = endpoint.read_response(parsed if raw else result)
    except Exception:
        exception_once(_logger, ("read-response", endpoint.read_response), "otel-llm-cost: could not read a response")
        outcome = Outcome()
    call.finish(outcome)
    return result


def _may_resend(endpoint: Endpoint, request: Request, error: BaseException) -> bool:
    if endpoint.resend is None:
        return False
    try:
        return endpoint.resend(request, error)
    except Exception:
        exception_once(_logger, ("resend", endpoint.resend), "otel-llm-cost: could not judge a rejected request")
        return False


def _refused_answer(endpoint: Endpoint | None, request: Request, refusal: BudgetExceededError) -> Answer | None:
    """The answer to give instead of sending, when the refusing budget says `respond` and the SDK file
    knows how to answer this operation; None to raise."""
    if refusal.policy != "respond" or endpoint is None or endpoint.answer_refusal is None:
        return None
    try:
        return endpoint.answer_refusal(request, refusal_text(refusal))
    except Exception:
        exception_once(_logger, ("answer-refusal", endpoint.answer_refusal),
                       "otel-llm-cost: could not build a refused answer; the call is refused with an error")
        return None


def _deliver(answer: Answer, request: Request, send: Callable[[], Any]) -> Any:
    """The refused answer, as the SDK returns it: a `Wire` body goes through the SDK's own parsing (the
    transport answers in place of the network), a `Direct` answer is the value itself, a `Resend` is
    the SDK's own answer to the changed arguments."""
    if isinstance(answer, Direct):
        return answer.value
    if isinstance(answer, Resend):
        request.kwargs.update(answer.changes)
    result = _serving(answer, send)
    if inspect.isgenerator(result):  # an SDK that sends only once its generator runs (google-genai, cohere)
        return _served_generator(answer, result)
    if inspect.isasyncgen(result):
        return _served_async_generator(answer, result)
    return result


async def _as_async_iterator(chunks: Any) -> Any:
    for chunk in chunks:
        yield chunk


@contextlib.contextmanager
def _answering(answer: Answer) -> Iterator[None]:
    """While inside: the transport answers `answer` (a `Wire`) in place of the network, and our wrappers
    pass the SDK's inner calls through."""
    served = serve(answer) if isinstance(answer, Wire) else None
    sending = _sending.set(True)
    try:
        yield
    finally:
        _sending.reset(sending)
        if served is not None:
            unserve(served)


def _serving(answer: Answer, send: Callable[[], Any]) -> Any:
    with _answering(answer):
        return send()


def _served_generator(answer: Answer, generator: Any) -> Any:
    """The SDK's generator, each step run while the transport answers `answer`."""
    while True:
        try:
            item = _serving(answer, lambda: next(generator))
        except StopIteration as stop:
            return stop.value
        yield item


async def _served_async_generator(answer: Answer, generator: Any) -> Any:
    """`_served_generator` for async generators."""
    while True:
        try:
            with _answering(answer):
                item = await generator.__anext__()
        except StopAsyncIteration:
            return
        yield item


async def _deliver_async(answer: Answer, request: Request, send: Callable[[], Awaitable[Any]]) -> Any:
    """`_deliver` for coroutines. A `Direct` stream of chunks is delivered as the async iterator an async
    method returns."""
    if isinstance(answer, Direct):
        return _as_async_iterator(answer.value) if inspect.isgenerator(answer.value) else answer.value
    if isinstance(answer, Resend):
        request.kwargs.update(answer.changes)
    with _answering(answer):
        result = await send()
    if inspect.isasyncgen(result):  # google-genai's async stream sends once its generator runs
        return _served_async_generator(answer, result)
    return result


def run_sync(ctx: CallContext, endpoint: Endpoint, request: Request, send: Callable[[], Any]) -> Any:
    """The whole lifecycle around `send()`, which performs the SDK call (reading `request.kwargs`)."""
    call = LLMCall.begin(ctx, request, endpoint)
    if call is None:
        return send()
    if not isinstance(call, LLMCall):
        return _deliver(call, request, send)
    tokens = call.make_current()
    try:
        try:
            result = send()
        except Exception as error:
            if not _may_resend(endpoint, request, error):
                raise
            result = send()
    except BaseException as error:
        call.fail(error)
        raise
    finally:
        call.release(tokens)
    return _complete(call, endpoint, result)


async def run_async(ctx: CallContext, endpoint: Endpoint, request: Request, send: Callable[[], Awaitable[Any]]) -> Any:
    """`run_sync` for coroutines: the same lifecycle, only the send is awaited."""
    call = LLMCall.begin(ctx, request, endpoint)
    if call is None:
        return await send()
    if not isinstance(call, LLMCall):
        return await _deliver_async(call, request, send)
    tokens = call.make_current()
    try:
        try:
            result = await send()
        except Exception as error:
            if not _may_resend(endpoint, request, error):
                raise
            result = await send()
    except BaseException as error:
        call.fail(error)
        raise
    finally:
        call.release(tokens)
    return _complete(call, endpoint, result, await _parsed_async_raw_response(endpoint, request, result))


async def _parsed_async_raw_response(endpoint: Endpoint, request: Request, result: Any) -> Any:
    """What an async raw response parses to (cached by the SDK, so the app's own `await parse()` gets
    the same object), or None when `result` is not one."""
    try:
        if is_async_raw_response(result, endpoint.is_stream(request, result)):
            return await result.parse()
    except Exception:
        exception_once(_logger, "async-raw-parse", "otel-llm-cost: could not read an async raw response")
    return None


def wrap_endpoint(ctx: CallContext, endpoint: Endpoint, *, is_async: bool) -> Callable[..., Any]:
    """A wrapt wrapper for one SDK method: read the request, then run the lifecycle around it."""

    def sync_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request = read_request(ctx, endpoint, instance, args, kwargs)
        if request is None:
            return wrapped(*args, **kwargs)
        return run_sync(ctx, endpoint, request, lambda: wrapped(*args, **request.kwargs))

    async def async_wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        request = read_request(ctx, endpoint, instance, args, kwargs)
        if request is None:
            return await wrapped(*args, **kwargs)
        return await run_async(ctx, endpoint, request, lambda: wrapped(*args, **request.kwargs))

    return async_wrapper if is_async else sync_wrapper
