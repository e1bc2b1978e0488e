"""What the SQLite and PostgreSQL ledgers share: the indexes, the group keys, the time range."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

INDEXES = """
    CREATE INDEX llm_calls_ts ON llm_calls (ts);
    CREATE INDEX llm_calls_model ON llm_calls ((COALESCE(response_model, request_model)), ts);
    CREATE INDEX llm_calls_provider ON llm_calls (provider, ts);
    CREATE INDEX llm_calls_session ON llm_calls (session_id, ts);
    CREATE INDEX llm_calls_user ON llm_calls (user_id, ts);
    CREATE INDEX llm_calls_service ON llm_calls (service_name, ts);
    CREATE INDEX llm_calls_job ON llm_calls (job, ts);
"""
"""On `ts` for time ranges, and on each group key (with `ts`, so a range within a group is an index scan)."""

_COLUMNS = {"model": "COALESCE(response_model, request_model)", "provider": "provider", "session": "session_id",
            "user": "user_id", "service": "service_name", "job": "job"}


def group_key(by: str, *, day: str, tag: str, tag_arg: Callable[[str], Any]) -> tuple[str, list[Any]]:
    """The SQL expression to group by, and its arguments. `day` and `tag` are the dialect's expressions."""
    if by.startswith("tag:"):
        return tag, [tag_arg(by[4:])]
    return (day if by == "day" else _COLUMNS[by]), []


def time_range(since: datetime | None, until: datetime | None, placeholder: str,
               value: Callable[[datetime], Any]) -> tuple[str, list[Any]]:
    """`WHERE ts >= since AND ts < until`, with the dialect's placeholder."""
    clauses, args = [], []
    if since is not None:
        clauses.append(f"ts >= {placeholder}")
        args.append(value(since))
    if until is not None:
        clauses.append(f"ts < {placeholder}")
        args.append(value(until))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


PER_KEY_INDEXES = ("llm_calls_model", "llm_calls_provider", "llm_calls_session", "llm_calls_user",
                   "llm_calls_service", "llm_calls_job")
"""Indexes reports no longer read once the rollup answers them: dropped, so each row costs less to write."""

def rollup_migration(*, table: str, day: str, measures: str, tag_source: str) -> str:
    """Create the rollup (`table`: its CREATE statement), fill it from the rows already in the ledger, and
    drop the per-key indexes. `day` and `measures` are the dialect's day expression and summary sums;
    `tag_source` what to join llm_calls with for one row per tag (columns `key` and `value`)."""
    statements = [table, _rollup_fill(day=day, measures=measures, tag_source=tag_source)]
    statements += [f"DROP INDEX IF EXISTS {index}" for index in PER_KEY_INDEXES]
    return ";\n".join(statements)


def rollup_rebuild(*, day: str, measures: str, tag_source: str) -> str:
    """Empty the rollup and fill it again from the rows: after the rows' stored costs changed."""
    return "DELETE FROM llm_rollup;\n" + _rollup_fill(day=day, measures=measures, tag_source=tag_source)


def _rollup_fill(*, day: str, measures: str, tag_source: str) -> str:
    return ";\n".join(f"INSERT INTO llm_rollup {select}"
                       for select in rollup_selects("llm_calls", day=day, measures=measures, tag_source=tag_source))


def rollup_selects(source: str, *, day: str, measures: str, tag_source: str) -> list[str]:
    """What rows of `source` add to the rollup, one SELECT per grouping, each giving the rollup's columns:
    the one definition of a rollup key, for filling it from the ledger and for each batch written."""
    selects = [f"SELECT '{dim}', {day}, CASE WHEN {column} IS NULL THEN '' ELSE '=' || {column} END, {measures} "
               f"FROM {source} GROUP BY 2, 3" for dim, column in _COLUMNS.items()]
    selects.append(f"SELECT 'day', {day}, '', {measures} FROM {source} GROUP BY 2")
    selects.append(f"SELECT 'tag:' || t.key, {day}, '=' || t.value, {measures} "
                   f"FROM {source}, {tag_source.replace('llm_calls.', source + '.')} GROUP BY 1, 2, 3")
    return selects


ROLLUP_SUMMARY = """
    SELECT {key}, SUM(calls), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens),
           SUM(reasoning_tokens), SUM(cost), SUM(unpriced), SUM(errors), SUM(blocked), SUM(priced_tokens)
    FROM llm_rollup WHERE dim = {p} {days} GROUP BY 1
"""
"""Sums of whole days from the rollup; `{key}` is `key`, or `day` for a report by day."""

ROLLUP_UPSERT = """
    INSERT INTO llm_rollup (dim, day, key, calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                            reasoning_tokens, cost, unpriced, errors, blocked, priced_tokens)
    VALUES ({ps})
    ON CONFLICT (dim, day, key) DO UPDATE SET calls = llm_rollup.calls + excluded.calls,
        input_tokens = llm_rollup.input_tokens + excluded.input_tokens,
        output_tokens = llm_rollup.output_tokens + excluded.output_tokens,
        cache_read_tokens = llm_rollup.cache_read_tokens + excluded.cache_read_tokens,
        cache_write_tokens = llm_rollup.cache_write_tokens + excluded.cache_write_tokens,
        reasoning_tokens = llm_rollup.reasoning_tokens + excluded.reasoning_tokens,
        cost = llm_rollup.cost + excluded.cost, unpriced = llm_rollup.unpriced + excluded.unpriced,
        errors = llm_rollup.errors + excluded.errors, blocked = llm_rollup.blocked + excluded.blocked,
        priced_tokens = llm_rollup.priced_tokens + excluded.priced_tokens
"""


def rollup_days(first_day: str | None, end_day: str | None, placeholder: str) -> tuple[str, list[str]]:
    clauses, args = "", []
    if first_day is not None:
        clauses += f" AND day >= {placeholder}"
        args.append(first_day)
    if end_day is not None:
        clauses += f" AND day < {placeholder}"
        args.append(end_day)
    return clauses, args


def summarize(connection: Any, since: datetime | None, until: datetime | None, by: str, *, summary: str, day: str,
              tag: str, placeholder: str, ts: Callable[[datetime], Any]) -> list[tuple[Any, ...]]:
    """A report's summary rows on one connection: whole days from the rollup, the edges from the rows
    (`summary`, the dialect's query over them), as `rollup.summarize` splits the range."""
    from otel_llm_cost.ledger import rollup

    def raw(start: datetime | None, end: datetime | None) -> list[tuple[Any, ...]]:
        key, key_args = group_key(by, day=day, tag=tag, tag_arg=str)
        where, args = time_range(start, end, placeholder, ts)
        return connection.execute(summary.format(key=key, where=where), [*key_args, *args]).fetchall()  # type: ignore[no-any-return]

    def whole_days(dim: str, first_day: str | None, end_day: str | None) -> list[tuple[Any, ...]]:
        days, args = rollup_days(first_day, end_day, placeholder)
        query = ROLLUP_SUMMARY.format(key="day" if dim == "day" else "key", p=placeholder, days=days)
        found = connection.execute(query, [dim, *args]).fetchall()
        return found if dim == "day" else [(rollup.decode_key(key), *sums) for key, *sums in found]

    return rollup.summarize(since, until, by, raw, whole_days)
