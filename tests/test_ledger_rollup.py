"""The ledger's day rollup, which reports read instead of the rows: it must add up to exactly what the
rows say, for any range (whole days from the rollup, the edges inside a day from the rows), on both
backends, after a batch is written twice (a spool replay, a retried COMMIT), from several processes at
once, and for a ledger that had rows before the rollup existed."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_llm_cost.ledger import Row, open_backend, uuid7
from otel_llm_cost.ledger.report import usage_report

T0 = datetime(2026, 11, 10, tzinfo=UTC)
BYS = ("model", "provider", "user", "session", "service", "job", "day", "tag:team")


def _rows(count: int, seed: int = 7) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        outcome = rng.choice(("ok", "ok", "ok", "error", "blocked"))
        unpriced = rng.random() < 0.1
        tokens = (0, 0) if outcome == "blocked" else (rng.randint(1, 5_000), rng.randint(1, 500))
        tags = {"team": rng.choice(("a", "b"))} if rng.random() < 0.7 else {}
        # amounts in units of 1e-10 USD, the SQLite ledger's precision (PostgreSQL keeps 15 places)
        cost = None if unpriced and outcome != "blocked" else D(rng.randint(0, 10**8)) / D(10**10)
        rows.append(Row(uuid7(), T0 + timedelta(seconds=rng.uniform(0, 6 * 86_400)), None, None,
                        rng.choice(("api", "worker", None)), rng.choice(("openai", "anthropic")), "chat",
                        rng.choice(("gpt-4o", "claude")), rng.choice((None, "gpt-4o-2024-08-06")), None,
                        rng.choice(("s1", "s2", None)), None, rng.choice(("alice", "bob", None)), tags,
                        *tokens, rng.randint(0, 50), 0, 0, cost, "local", "bundled", False, outcome, None, False,
                        rng.choice((None, "nightly")), 0.1))
    return rows


def _key(row: Row, by: str):
    return {"model": row.response_model or row.request_model, "provider": row.provider, "user": row.user_id,
            "session": row.session_id, "service": row.service_name, "job": row.job,
            "day": row.ts.strftime("%Y-%m-%d"), "tag:team": row.tags.get("team")}[by]


def _expected(rows: list[Row], by: str, since, until) -> dict:
    """What the rows say, summed in Python: calls, tokens, exact cost, unpriced calls."""
    sums: dict = defaultdict(lambda: [0, 0, 0, D(0), 0])
    for row in rows:
        if (since and row.ts < since) or (until and row.ts >= until):
            continue
        entry = sums[_key(row, by)]
        if row.outcome != "blocked":
            entry[0] += 1
            entry[4] += row.cost_usd is None
        entry[1] += row.input_tokens
        entry[2] += row.output_tokens
        entry[3] += row.cost_usd or 0
    return {key: tuple(value) for key, value in sums.items() if value[0]}


def _reported(backend, by: str, since, until) -> dict:
    report = usage_report(since=since, until=until, by=by, ledger=backend)
    return {key: (s.calls, s.input_tokens, s.output_tokens, s.cost, s.unpriced_calls) for key, s in report.groups}


@pytest.fixture
def written(ledger_url):
    backend = open_backend(ledger_url)
    rows = _rows(400)
    backend.write(rows[:250])
    backend.write(rows[200:])  # 50 rows twice, as a replayed spool or a retried batch brings them
    yield backend, rows
    backend.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.floats(min_value=-1, max_value=7), length=st.floats(min_value=0, max_value=8),
       by=st.sampled_from(BYS), open_start=st.booleans(), open_end=st.booleans())
def test_any_range_adds_up_to_exactly_what_the_rows_say(written, start, length, by, open_start, open_end):
    backend, rows = written
    since = None if open_start else T0 + timedelta(days=start)
    until = None if open_end else T0 + timedelta(days=start + length)
    assert _reported(backend, by, since, until) == _expected(rows, by, since, until)


def test_whole_days_read_the_rollup_and_agree_with_the_rows(written):
    backend, rows = written
    for by in BYS:
        assert _reported(backend, by, T0 + timedelta(days=1), T0 + timedelta(days=4)) == \
            _expected(rows, by, T0 + timedelta(days=1), T0 + timedelta(days=4))


def _write_share(url: str, seed: int) -> None:
    backend = open_backend(url)
    rows = _rows(300, seed)
    for start in range(0, 300, 30):
        backend.write(rows[start:start + 30])
    backend.write(rows[:60])  # and a replay
    backend.close()


def test_four_processes_writing_at_once_keep_the_rollup_exact(ledger_url):
    open_backend(ledger_url).close()  # migrated once, before the writers start
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_share, args=(ledger_url, seed)) for seed in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    rows = [row for seed in range(4) for row in _rows(300, seed)]
    backend = open_backend(ledger_url)
    try:
        stored = list(backend.rows(None, None))
        assert len(stored) == 1_200  # ids are fresh per run: the same seed gives new ids each time
        for by in ("model", "day", "tag:team"):
            assert _reported(backend, by, None, None) == _expected(stored, by, None, None)
        assert sum(s.calls for _, s in usage_report(by="model", ledger=backend).groups) == \
            sum(1 for row in rows if row.outcome != "blocked")
    finally:
        backend.close()


def test_a_ledger_written_before_the_rollup_is_rolled_up_when_opened(tmp_path):
    from otel_llm_cost.ledger import sqlite as sqlite_ledger

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:  # the schema and rows of the version before the rollup
        connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT)")
        for statement in filter(str.strip, sqlite_ledger._MIGRATIONS[0].split(";")):
            connection.execute(statement)
        connection.execute("INSERT INTO schema_version VALUES (1, '2026-11-01')")
        rows = _rows(200)
        placeholders = ",".join("?" * (len(sqlite_ledger.COLUMNS) + 1))
        connection.executemany(f"INSERT INTO llm_calls ({','.join(sqlite_ledger.COLUMNS)}, cost_e10) "
                               f"VALUES ({placeholders})", [sqlite_ledger._values(row) for row in rows])
    backend = open_backend(f"sqlite:///{path}")
    try:
        for by in BYS:
            assert _reported(backend, by, None, None) == _expected(rows, by, None, None)
        indexes = {name for (name,) in backend._connection().execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "llm_calls_ts" in indexes and "llm_calls_user" not in indexes
    finally:
        backend.close()


# --- one precision end to end: reports add exactly the stored costs ---

_COSTS = st.one_of(
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False).map(lambda f: D(repr(f))),
    st.builds(lambda mantissa, exponent: D(mantissa).scaleb(exponent),  # up to 28 significant digits
              st.integers(min_value=0, max_value=10**28 - 1), st.integers(min_value=-45, max_value=-20)),
    st.decimals(min_value=0, max_value=D("1e8"), allow_nan=False, allow_infinity=False, places=21),
)


def _with_costs(rows: list[Row], costs: list[D]) -> list[Row]:
    for row, cost in zip(rows, costs):
        if row.cost_usd is not None:  # Row stores its cost as the ledger keeps it
            row.cost_usd = cost
            row.__post_init__()
    return rows


def _sql_total(backend) -> D:
    """SUM over the stored rows, in the database's own SQL."""
    if backend.url.startswith("sqlite"):
        units = backend._connection().execute("SELECT COALESCE(SUM(cost_e10), 0) FROM llm_calls").fetchone()[0]
        return D(units) * D("1e-10")
    connection = backend._connection()
    try:
        return connection.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM llm_calls").fetchone()[0]
    finally:
        connection.rollback()


