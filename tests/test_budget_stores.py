"""Every budget store keeps the same contract: an atomic all-or-nothing reservation across budgets,
exact settled spend, reservations that expire, and per-key listings. Redis is a real redis-server."""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest

from otel_llm_cost.budget.stores import Claim, MemoryStore, RedisStore, Refusal, SqliteStore

D = Decimal


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster", "redis-sentinel"])
def store_and_clock(request, tmp_path):
    """Every store, one contract: Redis alone, a 3-master Redis Cluster and Redis behind Sentinel."""
    clock = Clock()
    if request.param == "memory":
        return MemoryStore(ttl=60, clock=clock), clock
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "budgets.db", ttl=60, clock=clock), clock
    url = request.getfixturevalue({"redis": "redis_url", "redis-cluster": "redis_cluster_url",
                                   "redis-sentinel": "redis_sentinel_url"}[request.param])
    return RedisStore(url, ttl=60, clock=clock, prefix=f"test-{uuid.uuid4().hex[:8]}"), clock


def test_reserve_settle_and_refuse(store_and_clock):
    store, _ = store_and_clock
    claim = Claim("daily", "", "day:2026-11-25", D("0.4"), D("1"))
    first = store.reserve([claim])
    assert isinstance(first, list) and store.usage("daily", "", "day:2026-11-25") == (D(0), D("0.4"))
    store.settle(first, D("0.25"))
    assert store.usage("daily", "", "day:2026-11-25") == (D("0.25"), D(0))
    assert isinstance(store.reserve([claim]), list)  # 0.25 spent + 0.4 held
    refusal = store.reserve([claim])  # 0.25 + 0.4 + 0.4 > 1
    assert isinstance(refusal, Refusal)
    assert (refusal.claim, refusal.spent, refusal.reserved) == (claim, D("0.25"), D("0.4"))


def test_a_refusal_by_any_budget_reserves_on_none(store_and_clock):
    store, _ = store_and_clock
    roomy = Claim("global", "", "total", D("0.5"), D("100"))
    tight = Claim("session", "s1", "total", D("0.5"), D("0.1"))
    assert isinstance(store.reserve([roomy, tight]), Refusal)
    assert store.usage("global", "", "total") == (D(0), D(0))


def test_warn_budgets_record_but_never_refuse(store_and_clock):
    store, _ = store_and_clock
    claim = Claim("soft", "", "total", D("5"), None)
    assert isinstance(store.reserve([claim]), list) and isinstance(store.reserve([claim]), list)
    assert store.usage("soft", "", "total") == (D(0), D("10"))


def test_reservations_expire(store_and_clock):
    store, clock = store_and_clock
    claim = Claim("b", "", "total", D("0.6"), D("1"))
    assert isinstance(store.reserve([claim]), list)  # ... and the process dies before settling
    assert isinstance(store.reserve([claim]), Refusal)
    clock.now += 61
    assert store.usage("b", "", "total") == (D(0), D(0))
    assert isinstance(store.reserve([claim]), list)


def test_keys_add_and_clear(store_and_clock):
    store, _ = store_and_clock
    store.add("per-session", "s1", "total", D("0.1"))
    store.add("per-session", "s2", "total", D("0.3"))
    store.add("per-session", "s2", "total", D("0.2"))
    store.add("per-session", "s3", "day:2026-11-25", D("9"))
    store.add("other", "x", "total", D("1"))
    assert sorted(store.keys("per-session", "total")) == [("s1", D("0.1"), D(0)), ("s2", D("0.5"), D(0))]
    store.clear("per-session")
    assert store.keys("per-session", "total") == [] and store.usage("other", "x", "total") == (D(1), D(0))
    store.clear()
    assert store.usage("other", "x", "total") == (D(0), D(0))


def test_sub_cent_amounts_stay_exact(store_and_clock):
    store, _ = store_and_clock
    for _ in range(1_000):
        store.add("tiny", "", "total", D("0.000001"))  # a thousand $0.000001 calls
    assert store.usage("tiny", "", "total")[0] == D("0.001")


def test_32_threads_race_for_ten_reservations(store_and_clock):
    store, _ = store_and_clock
    claim = Claim("race", "", "total", D("0.1"), D("1"))
    granted = []
    barrier = threading.Barrier(32)

    def worker() -> None:
        barrier.wait()
        result = store.reserve([claim])
        if isinstance(result, list):
            granted.append(result)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 10
    assert store.usage("race", "", "total") == (D(0), D("1"))


def test_an_unreachable_store_allows_calls_and_says_so_once(instrumented, openai_client, fake, caplog):
    """A budget outage must not take the app down: the call goes ahead, and the failure is logged once."""
    import logging

    from otel_llm_cost import _state
    from otel_llm_cost.budget import Budget
    from otel_llm_cost.budget.guard import BudgetGuard

    guard = BudgetGuard(RedisStore("redis://127.0.0.1:1/0"))  # nothing listens on port 1
    guard.set(Budget.create(1, name="global"))
    _state.set_budget_hook(guard)
    try:
        with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
            for _ in range(3):
                openai_client.chat.completions.create(model="gpt-4o-mini", max_tokens=10, messages=[
                    {"role": "user", "content": "Hi"}])
    finally:
        _state.set_budget_hook(None)
    assert fake.request_count("/chat/completions") == 3
    outage = [r for r in caplog.records if "budget store unreachable" in r.getMessage()]
    assert len(outage) == 1 and outage[0].levelname == "WARNING" and outage[0].exc_info is None
    assert "calls are allowed and their spend is queued" in outage[0].getMessage()
    assert len(caplog.records) == 1


