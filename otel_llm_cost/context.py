"""`session()`: who a call is for (session, user, tags), carried in contextvars and OTel baggage.

contextvars make it follow the code into asyncio tasks; baggage makes it cross process boundaries
with the W3C ``baggage`` header (``session.id``, ``user.id``, ``llm_cost.tag.<key>``), so a service
that receives a request from an instrumented caller attributes its calls to the same session.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType

from opentelemetry import baggage, context

from otel_llm_cost.attributes import LLM_COST_TAG_PREFIX, SESSION_ID, USER_ID

__all__ = ["SessionContext", "session", "current_session"]


@dataclass(frozen=True, slots=True)
class SessionContext:
    session_id: str | None = None
    user_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    job_runs: tuple[str, ...] = ()
    """The runs of `llm_cost.track()` the call is in, outermost first: what job budgets are keyed by, so a
    job's budget caps the calls of the jobs nested in it too (never propagated to other processes)."""


_current: ContextVar[SessionContext | None] = ContextVar("otel_llm_cost_session", default=None)


@contextmanager
def session(session_id: str | None = None, *, user_id: str | None = None, _job_run: str | None = None,
            **tags: str) -> Iterator[SessionContext]:
    """Attribute every LLM call inside the block to this session, user and tags.

    Nested blocks inherit what they do not set: ``with session(user_id="a"): with session("s1"): ...``
    gives calls in the inner block session ``s1`` and user ``a``.
    """
    parent = current_session()
    merged_tags = dict(parent.tags) if parent else {}
    merged_tags.update({str(k): str(v) for k, v in tags.items() if v is not None})
    ctx = SessionContext(
        session_id=str(session_id) if session_id is not None else (parent.session_id if parent else None),
        user_id=str(user_id) if user_id is not None else (parent.user_id if parent else None),
        tags=MappingProxyType(merged_tags),
        job_runs=(parent.job_runs if parent else ()) + ((_job_run,) if _job_run else ()),
    )
    otel_ctx = context.get_current()
    if ctx.session_id is not None:
        otel_ctx = baggage.set_baggage(SESSION_ID, ctx.session_id, otel_ctx)
    if ctx.user_id is not None:
        otel_ctx = baggage.set_baggage(USER_ID, ctx.user_id, otel_ctx)
    for key, value in merged_tags.items():
        otel_ctx = baggage.set_baggage(LLM_COST_TAG_PREFIX + key, value, otel_ctx)
    otel_token = context.attach(otel_ctx)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)
        context.detach(otel_token)


def current_session() -> SessionContext | None:
    """The innermost `session()`, or one rebuilt from incoming baggage (another process's session)."""
    ctx = _current.get()
    if ctx is not None:
        return ctx
    entries = baggage.get_all()
    if not entries:
        return None
    session_id = entries.get(SESSION_ID)
    user_id = entries.get(USER_ID)
    tags = {
        key[len(LLM_COST_TAG_PREFIX):]: str(value)
        for key, value in entries.items()
        if key.startswith(LLM_COST_TAG_PREFIX)
    }
    if session_id is None and user_id is None and not tags:
        return None
    return SessionContext(
        session_id=str(session_id) if session_id is not None else None,
        user_id=str(user_id) if user_id is not None else None,
        tags=MappingProxyType(tags),
    )
