"""session() follows the code into threads and asyncio tasks, and crosses processes as baggage."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import baggage, context
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from otel_llm_cost.context import current_session, session


def test_nesting_inherits_what_it_does_not_set():
    with session(user_id="alice", team="search"):
        with session("s1", feature="summarize") as inner:
            assert (inner.session_id, inner.user_id) == ("s1", "alice")
            assert dict(inner.tags) == {"team": "search", "feature": "summarize"}
        assert current_session().session_id is None
    assert current_session() is None


def test_each_thread_keeps_its_own_session():
    def work(n: int) -> tuple[str, str]:
        with session(f"s{n}", user_id=f"u{n}"):
            ctx = current_session()
            return ctx.session_id, ctx.user_id

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(work, range(32))) == [(f"s{n}", f"u{n}") for n in range(32)]


def test_asyncio_tasks_inherit_and_isolate():
    async def child(expected: str) -> str:
        await asyncio.sleep(0)
        return current_session().session_id

    async def parent(n: int) -> str:
        with session(f"task-{n}"):
            return await asyncio.create_task(child(f"task-{n}"))

    async def main() -> list[str]:
        return await asyncio.gather(*(parent(n) for n in range(50)))

    assert asyncio.run(main()) == [f"task-{n}" for n in range(50)]


def test_ids_travel_as_w3c_baggage_to_another_process():
    carrier: dict[str, str] = {}
    with session("chat-7", user_id="bob", feature="search"):
        W3CBaggagePropagator().inject(carrier)
    assert "baggage" in carrier
    # the receiving service: extract, attach, and the session is there
    token = context.attach(W3CBaggagePropagator().extract(carrier))
    try:
        received = current_session()
        assert (received.session_id, received.user_id, dict(received.tags)) == ("chat-7", "bob", {"feature": "search"})
        assert baggage.get_baggage("session.id") == "chat-7"
    finally:
        context.detach(token)
