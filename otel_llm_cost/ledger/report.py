"""`usage_report()` and `export_rows()`: the ledger read back, grouped and summed in SQL.

A report groups calls by model, provider, session, user, service, job, day or `tag:<key>`, highest
cost first. Each group is a `SessionSummary`, so it reads like the in-process totals: cost over priced
calls only, unpriced calls counted, never priced at 0.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from otel_llm_cost._money import column_usd, usd
from otel_llm_cost.ledger import COLUMNS, LedgerBackend, Row, open_backend
from otel_llm_cost.sessions import SessionSummary

__all__ = ["UsageReport", "usage_report", "export_rows", "parse_when", "GROUPS", "ReportError"]

GROUPS = ("model", "provider", "session", "user", "service", "job", "day")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ReportError(ValueError):
    """A report argument that cannot be used: the message names it and its value."""


def parse_when(value: str | datetime | None, *, name: str = "since", now: datetime | None = None) -> datetime | None:
    """An ISO date or time (UTC unless it says otherwise), or a relative `30m`, `24h`, `7d`, `2w` ago."""
    if value is None or isinstance(value, datetime):
        return value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else \
            (value.replace(tzinfo=UTC) if isinstance(value, datetime) else None)
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"--{name}={value!r} is not an ISO date or time (2026-11-18, 2026-11-18T09:00) or a "
                          "relative time (30m, 24h, 7d)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _check_by(by: str) -> str:
    if by in GROUPS or (by.startswith("tag:") and len(by) > 4):
        return by
    raise ReportError(f"--by={by!r} is not a grouping; use one of {', '.join(GROUPS)} or tag:<key>")


@dataclass(frozen=True)
class UsageReport:
    """Groups (key, SessionSummary), highest cost first, and their total."""

    by: str
    since: datetime | None
    until: datetime | None
    groups: list[tuple[str | None, SessionSummary]] = field(default_factory=list)
    total: SessionSummary = field(default_factory=lambda: SessionSummary(None))
    blocked: dict[str | None, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def fields_of(s: SessionSummary) -> dict[str, Any]:
            return {"calls": s.calls, "input_tokens": s.input_tokens, "output_tokens": s.output_tokens,
                    "cache_read_tokens": s.cache_read_tokens, "cache_write_tokens": s.cache_write_tokens,
                    "reasoning_tokens": s.reasoning_tokens, "cost_usd": usd(s.cost), "unpriced_calls": s.unpriced_calls}

        return {"by": self.by, "since": _iso(self.since), "until": _iso(self.until),
                "groups": [{"key": key, **fields_of(s)} for key, s in self.groups], "total": fields_of(self.total)}

    def format(self, style: str = "table") -> str:
        if style == "json":
            return json.dumps(self.to_dict(), indent=2)
        if style == "csv":
            out = io.StringIO()
            rows = self.to_dict()
            writer = csv.DictWriter(out, fieldnames=["key", *rows["total"]], lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows["groups"])
            return out.getvalue().rstrip("\n")
        if style != "table":
            raise ReportError(f"--format={style!r} is not one of table, json, csv")
        return self._table()

    def _table(self) -> str:
        label = self.by
        width = max([24, len(label), *(len(str(key)) for key, _ in self.groups)])
        header = (f"{label:{width}} {'calls':>7} {'input':>12} {'cache rd':>11} {'output':>10} {'cost USD':>13} "
                  f"{'unpriced':>8}")
        lines = [f"usage by {label}, {_iso(self.since) or 'the beginning'} to {_iso(self.until) or 'now'} (UTC)",
                 header, "-" * len(header)]
        for key, s in [*self.groups, ("total", self.total)]:
            if key == "total":
                lines.append("-" * len(header))
            cost = "unknown" if s.calls and not s.priced_calls else column_usd(s.cost)
            lines.append(f"{'(none)' if key is None else str(key):{width}} {s.calls:>7,} {s.input_tokens:>12,} "
                         f"{s.cache_read_tokens:>11,} {s.output_tokens:>10,} {cost:>13} {s.unpriced_calls:>8,}")
        blocked = sum(self.blocked.values())
        if blocked:
            lines.append(f"{blocked:,} call{'s' if blocked != 1 else ''} refused by a budget before being sent "
                         "(not counted above)")
        return "\n".join(lines)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _summary(values: tuple[Any, ...]) -> SessionSummary:
    (_, calls, input_tokens, output_tokens, cache_read, cache_write, reasoning, cost, unpriced, errors, _,
     priced_tokens) = values
    return SessionSummary(None, calls=int(calls or 0), input_tokens=int(input_tokens or 0),
                          output_tokens=int(output_tokens or 0), cache_read_tokens=int(cache_read or 0),
                          cache_write_tokens=int(cache_write or 0), reasoning_tokens=int(reasoning or 0),
                          cost=Decimal(cost or 0), unpriced_calls=int(unpriced or 0), errors=int(errors or 0),
                          priced_tokens=int(priced_tokens or 0))


def _backend(ledger: Any) -> tuple[LedgerBackend, bool]:
    """The backend to read, and whether we opened it (and so close it)."""
    if ledger is None:
        from otel_llm_cost import _state

        url = _state.settings().ledger
        if url is None:
            raise ReportError("no ledger: give --ledger URL or set OTEL_LLM_COST_LEDGER (sqlite:///usage.db)")
        ledger = url
    if isinstance(ledger, str):
        return open_backend(ledger), True
    backend = getattr(ledger, "backend", ledger)
    flush = getattr(ledger, "flush", None)
    if flush is not None:
        flush()  # a live ledger: include the calls still queued
    return backend, False


def usage_report(since: Any = None, until: Any = None, by: str = "model", ledger: Any = None) -> UsageReport:
    """What was spent, grouped, highest cost first. `ledger`: a URL, a `Ledger`, or the configured one."""
    start, end = parse_when(since, name="since"), parse_when(until, name="until")
    by = _check_by(by)
    backend, opened = _backend(ledger if ledger is not None else _live_ledger())
    try:
        groups = backend.summarize(start, end, by)
    finally:
        if opened:
            backend.close()
    summaries = [(row[0], _summary(row), int(row[10] or 0)) for row in groups]
    total_values = (None, *(sum((row[i] or 0) for row in groups) for i in range(1, 12)))
    report_groups = [(key, s) for key, s, _ in summaries if s.calls]
    report_groups.sort(key=lambda item: (-item[1].cost, -item[1].calls, str(item[0])))
    return UsageReport(by, start, end, report_groups, _summary(total_values),
                       {key: blocked for key, _, blocked in summaries if blocked})


def export_rows(since: Any = None, until: Any = None, ledger: Any = None) -> Iterator[Row]:
    start, end = parse_when(since, name="since"), parse_when(until, name="until")
    backend, opened = _backend(ledger if ledger is not None else _live_ledger())
    try:
        yield from backend.rows(start, end)
    finally:
        if opened:
            backend.close()


def format_rows(rows: Iterable[Row], style: str) -> Iterator[str]:
    """`jsonl`: one row per line; `csv`: a header, then one row per line. `cost_usd` is a decimal string."""
    if style == "jsonl":
        for row in rows:
            yield json.dumps(row.to_json(), separators=(",", ":"), default=str)
        return
    if style != "csv":
        raise ReportError(f"--format={style!r} is not one of jsonl, csv")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="")
    writer.writerow(COLUMNS)
    yield out.getvalue()
    for row in rows:
        out.seek(0)
        out.truncate()
        values = row.to_json()
        values["tags"] = json.dumps(values["tags"], sort_keys=True)
        writer.writerow([values[c] for c in COLUMNS])
        yield out.getvalue()


def _live_ledger() -> Any:
    """The ledger this process writes to, if configure() opened one."""
    from otel_llm_cost import _setup

    rt = _setup.runtime(create=False)
    return getattr(rt, "ledger", None) if rt is not None else None