def _write_with_costs(url: str, seed: int, costs: list[str]) -> None:
    backend = open_backend(url)
    rows = _with_costs(_rows(len(costs), seed), [D(c) for c in costs])
    backend.write(rows[:40])
    backend.write(rows[20:])  # 20 rows again: a replay
    backend.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(costs=st.lists(_COSTS, min_size=60, max_size=60), start=st.floats(min_value=-1, max_value=6),
       length=st.floats(min_value=0.1, max_value=8))
def test_reports_add_up_to_the_stored_costs_to_the_last_digit(ledger_url, costs, start, length):
    """Costs with up to 28 significant digits (floats, huge and tiny decimals), written by two processes at
    once, with replays: every grouping's cost, for any range and for all time, equals the sum of its rows'
    stored costs, and the total equals the database's own SUM over the rows."""
    from otel_llm_cost.ledger.rows import stored_cost

    if ledger_url.startswith("postgres"):
        from tests.conftest import empty_ledger

        empty_ledger(ledger_url)
    else:
        import os

        if os.path.exists(ledger_url[len("sqlite:///"):]):
            os.remove(ledger_url[len("sqlite:///"):])
    open_backend(ledger_url).close()
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_with_costs, args=(ledger_url, seed, [str(c) for c in costs]))
               for seed in (1, 2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    backend = open_backend(ledger_url)
    try:
        stored = list(backend.rows(None, None))
        assert len(stored) == 120
        assert all(row.cost_usd is None or row.cost_usd == stored_cost(row.cost_usd) for row in stored)
        since, until = T0 + timedelta(days=start), T0 + timedelta(days=start + length)
        for by in BYS:
            for window in ((None, None), (since, until)):
                assert _reported(backend, by, *window) == _expected(stored, by, *window)
        total = usage_report(by="model", ledger=backend).total.cost
        assert total == sum((row.cost_usd or 0 for row in stored), D(0)) == _sql_total(backend)
    finally:
        backend.close()
