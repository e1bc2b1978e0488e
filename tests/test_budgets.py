"""Budgets are never overspent: real clients race for them from threads, tasks and processes."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import our_spans

from otel_llm_cost.budget import Budget, BudgetError, BudgetExceededError
from otel_llm_cost.budget.guard import BudgetGuard, window_id
from otel_llm_cost.budget.loading import load_budgets_file
from otel_llm_cost.budget.stores import Claim, MemoryStore, SqliteStore, store_from_url
from otel_llm_cost.config import ConfigError
from otel_llm_cost.context import session
from otel_llm_cost.processor import CostSpanProcessor

MESSAGES = [{"role": "user", "content": "Write one short sentence about budgets."}]


@pytest.fixture
def processor(instrumented, guard):
    processor = CostSpanProcessor(guard=guard)
    instrumented.add_span_processor(processor)
    return processor


def _spent(guard: BudgetGuard, name: str, key: str = "") -> Decimal:
    status = guard.status(name, key or None)
    return status.spent


def test_64_threads_never_overspend_and_refused_calls_are_never_sent(guard, processor, openai_client, fake):
    fake.set_model("gpt-4o-mini", output_tokens=50)  # input counted from the prompt, like a real API
    guard.set(Budget.create("0.0005", name="tiny"))
    allowed, refused = [], []
    barrier = threading.Barrier(64)

    def worker() -> None:
        barrier.wait()
        for _ in range(3):
            try:
                openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50)
                allowed.append(1)
            except BudgetExceededError:
                refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = _spent(guard, "tiny")
    assert 0 < spent <= Decimal("0.0005")
    assert len(refused) > 0 and len(allowed) > 0
    assert fake.request_count("/chat/completions") == len(allowed)
    assert guard.status("tiny").reserved == 0  # every reservation settled
    assert processor.totals.session(None).cost == spent


def test_200_asyncio_tasks_never_overspend(guard, processor, async_openai_client, fake):
    fake.set_model("gpt-4o-mini", output_tokens=50)
    guard.set(Budget.create("0.0004", name="tiny"))

    async def one() -> bool:
        try:
            await async_openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50)
            return True
        except BudgetExceededError:
            return False

    async def main() -> list[bool]:
        return await asyncio.gather(*(one() for _ in range(200)))

    results = asyncio.run(main())
    assert 0 < _spent(guard, "tiny") <= Decimal("0.0004")
    assert fake.request_count("/chat/completions") == sum(results) < 200


def test_refusal_names_the_budget_limit_spent_and_estimate(guard, openai_client, span_exporter, fake):
    guard.set(Budget.create(0, name="frozen"))
    with pytest.raises(BudgetExceededError) as excinfo:
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=100)
    error = excinfo.value
    assert (error.budget, error.limit, error.spent) == ("frozen", Decimal(0), Decimal(0))
    assert error.estimate > 0 and "frozen" in str(error) and "$0" in str(error)
    assert fake.request_count() == 0
    span = our_spans(span_exporter)[0]
    assert span.attributes["llm_cost.budget.outcome"] == "blocked"
    assert span.attributes["llm_cost.budget.name"] == "frozen"


def test_session_user_and_tag_scopes_apply_together(guard, processor, openai_client, fake):
    fake.set_model("gpt-4o", output_tokens=20)
    guard.set(Budget.create("1", name="per-session", scope="session"))
    guard.set(Budget.create("0.0008", name="per-feature", scope="tag", tag="feature"))
    with session("s1", user_id="u1", feature="search"):
        with pytest.raises(BudgetExceededError) as excinfo:
            for _ in range(50):
                openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    assert excinfo.value.budget == "per-feature" and excinfo.value.key == "search"
    with session("s2", feature="chat"):  # another tag value has its own allowance
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    assert guard.status("per-feature", "search").spent <= Decimal("0.0008")
    worst = guard.status("per-session")
    assert worst.key == "s1" and worst.exhausted_keys == 0


def test_warn_policy_allows_logs_once_and_marks_the_span(guard, openai_client, span_exporter, caplog):
    guard.set(Budget.create(0, name="soft", on_exceed="warn"))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    assert sum("'soft'" in r.getMessage() for r in caplog.records) == 1
    assert [s.attributes["llm_cost.budget.outcome"] for s in our_spans(span_exporter)] == ["warned"] * 3


def test_unknown_price_is_allowed_best_effort_with_one_warning(guard, openai_client, caplog):
    guard.set(Budget.create("0.000001", name="strict"))
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            openai_client.chat.completions.create(model="in-house-model", messages=MESSAGES)
    assert guard.unpriced_calls == 3
    assert sum("best-effort" in r.getMessage() for r in caplog.records) == 1


def test_failed_call_releases_its_reservation(guard, openai_client, fake):
    import openai

    from otel_llm_cost.testing.fake import Fault

    guard.set(Budget.create(1, name="b"))
    fake.inject(Fault(status=500))
    with pytest.raises(openai.InternalServerError):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    status = guard.status("b")
    assert (status.spent, status.reserved) == (0, 0)


def test_windows_roll_over_at_utc_boundaries():
    clock = {"now": datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)}
    store = MemoryStore()
    guard = BudgetGuard(store, clock=lambda: clock["now"])
    guard.set(Budget.create(1, name="daily", window="day"))
    guard.set(Budget.create(1, name="monthly", window="month"))
    store.add("daily", "", window_id("day", clock["now"]), Decimal("0.9"))
    store.add("monthly", "", window_id("month", clock["now"]), Decimal("0.9"))
    assert guard.status("daily").spent == Decimal("0.9")
    clock["now"] += timedelta(seconds=1)  # 2026-04-01T00:00:00Z: a new day and a new month
    assert guard.status("daily").spent == 0 and guard.status("monthly").spent == 0
    assert window_id("hour", datetime(2026, 4, 1, 0, 30, tzinfo=UTC)) == "2026-04-01T00"
    assert window_id("week", datetime(2026, 1, 1, tzinfo=UTC)) == "2026-W01"  # ISO week, Monday start
    # a non-UTC clock is converted: 2026-04-01 01:30 at +02:00 is still March 31 in UTC
    assert window_id("day", datetime(2026, 4, 1, 1, 30, tzinfo=UTC) - timedelta(hours=2)) == "2026-03-31"


def test_reservations_expire_so_a_crash_holds_nothing_for_ever(tmp_path):
    now = {"t": 1_000.0}
    store = SqliteStore(tmp_path / "b.db", ttl=60, clock=lambda: now["t"])
    claim = Claim("b", "", "total", Decimal("0.6"), Decimal(1))
    assert isinstance(store.reserve([claim]), list)  # ... and the process dies before settling
    assert not isinstance(store.reserve([claim]), list)  # the reservation still holds the budget
    now["t"] += 61
    assert isinstance(store.reserve([claim]), list)


_WORKER = r"""
import sys, warnings
warnings.simplefilter("ignore")
from decimal import Decimal
import openai
from opentelemetry.sdk.trace import TracerProvider
from otel_llm_cost import _state
from otel_llm_cost.budget import Budget, BudgetExceededError
from otel_llm_cost.budget.guard import BudgetGuard
from otel_llm_cost.budget.stores import store_from_url
from otel_llm_cost.instrumentation import instrument

