"""A shared budget store that goes down and comes back: a real redis-server, stopped and restarted
during the run. Nothing raises into the app, nothing is lost, nothing is counted twice, and each
outage is logged once when it starts and once when it ends."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from conftest import RedisServer

import otel_llm_cost as llm_cost
from otel_llm_cost import _log, _state
from otel_llm_cost.budget import Budget, BudgetExceededError, BudgetStoreUnavailableError
from otel_llm_cost.budget.guard import BudgetGuard
from otel_llm_cost.budget.outage import OutageBuffer
from otel_llm_cost.budget.stores import Claim, RedisStore, SqliteStore, StoreUnavailable
from otel_llm_cost.testing.fake import Fault

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Hi"}]
# gpt-4o-mini $0.15 / $0.60 per 1M tokens (openai.com/api/pricing, 2026-11-25): 30 in + 12 out
ANSWERED = 30 * Decimal("0.15") / 10**6 + 12 * Decimal("0.60") / 10**6


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path, persist=True).start()
    yield server
    if server.process is not None:
        server.stop()


def _guard(url: str, on_failure: str = "allow") -> BudgetGuard:
    store = RedisStore(url, prefix=f"outage-{uuid.uuid4().hex[:8]}")
    store.PAUSE_AFTER_FAILURE = 0.1
    guard = BudgetGuard(store, on_store_failure=on_failure)
    guard.set(Budget.create(1, name="global"))
    return guard


def _create(client):
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=50)


def _redis_store(guard: BudgetGuard) -> RedisStore:
    """The Redis store under the guard's lease and outage layers."""
    store = guard.store
    while not isinstance(store, RedisStore):
        store = store.store
    return store


def _until_flushed(guard: BudgetGuard, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not guard.flush() or next(iter(guard.statuses())).stale:  # applied, and the store answers again
        assert time.monotonic() < deadline, "queued spend was never applied"
        time.sleep(0.05)


def test_an_outage_loses_nothing_counts_nothing_twice_and_never_raises(instrumented, fake, redis_server, caplog):
    fake.set_model(MODEL, input_tokens=30, output_tokens=12)
    guard = _guard(redis_server.url)
    _state.set_budget_hook(guard)
    client = openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0)
    try:
        with caplog.at_level(logging.DEBUG, logger="otel_llm_cost"):
            _create(client)  # settled while Redis is up
            assert guard.status("global").spent == ANSWERED

            # a call in flight when Redis goes down: reserved before, settled during the outage
            fake.inject(Fault(delay=0.6))
            in_flight = threading.Thread(target=_create, args=(client,))
            in_flight.start()
            time.sleep(0.2)
            redis_server.stop()
            in_flight.join()
            for _ in range(3):  # calls during the outage go ahead (policy allow)
                _create(client)
            stale = guard.status("global")  # no exception: the last state known, plus the spend queued
            assert stale.stale is True and stale.spent == ANSWERED * 5
            assert [s.stale for s in guard.statuses()] == [True]

            redis_server.start()
            _until_flushed(guard)
            _create(client)
            fresh = guard.status("global")
            assert (fresh.spent, fresh.reserved, fresh.stale) == (ANSWERED * 6, 0, False)
            assert guard.flush() and guard.status("global").spent == ANSWERED * 6  # replaying again adds nothing
    finally:
        _state.set_budget_hook(None)
    assert fake.request_count("/chat/completions") == 6
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(" (")[0].split(" after ")[0] for r in warnings] == [
        "otel-llm-cost: budget store unreachable", "otel-llm-cost: budget store reachable again"]
    assert all(r.exc_info is None for r in warnings)
    assert [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]  # the traceback, at DEBUG


def test_budget_remaining_and_budgets_report_stale_state_instead_of_raising(redis_server, settings):
    from otel_llm_cost import _setup

    _setup.reset_for_tests()
    try:
        llm_cost.configure(budget_store=redis_server.url, instrument=False)
        llm_cost.set_budget(2, name="team")
        runtime = _setup.runtime()
        _redis_store(runtime.guard).PAUSE_AFTER_FAILURE = 0.1
        runtime.guard.record_unreserved(Decimal("0.5"), None)
        assert llm_cost.budget_remaining("team").remaining == Decimal("1.5")
        redis_server.stop()
        runtime.guard.record_unreserved(Decimal("0.25"), None)  # queued
        status = llm_cost.budget_remaining("team")
        assert (status.spent, status.remaining, status.stale) == (Decimal("0.75"), Decimal("1.25"), True)
        assert "stale=True" in repr(status)
        assert [b.name for b in llm_cost.budgets()] == ["team"]
        redis_server.start()
        _until_flushed(runtime.guard)
        assert llm_cost.budget_remaining("team").spent == Decimal("0.75")
    finally:
        _setup.reset_for_tests()


def test_refuse_policy_refuses_calls_while_the_store_is_down(instrumented, fake, redis_server):
    guard = _guard(redis_server.url, on_failure="refuse")
    _state.set_budget_hook(guard)
    client = openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0)
    try:
        redis_server.stop()
        with pytest.raises(BudgetStoreUnavailableError, match="budget store is unreachable") as refused:
            _create(client)
        assert isinstance(refused.value, BudgetExceededError)
        assert fake.request_count("/chat/completions") == 0
        redis_server.start()
        deadline = time.monotonic() + 10
        while True:
            try:
                _create(client)
                break
            except BudgetStoreUnavailableError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        _state.set_budget_hook(None)
    assert fake.request_count("/chat/completions") == 1


