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
from otel_llm_cost.ledger import COLUMNS, LedgerBackend, LedgerOpenError, Row, open_backend, redacted
from otel_llm_cost.sessions import SessionSummary

__all__ = ["UsageReport", "usage_report", "export_rows", "format_rows", "parse_when", "parse_range", "GROUPS",
           "ReportError", "csv_line", "printable"]

GROUPS = ("model", "provider", "session", "user", "service", "job", "day")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ReportError(ValueError):
    """A report argument that cannot be used: the message names it and its value."""


def parse_when(value: str | datetime | None, *, name: str = "since", now: datetime | None = None) -> datetime | None:
    """An ISO date or time (UTC unless it says otherwise), or a relative `30m`, `24h`, `7d`, `2w` ago.
    A time that falls outside the years 1 to 9999 once in UTC is a `ReportError`, never an overflow."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        text = value.strip()
        match = _RELATIVE.match(text)
        if match:
            try:
                return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
            except OverflowError:
                raise ReportError(f"{name}={_shown(value)} reaches back before the year 1") from None
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ReportError(f"{name}={_shown(value)} is not an ISO date or time (2026-11-18, 2026-11-18T09:00) or a "
                              "relative time (30m, 24h, 7d)") from None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise ReportError(f"{name}={_shown(value)} is outside the years 1 to 9999 in UTC") from None


def _shown(value: Any) -> str:
    """A bad value as an error message quotes it: printable, and cut short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_range(since: Any, until: Any) -> tuple[datetime | None, datetime | None]:
    """`since` and `until` parsed, and checked to be in order."""
    start, end = parse_when(since, name="since"), parse_when(until, name="until")
    if start is not None and end is not None and start > end:
        raise ReportError(f"since={_iso(start)} is after until={_iso(end)}: nothing can fall between them")
    return start, end


def _check_by(by: str) -> str:
    if by in GROUPS or (by.startswith("tag:") and len(by) > 4):
        return by
    raise ReportError(f"by={by!r} is not a grouping; use one of {', '.join(GROUPS)} or tag:<key>")


@dataclass(frozen=True)
class UsageReport:
    """Groups (key, SessionSummary), highest cost first, and their total."""

    by: str
    since: datetime | None
    until: datetime | None
    groups: list[tuple[str | None, SessionSummary]] = field(default_factory=list)
    total: SessionSummary = field(default_factory=lambda: SessionSummary(None))
    blocked: dict[str | None, int] = field(default_factory=dict)
    what_if: Any = None
    """A `whatif.WhatIf`: the same usage priced on another model or tier (`report --as-model/--as-tier`)."""

    def _what_if_of(self, key: str | None, summary: SessionSummary, total: bool = False) -> dict[str, Any]:
        """A group's (or the total's) what-if cost and its difference to the actual cost (what-if minus
        actual; unknown when either is), as JSON and CSV give them."""
        if self.what_if is None:
            return {}
        value = self.what_if.total if total else self.what_if.costs.get(key)
        actual_known = not summary.unpriced_calls
        return {"what_if_cost_usd": None if value is None else usd(value),
                "what_if_difference_usd": None if value is None or not actual_known else usd(value - summary.cost)}

    def to_dict(self) -> dict[str, Any]:
        def fields_of(s: SessionSummary) -> dict[str, Any]:
            return {"calls": s.calls, "input_tokens": s.input_tokens, "output_tokens": s.output_tokens,
                    "cache_read_tokens": s.cache_read_tokens, "cache_write_tokens": s.cache_write_tokens,
                    "reasoning_tokens": s.reasoning_tokens, "cost_usd": usd(s.cost), "unpriced_calls": s.unpriced_calls}

        out = {"by": self.by, "since": _iso(self.since), "until": _iso(self.until),
               "groups": [{"key": key, **fields_of(s), "refused_calls": self.blocked.get(key, 0),
                           **self._what_if_of(key, s)} for key, s in self.groups],
               "total": {**fields_of(self.total), "refused_calls": sum(self.blocked.values()),
                         **self._what_if_of(None, self.total, total=True)}}
        if self.what_if is not None:
            out["what_if"] = {"as": self.what_if.label, "notes": self.what_if.notes}
        return out

    def format(self, style: str = "table", *, raw: bool = False) -> str:
        """`table` (control characters escaped), `json`, or `csv` (RFC 4180; cells a spreadsheet would
        run as a formula are prefixed with `'` unless `raw`)."""
        if style == "json":
            return json.dumps(self.to_dict(), indent=2)
        if style == "csv":
            data = self.to_dict()
            header = ["key", *data["total"]]
            return "".join(csv_line([_number(name, group[name]) for name in header], raw)
                           for group in [dict(zip(header, header)), *data["groups"]])
        if style != "table":
            raise ReportError(f"format={style!r} is not one of table, json, csv")
        return self._table()

    def _table(self) -> str:
        label = printable(self.by)
        keys = ["(none)" if key is None else printable(str(key)) for key, _ in self.groups]
        width = max([24, len(label), *(len(key) for key in keys)])
        what_if = self.what_if
        header = (f"{label:{width}} {'calls':>7} {'input':>12} {'cache rd':>11} {'output':>10} {'cost USD':>13} "
                  f"{'unpriced':>8}" + (f" {'what-if USD':>13} {'difference':>13}" if what_if is not None else ""))
        lines = [f"usage by {printable(label)}, {_iso(self.since) or 'the beginning'} to {_iso(self.until) or 'now'} "
                 "(UTC)", header, "-" * len(header)]
        for index, (key, s) in enumerate([*zip(keys, (g for _, g in self.groups)), ("total", self.total)]):
            if index == len(keys):
                lines.append("-" * len(header))
            cost = "unknown" if s.calls and not s.priced_calls else column_usd(s.cost)
            line = (f"{key:{width}} {s.calls:>7,} {s.input_tokens:>12,} "
                    f"{s.cache_read_tokens:>11,} {s.output_tokens:>10,} {cost:>13} {s.unpriced_calls:>8,}")
            if what_if is not None:
                values = self._what_if_of(self.groups[index][0] if index < len(keys) else None, s,
                                          total=index == len(keys))
                line += (f" {values['what_if_cost_usd'] or 'unknown':>13} "
                         f"{values['what_if_difference_usd'] or 'unknown':>13}")
            lines.append(line)
        if what_if is not None:
            lines.append(f"what-if: the same usage as {printable(what_if.label)}"
                         + "".join(f"; {printable(note)}" for note in what_if.notes))
        blocked = sum(self.blocked.values())
        if blocked:
            lines.append(f"{blocked:,} call{'s' if blocked != 1 else ''} refused by a budget before being sent "
                         "(not counted above)")
        return "\n".join(lines)


