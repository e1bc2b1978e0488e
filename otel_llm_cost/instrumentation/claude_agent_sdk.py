"""Anthropic's Claude Agent SDK (`claude-agent-sdk`): one `query()` is one span, whatever the agent does
inside it.

Knows claude-agent-sdk's shapes and nothing else. The SDK runs the Claude Code CLI as a subprocess and
streams its messages back; the model calls happen in that process, out of our reach. What the SDK hands
back is the run's bill: the final `ResultMessage` carries the usage summed over every turn and the CLI's
own `total_cost_usd`, which becomes the span's provider-reported cost (checked against our price for the
same usage like any other). The model is the one `modelUsage` billed most.

Budgets: the run is reserved as a call is, before the CLI starts, and since the CLI enforces a cap of its
own (`max_budget_usd`), the run is handed the least any applicable budget has left (or the app's own cap,
when lower). The app's options object is never changed: the SDK gets a copy.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from otel_llm_cost import _state
from otel_llm_cost.context import current_session
from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import field, given, text
from otel_llm_cost.providers import reported_cost
from otel_llm_cost.usage import usage_from_anthropic_messages

__all__ = ["ClaudeAgentSDKInstrumentor"]


def _capped(options: Any) -> Any:
    """`options` with `max_budget_usd` lowered to what the budgets have left; the same object when no
    budget applies or the app's own cap is already lower."""
    left = _state.budget_hook().headroom(current_session())
    if left is None or options is None or not dataclasses.is_dataclass(options):
        return options
    own = getattr(options, "max_budget_usd", None)
    if isinstance(own, (int, float)) and Decimal(str(own)) <= left:
        return options
    return dataclasses.replace(options, max_budget_usd=float(left))


def _read_query(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    named = dict(zip(("prompt", "options", "transport"), args))
    named.update(kwargs)
    options = given(named.get("options"))
    prompt = named.get("prompt")
    send = {**kwargs, "options": _capped(options)} if "options" in kwargs else kwargs  # as `query()` passes it
    return Request(
        operation="invoke_agent",
        provider="anthropic",
        api="anthropic.messages",
        model=text(options, "model"),
        kwargs=send,
        stream=True,
        prompt=prompt if isinstance(prompt, str) else "",
        system=text(options, "system_prompt"),
        model_key=None,  # the CLI picks models per turn
    )


class _Run:
    """Watches the run's messages; the `ResultMessage` is the bill."""

    __slots__ = ("_result",)

    def __init__(self, request: Request) -> None:
        self._result: Any = None

    def observe(self, message: Any) -> bool:
        if type(message).__name__ == "ResultMessage":
            self._result = message
        return True

    def outcome(self, complete: bool) -> Outcome:
        return _read_result(self._result) if self._result is not None else Outcome(estimate_unreported=True)


def _read_result(result: Any) -> Outcome:
    usage = field(result, "usage")
    by_model = field(result, "model_usage")
    model = None
    if isinstance(by_model, dict) and by_model:
        model = max(by_model, key=lambda name: float(field(by_model[name], "costUSD") or 0))
    total = field(result, "total_cost_usd")
    return Outcome(
        usage=usage_from_anthropic_messages(usage) if isinstance(usage, dict) else None,
        response_model=model,
        response_id=field(result, "session_id") or None,
        finish_reasons=(str(field(result, "subtype")),) if field(result, "subtype") else (),
        provider_cost=reported_cost(total) if isinstance(total, (int, float)) else None,
    )


QUERY = Endpoint(_read_query, _read_result, _Run)


class ClaudeAgentSDKInstrumentor(LLMInstrumentor):
    """A span per Claude Agent SDK `query()`, priced by the CLI's own bill, its cap set by our budgets."""

    dependencies = ("claude-agent-sdk >= 0.1",)
    # `query()` is an async generator function: called, it returns the run's message stream at once
    targets = (Target("claude_agent_sdk._internal.client", "InternalClient.process_query", QUERY),)