def test_budget_gauges_of_an_unreachable_store_report_the_last_known_state(caplog):
    import logging

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel_llm_cost.budget import Budget
    from otel_llm_cost.budget.guard import BudgetGuard
    from otel_llm_cost.metrics import CostMetrics

    guard = BudgetGuard(RedisStore("redis://127.0.0.1:1/0"))
    guard.set(Budget.create(1, name="global"))
    reader = InMemoryMetricReader()
    CostMetrics(MeterProvider(metric_readers=[reader]), guard=guard)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            data = reader.get_metrics_data()
    limits = [point.value for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
              if m.name == "llm_cost.budget.limit" for point in m.data.data_points]
    assert limits == [1.0]
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["otel-llm-cost: budget store unreachable"]


def test_redis_keeps_a_window_only_a_while_after_it_ends_and_total_for_ever(redis_url):
    import redis

    store = RedisStore(redis_url, prefix=f"test-{uuid.uuid4().hex[:8]}")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    windows = {"2026-11-25T10": 2, "2026-11-25": 3, "2026-W48": 15, "2026-11": 63}
    for window in (*windows, "total"):
        store.add("b", "k", window, D("0.01"))
        assert isinstance(store.reserve([Claim("b", "k", window, D("0.01"), D("1"))]), list)
    for window, days in windows.items():
        for kind in ("spent", "held"):
            name = f"{store._tag}:{kind}:" + store._slot("b", "k", window)
            assert 0 < client.ttl(name) <= days * 86_400, (window, kind)
    assert client.ttl(f"{store._tag}:spent:" + store._slot("b", "k", "total")) == -1  # no expiry


def test_redis_clear_is_safe_with_glob_characters_in_the_prefix(redis_url):
    odd = RedisStore(redis_url, prefix="team*[a]?")
    plain = RedisStore(redis_url, prefix="team-b")
    odd.add("b", "", "total", D("1"))
    plain.add("b", "", "total", D("2"))
    odd.clear()
    assert odd.usage("b", "", "total") == (D(0), D(0))
    assert plain.usage("b", "", "total") == (D(2), D(0))
    plain.clear()


_RACER = r"""
import sys, threading
from decimal import Decimal
from otel_llm_cost.budget.stores import Claim, store_from_url

store = store_from_url(sys.argv[1])
claim = Claim(sys.argv[2], "", "total", Decimal("0.1"), Decimal("10"))
granted = []
lock = threading.Lock()
barrier = threading.Barrier(16)

def worker():
    barrier.wait()
    for _ in range(4):
        result = store.reserve([claim])
        if isinstance(result, list):
            store.settle(result, Decimal("0.1"))
            with lock:
                granted.append(1)

threads = [threading.Thread(target=worker) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(len(granted), flush=True)
"""


@pytest.mark.parametrize("fixture", ["redis_url", "redis_cluster_url", "redis_sentinel_url"])
def test_4_processes_of_16_threads_never_pass_a_shared_redis_budget(request, fixture):
    """256 reservations of $0.10 race for $10 on Redis, a 3-master Cluster and Sentinel: exactly 100 win."""
    import os
    import subprocess
    import sys

    url = request.getfixturevalue(fixture)
    budget = f"race-{uuid.uuid4().hex[:8]}"
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, url, budget], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONWARNINGS": "ignore"}) for _ in range(4)]
    granted = 0
    for racer in racers:
        out, _ = racer.communicate(timeout=120)
        assert racer.returncode == 0
        granted += int(out)
    assert granted == 100
    from otel_llm_cost.budget.stores import store_from_url

    assert store_from_url(url).usage(budget, "", "total") == (D("10"), D(0))


def test_a_lapsed_reservation_settled_late_frees_nothing_twice(store_and_clock):
    """Each slot keeps the sum it holds: a reservation that lapsed (its process stalled) and is settled
    afterwards must not take its amount off the sum again, and the spend still counts."""
    store, clock = store_and_clock
    claim = Claim("late", "", "total", D("0.4"), D("1"))
    stalled = store.reserve([claim])
    clock.now += 61  # lapsed
    fresh = store.reserve([claim])
    assert isinstance(fresh, list) and store.usage("late", "", "total") == (D(0), D("0.4"))
    store.settle(stalled, D("0.3"))
    assert store.usage("late", "", "total") == (D("0.3"), D("0.4"))
    store.settle(fresh, D("0.1"))
    assert store.usage("late", "", "total") == (D("0.4"), D(0))


def test_a_thousand_reservations_in_flight_are_held_exactly(store_and_clock):
    store, _ = store_and_clock
    claim = Claim("many", "", "total", D("0.001"), D("1"))
    held = [store.reserve([claim]) for _ in range(1_000)]
    assert all(isinstance(h, list) for h in held) and isinstance(store.reserve([claim]), Refusal)
    assert store.usage("many", "", "total") == (D(0), D(1))
    for reservation in held[:600]:
        store.settle(reservation, D("0.0005"))
    assert store.usage("many", "", "total") == (D("0.3"), D("0.4"))