def _number(name: str, value: Any) -> Any:
    """A money cell as a number, so a negative difference is not mistaken for a formula and prefixed."""
    return Decimal(value) if name.endswith("_usd") and isinstance(value, str) and value != name else value


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
            raise ReportError("no ledger: pass ledger='sqlite:///usage.db' (or postgresql://...), or open one with "
                              "configure(ledger=...) or OTEL_LLM_COST_LEDGER")
        ledger = url
    if isinstance(ledger, str):
        try:
            return open_backend(ledger, create=False), True
        except LedgerOpenError as error:
            raise ReportError(f"ledger {redacted(ledger)!r} cannot be read: {error}") from None
    backend = getattr(ledger, "backend", ledger)
    flush = getattr(ledger, "flush", None)
    if flush is not None:
        flush()  # a live ledger: include the calls still queued
    return backend, False


def usage_report(since: Any = None, until: Any = None, by: str = "model", ledger: Any = None) -> UsageReport:
    """What was spent, grouped, highest cost first. `ledger`: a URL, a `Ledger`, or the configured one."""
    start, end = parse_range(since, until)
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
    report_groups.sort(key=lambda item: (-item[1].cost, -item[1].calls, item[0] is None, str(item[0])))
    return UsageReport(by, start, end, report_groups, _summary(total_values),
                       {key: blocked for key, _, blocked in summaries if blocked})


def export_rows(since: Any = None, until: Any = None, ledger: Any = None) -> Iterator[Row]:
    start, end = parse_range(since, until)
    backend, opened = _backend(ledger if ledger is not None else _live_ledger())
    try:
        yield from backend.rows(start, end)
    finally:
        if opened:
            backend.close()


def format_rows(rows: Iterable[Row], style: str, *, raw: bool = False) -> Iterator[str]:
    """`jsonl`: one row per line; `csv`: a header, then one record per row (RFC 4180: CRLF-terminated,
    so print them with `end=""`). `cost_usd` is a decimal string."""
    if style == "jsonl":
        for row in rows:
            yield json.dumps(row.to_json(), separators=(",", ":"), default=str) + "\n"
        return
    if style != "csv":
        raise ReportError(f"format={style!r} is not one of jsonl, csv")
    yield csv_line(COLUMNS, raw)
    for row in rows:
        values = row.to_json()
        values["tags"] = json.dumps(values["tags"], sort_keys=True)
        yield csv_line([values[c] for c in COLUMNS], raw)


# --- the terminal and spreadsheet sinks: text from apps and providers made safe where it leaves us ---

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_line(values: Iterable[Any], raw: bool = False) -> str:
    """One RFC 4180 record, CRLF-terminated: a field holding a comma, quote, CR or LF is quoted. Unless
    `raw`, a text cell a spreadsheet would run as a formula gets a leading `'` (numbers are left alone)."""
    out = io.StringIO()
    cells = [v if raw or not isinstance(v, str) or not v.startswith(_FORMULA_START) else "'" + v for v in values]
    csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow(
        ["" if v is None else v for v in cells])
    return out.getvalue()


def printable(text: str) -> str:
    """`text` for a terminal: control and format characters (escape sequences, CR, LF, bidi overrides)
    and lone surrogates shown as escapes, never acted on."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _live_ledger() -> Any:
    """The ledger this process writes to, if configure() opened one."""
    from otel_llm_cost import _setup

    rt = _setup.runtime(create=False)
    return getattr(rt, "ledger", None) if rt is not None else None
