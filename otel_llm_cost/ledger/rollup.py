"""The ledger's day rollup: what a report reads instead of millions of rows.

For each day (UTC) and each way a report groups (model, provider, session, user, service, job, the day
itself, each tag key), one row holds the sums the report shows. The writer keeps it in the same
transaction as the rows it adds, from the rows that transaction really inserted (a row already in the
ledger, as a spool replay or a retried batch brings, adds nothing), so it is right whichever process
writes and however often a batch is retried. A report over whole days reads the rollup alone; a range
that starts or ends inside a day reads that day's edge from the rows (the `ts` index narrows it) and
adds it up.

Both backends share this module: the keys and sums of a batch (`deltas`), how a time range splits
into whole days and edges (`split`), and how group keys are stored (`encode_key`: a NULL key must be
one key of a primary key).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

__all__ = ["DIMENSIONS", "MEASURES", "distinct", "deltas", "column_keys", "encode_key", "decode_key", "split", "rolls_up", "merge"]

DIMENSIONS = ("model", "provider", "session", "user", "service", "job")
"""The columns a report groups by, besides the day and tags."""
MEASURES = ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
            "cost", "unpriced", "errors", "blocked", "priced_tokens")
"""A summary row's sums, in the order `summarize` returns them after the key."""


def encode_key(value: Any) -> str:
    """'' for NULL, '=' and the text otherwise: a primary key cannot hold NULL as one key."""
    return "" if value is None else f"={value}"


def decode_key(stored: str) -> str | None:
    return None if stored == "" else stored[1:]


def rolls_up(by: str) -> bool:
    return by in DIMENSIONS or by == "day" or by.startswith("tag:")


def _day(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d")


def distinct(rows: Iterable[Any]) -> list[Any]:
    """A batch's rows, each id once: a row twice in one batch is one row, and adds to the rollup once."""
    return list({row.id: row for row in rows}.values())


def column_keys(row: Any) -> list[tuple[str, str | None]]:
    """The groupings a row's columns give, and its key in each (`day` and tags apart): the one
    definition reports, the rollup and what-if share."""
    return [("model", row.response_model or row.request_model), ("provider", row.provider),
            ("session", row.session_id), ("user", row.user_id), ("service", row.service_name), ("job", row.job)]


def deltas(rows: Iterable[Any], money: Callable[[Decimal], Any] = Decimal) -> dict[tuple[str, str, str], list[Any]]:
    """(dimension, day, key) -> the sums the rows add, as `MEASURES`. `money` stores a row's cost as the
    backend's rows do (SQLite: integer units of 1e-10 USD, each row rounded as its row is), so the rollup
    and the rows add up to the same amount to the last unit."""
    out: dict[tuple[str, str, str], list[Any]] = {}
    zero = money(Decimal(0))
    days: dict[Any, str] = {}
    for row in rows:
        day = days.get(row.ts.date()) if row.ts.tzinfo is UTC else None
        if day is None:
            day = _day(row.ts)
            if row.ts.tzinfo is UTC:
                days[row.ts.date()] = day
        blocked = row.outcome == "blocked"
        cost = row.cost_usd
        values = (0 if blocked else 1, row.input_tokens, row.output_tokens, row.cache_read_tokens,
                  row.cache_write_tokens, row.reasoning_tokens, money(cost) if cost is not None else zero,
                  1 if cost is None and not blocked else 0, 1 if row.outcome == "error" else 0, 1 if blocked else 0,
                  row.input_tokens + row.output_tokens if cost is not None else 0)
        slots = [(dim, day, encode_key(value)) for dim, value in column_keys(row)]
        slots.append(("day", day, ""))
        slots.extend((f"tag:{name}", day, encode_key(value)) for name, value in (row.tags or {}).items())
        for slot in slots:
            sums = out.get(slot)
            if sums is None:
                out[slot] = list(values)
            else:
                for index, value in enumerate(values):
                    sums[index] += value
    return out


@dataclass(frozen=True, slots=True)
class Split:
    """A report's time range: whole days (`first_day` up to, not including, `end_day`; None: open) read
    from the rollup, and the edges inside a day, each a (since, until) of the rows."""

    first_day: str | None
    end_day: str | None
    edges: tuple[tuple[datetime | None, datetime | None], ...]
    whole_days: bool


def _midnight(ts: datetime) -> datetime:
    ts = ts.astimezone(UTC)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def split(since: datetime | None, until: datetime | None) -> Split:
    start = None if since is None else _midnight(since)
    if start is not None and start < since.astimezone(UTC):  # type: ignore[union-attr]
        start += timedelta(days=1)
    end = None if until is None else _midnight(until)
    if start is not None and end is not None and start >= end:  # within one day (or two edges that meet)
        return Split(None, None, ((since, until),), whole_days=False)
    edges = []
    if since is not None and start is not None and since.astimezone(UTC) < start:
        edges.append((since, start))
    if until is not None and end is not None and end < until.astimezone(UTC):
        edges.append((end, until))
    return Split(None if start is None else start.strftime("%Y-%m-%d"),
                 None if end is None else end.strftime("%Y-%m-%d"), tuple(edges), whole_days=True)


def merge(parts: Sequence[Sequence[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """Summary rows of several parts of one range, added up by key."""
    merged: dict[Any, list[Any]] = {}
    for part in parts:
        for key, *sums in part:
            total = merged.get(key)
            if total is None:
                merged[key] = list(sums)
            else:
                for index, value in enumerate(sums):
                    total[index] = (total[index] or 0) + (value or 0)
    return [(key, *sums) for key, sums in merged.items()]


def summarize(since: datetime | None, until: datetime | None, by: str, raw: Any, whole_days: Any) -> list[tuple[Any, ...]]:
    """A report's summary rows: whole days from the rollup (`whole_days(dim, first_day, end_day)`, keys
    decoded), the edges inside a day from the rows (`raw(since, until)`), added up by key. A grouping the
    rollup does not keep reads the rows alone."""
    if not rolls_up(by):
        return list(raw(since, until))
    parts = split(since, until)
    results = [list(raw(start, end)) for start, end in parts.edges]
    if parts.whole_days:
        groups = list(whole_days(by, parts.first_day, parts.end_day))
        if by.startswith("tag:"):  # the calls without the tag are one group, as the rows report them
            groups.append(_without(groups, list(whole_days("day", parts.first_day, parts.end_day))))
        results.append(groups)
    return [row for row in merge(results) if any(row[1:])]


def _without(groups: list[tuple[Any, ...]], days: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The sums of every call less those of the tag's groups: the group of calls without the tag."""
    everything = [sum((day[i] or 0) for day in days) for i in range(1, 1 + len(MEASURES))]
    tagged = [sum((group[i] or 0) for group in groups) for i in range(1, 1 + len(MEASURES))]
    return (None, *(a - b for a, b in zip(everything, tagged)))