guard = BudgetGuard(store_from_url(sys.argv[1]))
guard.set(Budget.create("0.0006", name="shared"))
_state.set_budget_hook(guard)
instrument(tracer_provider=TracerProvider())
client = openai.OpenAI(base_url=sys.argv[2], api_key="k", max_retries=0)
allowed = 0
for _ in range(40):
    try:
        client.chat.completions.create(model="gpt-4o-mini", max_tokens=50,
                                       messages=[{"role": "user", "content": "Write one short sentence."}])
        allowed += 1
    except BudgetExceededError:
        pass
print(allowed)
"""


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_two_processes_share_a_budget_without_overspending(tmp_path, fake, backend, request):
    """Two processes race with real clients; SQLite shares a budget on one host, Redis across hosts."""
    fake.set_model("gpt-4o-mini", output_tokens=50)
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("redis_url")
    store_from_url(url).clear()
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, url, fake.openai_url], stdout=subprocess.PIPE,
                                text=True) for _ in range(2)]
    allowed = [int(w.communicate(timeout=120)[0].strip()) for w in workers]
    spent, reserved = store_from_url(url).usage("shared", "", "total")
    assert reserved == 0
    assert 0 < spent <= Decimal("0.0006")
    assert sum(allowed) == fake.request_count("/chat/completions") < 80


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": -1}, "limit=-1 must not be negative"),
        ({"limit": float("nan")}, "limit=nan must be a finite number"),
        ({"limit": "abc"}, "limit='abc' is not a number"),
        ({"limit": True}, "limit=True is not a number"),
        ({"limit": 1, "window": "fortnight"}, "window='fortnight' is not one of"),
        ({"limit": 1, "scope": "team"}, "scope='team' is not one of"),
        ({"limit": 1, "on_exceed": "explode"}, "on_exceed='explode' is not one of"),
        ({"limit": 1, "scope": "tag"}, "needs tag="),
    ],
)
def test_set_budget_rejects_bad_input_clearly(kwargs, message):
    import otel_llm_cost as llm_cost

    limit = kwargs.pop("limit")
    with pytest.raises(BudgetError) as excinfo:
        llm_cost.set_budget(limit, **kwargs)
    assert message in str(excinfo.value) and "set_budget: budget" in str(excinfo.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[budgets.daily]\nlimit_usd = -5\n', "budget 'daily': limit_usd=-5 must not be negative"),
        ('[budgets.daily]\nlimit_usd = nan\n', "budget 'daily': limit_usd=nan must be a finite number"),
        ('[budgets.daily]\nlimit_usd = 5\nwindow = "fortnight"\n', "budget 'daily': window='fortnight'"),
        ('[budgets.daily]\nlimit_usd = 5\nscope = "org"\n', "budget 'daily': scope='org'"),
        ('[budgets.daily]\nlimit_usd = 5\non_exceed = "maybe"\n', "budget 'daily': on_exceed='maybe'"),
        ('[budgets.daily]\nwindow = "day"\n', "budget 'daily' has no limit_usd"),
        ('[budgets.daily]\nlimit_usd = 5\nlimt = 3\n', "unknown field(s) ['limt']"),
        ("not = [toml", "not valid TOML"),
    ],
)
def test_budgets_file_rejects_bad_values_naming_file_budget_and_value(tmp_path, content, message):
    path = tmp_path / "budgets.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as excinfo:
        load_budgets_file(path)
    assert str(path) in str(excinfo.value) and "OTEL_LLM_COST_BUDGETS_FILE" in str(excinfo.value)
    assert message in str(excinfo.value)


def test_budgets_file_loads_every_scope(tmp_path):
    path = Path(tmp_path / "budgets.toml")
    path.write_text('[budgets.daily]\nlimit_usd = 50\nwindow = "day"\n'
                    '[budgets.per-feature]\nlimit_usd = "2.5"\nscope = "tag"\ntag = "feature"\non_exceed = "warn"\n')
    daily, feature = load_budgets_file(path)
    assert (daily.name, daily.limit, daily.window, daily.scope) == ("daily", Decimal(50), "day", "global")
    assert (feature.limit, feature.tag, feature.on_exceed) == (Decimal("2.5"), "feature", "warn")
