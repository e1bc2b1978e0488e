"""`otel-llm-cost report --format html`: spend people can look at without Grafana.

One self-contained page (inline CSS and SVG, no script, nothing fetched): spend per day as a bar chart,
the top groups as bars, and the report's table. Every text from the ledger is escaped where it leaves
us (`html.escape`), so an id or tag can never become markup.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from decimal import Decimal

from otel_llm_cost._money import column_usd, usd
from otel_llm_cost.ledger.report import UsageReport

__all__ = ["render_html"]

_WIDTH, _HEIGHT, _TOP = 760, 220, 10

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 820px; color: #1d2330; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.05rem; margin-top: 2rem; }
.meta { color: #5b6475; } .total { font-size: 1.8rem; font-weight: 600; }
table { border-collapse: collapse; width: 100%; } th, td { padding: .3rem .5rem; border-bottom: 1px solid #e3e6ec; }
th { text-align: left; background: #f5f6f8; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
svg text { font: 11px system-ui, sans-serif; fill: #5b6475; } rect.bar { fill: #3b6fd8; }
"""


def render_html(report: UsageReport, by_day: UsageReport) -> str:
    """The page for `report` (grouped as the user asked) and `by_day` (the same range, by day)."""
    esc = html.escape
    total = report.total
    unknown = f" + {total.unpriced_calls:,} calls of unknown price" if total.unpriced_calls else ""
    refused = sum(report.blocked.values())
    unknown += f"; {refused:,} refused by a budget before being sent" if refused else ""
    span = f"{_when(report.since) or 'the beginning'} to {_when(report.until) or 'now'} (UTC)"
    return "\n".join([
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>LLM spend by {esc(report.by)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>LLM spend by {esc(report.by)}</h1>", f'<p class="meta">{esc(span)}</p>',
        f'<p><span class="total" id="total">${esc(usd(total.cost))}</span> over {total.calls:,} calls{esc(unknown)}</p>',
        "<h2>Spend per day</h2>", _day_chart(by_day),
        f"<h2>Top {min(_TOP, len(report.groups))} by {esc(report.by)}</h2>", _top_bars(report),
        f"<h2>Every {esc(report.by)}</h2>", _table(report),
        f'<p class="meta">Made by otel-llm-cost from its usage ledger, {esc(_when(datetime.now(UTC)) or "")}.</p>',
        "</body></html>",
    ])


def _when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else None


def _key(key: str | None) -> str:
    return "(none)" if key is None else str(key)


def _day_chart(by_day: UsageReport) -> str:
    days = sorted(by_day.groups, key=lambda item: _key(item[0]))
    if not days:
        return '<p class="meta">No calls in this range.</p>'
    peak = max((summary.cost for _, summary in days), default=Decimal(0)) or Decimal(1)
    step = _WIDTH / len(days)
    bars = []
    for index, (day, summary) in enumerate(days):
        height = float(summary.cost / peak) * (_HEIGHT - 30)
        x = index * step
        label = html.escape(_key(day))
        bars.append(f'<g><title>{label}: ${html.escape(usd(summary.cost))}, {summary.calls:,} calls</title>'
                    f'<rect class="bar" data-day="{label}" x="{x + step * 0.1:.1f}" y="{_HEIGHT - 20 - height:.1f}" '
                    f'width="{step * 0.8:.1f}" height="{height:.1f}"/></g>')
        if len(days) <= 14 or index % max(1, len(days) // 7) == 0:
            bars.append(f'<text x="{x + step / 2:.1f}" y="{_HEIGHT - 5}" text-anchor="middle">{label[5:]}</text>')
    return (f'<svg id="per-day" role="img" aria-label="spend per day" width="{_WIDTH}" height="{_HEIGHT}" '
            f'viewBox="0 0 {_WIDTH} {_HEIGHT}">{"".join(bars)}</svg>')


def _top_bars(report: UsageReport) -> str:
    top = report.groups[:_TOP]
    if not top:
        return '<p class="meta">No calls in this range.</p>'
    peak = top[0][1].cost or Decimal(1)
    row_height = 22
    rows = []
    for index, (key, summary) in enumerate(top):
        label = html.escape(_key(key))
        width = float(summary.cost / peak) * 420
        y = index * row_height
        rows.append(f'<text x="0" y="{y + 15}">{label[:40]}</text>'
                    f'<rect class="bar" x="260" y="{y + 4}" width="{width:.1f}" height="14"/>'
                    f'<text x="{266 + width:.1f}" y="{y + 15}">${html.escape(column_usd(summary.cost))}</text>')
    return (f'<svg id="top" width="{_WIDTH}" height="{row_height * len(top)}" '
            f'viewBox="0 0 {_WIDTH} {row_height * len(top)}">{"".join(rows)}</svg>')


def _table(report: UsageReport) -> str:
    head = "".join(f"<th>{name}</th>" for name in (html.escape(report.by), "calls", "input", "cache read", "output",
                                                    "cost USD", "unpriced", "refused"))
    if report.what_if is not None:
        head += (f"<th>as {html.escape(report.what_if.label)}, USD</th><th>difference</th>")
    rows = []
    for index, (key, s) in enumerate([*report.groups, ("total", report.total)]):
        total = index == len(report.groups)
        cost = "unknown" if s.calls and not s.priced_calls else column_usd(s.cost)
        refused = sum(report.blocked.values()) if total else report.blocked.get(key, 0)
        what_if = report._what_if_of(None if total else key, s, total=total)
        cells = [f"<td>{html.escape(_key(key))}</td>",
                 *(f'<td class="n">{value}</td>' for value in (
                     f"{s.calls:,}", f"{s.input_tokens:,}", f"{s.cache_read_tokens:,}", f"{s.output_tokens:,}",
                     html.escape(cost), f"{s.unpriced_calls:,}", f"{refused:,}",
                     *(html.escape(value or "unknown") for value in what_if.values())))]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table id="groups"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