def test_a_write_replayed_after_an_ambiguous_failure_is_applied_once(redis_server):
    """The connection may drop after Redis applied a write but before its reply: the replay carries
    the same operation id, and Redis applies it at most once."""
    store = RedisStore(redis_server.url, prefix=f"once-{uuid.uuid4().hex[:8]}")
    held = store.reserve([Claim("b", "", "total", Decimal("0.3"), Decimal(1))])
    store.settle(held, Decimal("0.2"), op_id="op-1")
    store.settle(held, Decimal("0.2"), op_id="op-1")
    store.add("b", "", "total", Decimal("0.1"), op_id="op-2")
    store.add("b", "", "total", Decimal("0.1"), op_id="op-2")
    assert store.usage("b", "", "total") == (Decimal("0.3"), Decimal(0))


def test_the_outage_queue_is_bounded_and_says_what_it_dropped(caplog):
    class Down:
        def add(self, *args, **kwargs):
            raise StoreUnavailable("down")

        usage = reserve = settle = keys = clear = apply_writes = add

        def quantize(self, amount):
            return amount

    buffer = OutageBuffer(Down(), max_pending=3)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for _ in range(5):
            buffer.add("b", "", "total", Decimal("0.1"))
    assert (buffer.pending, buffer.dropped) == (3, 2)
    assert buffer.usage("b", "", "total") == (Decimal("0.3"), Decimal(0))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "queue is full" in messages[1]


def test_every_outage_is_logged_again_after_a_recovery(redis_server, caplog):
    guard = _guard(redis_server.url)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for _ in range(2):
            redis_server.stop()
            for _ in range(5):
                guard.status("global")
            redis_server.start()
            _redis_store(guard)._paused_until = 0  # no need to wait out the pause in a test
            assert guard.status("global").stale is False
    lines = [r.getMessage().split(" (")[0].split(" after ")[0] for r in caplog.records]
    assert lines == ["otel-llm-cost: budget store unreachable", "otel-llm-cost: budget store reachable again"] * 2


def test_a_flood_of_distinct_warnings_never_silences_a_new_problem(redis_server, caplog):
    """Before: 4,096 per-session warnings filled the log-once table, and a Redis outage then logged nothing."""
    logger = logging.getLogger("otel_llm_cost.test")
    guard = _guard(redis_server.url)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for index in range(5_000):
            _log.warn_once(logger, ("per-session", index), "session %d", index)
        _log.warn_once(logger, "a new kind", "a new kind of problem")
        redis_server.stop()
        guard.status("global")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5_002
    assert messages[-2] == "a new kind of problem" and "budget store unreachable" in messages[-1]


def test_a_budget_warning_is_not_repeated_for_every_session(instrumented, fake, caplog):
    from otel_llm_cost.budget.stores import MemoryStore
    from otel_llm_cost.context import session

    guard = BudgetGuard(MemoryStore())
    guard.set(Budget.create(0, name="soft-per-session", scope="session", on_exceed="warn"))
    _state.set_budget_hook(guard)
    client = openai.OpenAI(base_url=fake.openai_url, api_key="sk-test", max_retries=0)
    try:
        with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
            for index in range(20):
                with session(f"s-{index}"):
                    _create(client)
    finally:
        _state.set_budget_hook(None)
    assert len([r for r in caplog.records if "soft-per-session" in r.getMessage()]) == 1


_KILLED_WORKER = r"""
import sys, warnings
warnings.simplefilter("ignore")
import openai
from opentelemetry.sdk.trace import TracerProvider
from otel_llm_cost import _state
from otel_llm_cost.budget import Budget
from otel_llm_cost.budget.guard import BudgetGuard
from otel_llm_cost.budget.stores import RedisStore, SqliteStore
from otel_llm_cost.instrumentation import instrument

kind, where, base_url = sys.argv[1:4]
store = SqliteStore(where, ttl=1.0) if kind == "sqlite" else RedisStore(where, ttl=1.0, prefix="killed")
guard = BudgetGuard(store)
guard.set(Budget.create(1, name="shared"))
_state.set_budget_hook(guard)
instrument(tracer_provider=TracerProvider())
client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0)
client.chat.completions.create(model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
"""


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_process_killed_between_reserve_and_settle_holds_nothing_after_the_expiry(fake, tmp_path, kind, request):
    where = str(tmp_path / "budgets.db") if kind == "sqlite" else request.getfixturevalue("redis_url")
    fake.set_delay(30)  # the worker waits on its answer, holding its reservation
    worker = subprocess.Popen([sys.executable, "-c", _KILLED_WORKER, kind, where, fake.openai_url],
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    store = SqliteStore(where, ttl=1.0) if kind == "sqlite" else RedisStore(where, ttl=1.0, prefix="killed")
    deadline = time.monotonic() + 30
    while fake.request_count("/chat/completions") == 0:
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.02)
    assert store.usage("shared", "", "total")[1] > 0  # held while the worker waits
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(1.2)
    assert store.usage("shared", "", "total") == (Decimal(0), Decimal(0))
    assert isinstance(store.reserve([Claim("shared", "", "total", Decimal("0.9"), Decimal(1))]), list)
    if kind == "sqlite":
        import sqlite3

        assert sqlite3.connect(where).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    else:
        store.clear()
