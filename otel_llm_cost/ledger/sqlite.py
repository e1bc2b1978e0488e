"""The ledger in one SQLite file: the embedded default for one host, safe for several processes (WAL).

Money stays exact: a cost is stored to 1e-10 USD (`rows.COST_UNIT`), as integer units in `cost_e10`, which
SQL sums exactly and every read takes; `cost_usd` holds the same amount as text, for people reading the
table (a ledger from before 0.2 may hold more digits there: reads ignore them). A crash loses at most the batch not yet written; WAL and
one transaction per batch keep the file consistent.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from otel_llm_cost._sqlite import ThreadConnections
from otel_llm_cost.ledger import COLUMNS, LedgerOpenError, Row, encode_tags
from otel_llm_cost.ledger import rollup
from otel_llm_cost.ledger._sql import (
    INDEXES,
    ROLLUP_UPSERT,
    rollup_migration,
    rollup_rebuild,
    summarize,
    time_range,
)

_E10 = Decimal("1e-10")

_MEASURES_SQL = """SUM(outcome != 'blocked'), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),
    SUM(cache_write_tokens), SUM(reasoning_tokens), COALESCE(SUM(cost_e10), 0),
    SUM(cost_usd IS NULL AND outcome != 'blocked'), SUM(outcome = 'error'), SUM(outcome = 'blocked'),
    SUM(CASE WHEN cost_usd IS NOT NULL THEN input_tokens + output_tokens ELSE 0 END)"""
"""A summary's sums, in `rollup.MEASURES` order (cost in units of 1e-10 USD)."""

_REBUILD = rollup_rebuild(day="substr(ts, 1, 10)", measures=_MEASURES_SQL, tag_source="json_each(llm_calls.tags) AS t")
"""The rollup emptied and filled again from the rows."""

_MIGRATIONS: tuple[str, ...] = (
    # 1: the contract's table, and indexes on time and on each group key
    """
    CREATE TABLE llm_calls (
        id TEXT PRIMARY KEY, ts TEXT NOT NULL, trace_id TEXT, span_id TEXT, service_name TEXT, provider TEXT,
        operation TEXT, request_model TEXT, response_model TEXT, response_id TEXT, session_id TEXT,
        conversation_id TEXT, user_id TEXT, tags TEXT NOT NULL DEFAULT '{}',
        input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
        cost_usd TEXT, cost_e10 INTEGER, cost_source TEXT, pricing_source TEXT, estimated INTEGER NOT NULL,
        outcome TEXT NOT NULL, service_tier TEXT, batch INTEGER NOT NULL, job TEXT, duration_s REAL);
    """ + INDEXES,
    # 2: the day rollup reports read (see `rollup`), filled from the rows already here; the per-key
    # indexes it replaces are dropped, so a row costs less to write
    rollup_migration(
        table="""CREATE TABLE llm_rollup (
            dim TEXT NOT NULL, day TEXT NOT NULL, key TEXT NOT NULL, calls INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cache_read_tokens INTEGER NOT NULL,
            cache_write_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, cost INTEGER NOT NULL,
            unpriced INTEGER NOT NULL, errors INTEGER NOT NULL, blocked INTEGER NOT NULL,
            priced_tokens INTEGER NOT NULL, PRIMARY KEY (dim, day, key)) WITHOUT ROWID""",
        day="substr(ts, 1, 10)", measures=_MEASURES_SQL, tag_source="json_each(llm_calls.tags) AS t"),
    # 3: one precision end to end: reads take `cost_e10`, which the rollup already added; rebuilt from the
    # rows all the same, so every ledger starts this version from its rows
    _REBUILD,
)


_SUMMARY = """
    SELECT {key} AS k, """ + _MEASURES_SQL + """
    FROM llm_calls {where} GROUP BY k
"""


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SqliteLedger:
    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.path = Path(url[len("sqlite:///"):])
        if not self.path.parent.is_dir():
            raise LedgerOpenError(f"directory {str(self.path.parent)!r} does not exist")
        if self.path.is_dir():
            raise LedgerOpenError(f"{str(self.path)!r} is a directory")
        if not create and not self.path.exists():
            raise LedgerOpenError(f"{str(self.path)!r} does not exist (no call has been recorded there)")
        self._connections = ThreadConnections(self.path)
        try:
            self._migrate(self._connection())
        except sqlite3.Error as error:
            self._connections.close()
            raise LedgerOpenError(f"cannot open {str(self.path)!r} as a SQLite ledger: {error}") from None

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    @staticmethod
    def _migrate(connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TEXT)")
            current = connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            for version, script in enumerate(_MIGRATIONS, start=1):
                if version > current:
                    for statement in filter(str.strip, script.split(";")):
                        connection.execute(statement)
                    connection.execute("INSERT INTO schema_version VALUES (?, ?)",
                                       (version, _iso(datetime.now(UTC))))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def write(self, rows: Sequence[Row], fresh: bool = False) -> None:
        """The rows, and what they add to the rollup, in one transaction. A row already in the ledger (a
        spool replay, a batch retried after a lost COMMIT) is skipped, and adds nothing to the rollup;
        `fresh` rows (never tried before) are not looked for."""
        connection = self._connection()
        placeholders = ",".join("?" * (len(COLUMNS) + 1))
        connection.execute("BEGIN IMMEDIATE")  # one writer at a time: nothing lands between the check and the insert
        try:
            unique = rollup.distinct(rows)
            added = unique if fresh else self._not_yet_written(connection, unique)
            connection.executemany(f"INSERT INTO llm_calls ({','.join(COLUMNS)}, cost_e10) VALUES ({placeholders}) "
                                   "ON CONFLICT (id) DO NOTHING", [_values(row) for row in added])
            connection.executemany(ROLLUP_UPSERT.format(ps=",".join("?" * 14)),
                                   [(*slot, *sums) for slot, sums in rollup.deltas(added, _e10).items()])
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def reprice(self, changes: Sequence[tuple[str, Decimal, str]], cost_source: str) -> None:
        """Set these rows' costs (id, stored cost, pricing source) and rebuild the rollup from the rows, in
        one transaction."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "UPDATE llm_calls SET cost_usd = ?, cost_e10 = ?, pricing_source = ?, cost_source = ? WHERE id = ?",
                [(f"{cost:f}", _e10(cost), source, cost_source, row_id) for row_id, cost, source in changes])
            for statement in filter(str.strip, _REBUILD.split(";")):
                connection.execute(statement)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    @staticmethod
    def _not_yet_written(connection: sqlite3.Connection, unique: list[Row]) -> list[Row]:
        present: set[str] = set()
        for start in range(0, len(unique), 500):
            chunk = [row.id for row in unique[start:start + 500]]
            present.update(found for (found,) in connection.execute(
                f"SELECT id FROM llm_calls WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return [row for row in unique if row.id not in present] if present else unique

    @staticmethod
    def is_row_error(error: BaseException) -> bool:
        """A value SQLite cannot take (a number past 64 bits, text it cannot encode), not a locked or
        full database."""
        return isinstance(error, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError,
                                  OverflowError, UnicodeError, TypeError, ValueError))

    def after_fork(self) -> None:
        """`ThreadConnections` already starts afresh in a forked child."""

    def summarize(self, since: datetime | None, until: datetime | None, by: str) -> list[tuple[Any, ...]]:
        # json_each compares the key as it is: no JSON path to escape, so any key works
        found = summarize(self._connection(), since, until, by, summary=_SUMMARY, day="substr(ts, 1, 10)",
                          tag="(SELECT value FROM json_each(llm_calls.tags) WHERE key = ?)", placeholder="?", ts=_iso)
        return [(*row[:7], _from_e10(row[7]), *row[8:]) for row in found]

    def rows(self, since: datetime | None, until: datetime | None) -> Iterator[Row]:
        """The rows, each with its stored cost (`cost_e10`): what the reports added."""
        where, args = time_range(since, until, "?", _iso)
        cursor = self._connection().execute(
            f"SELECT {','.join(COLUMNS)}, cost_e10 FROM llm_calls {where} ORDER BY ts, id", args)
        for values in cursor:
            yield _row(values)

    def close(self) -> None:
        self._connections.close()


def _values(row: Row) -> tuple[Any, ...]:
    cost = row.cost_usd
    return (row.id, _iso(row.ts), row.trace_id, row.span_id, row.service_name, row.provider, row.operation,
            row.request_model, row.response_model, row.response_id, row.session_id, row.conversation_id, row.user_id,
            encode_tags(row.tags), row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens,
            row.reasoning_tokens, None if cost is None else f"{cost:f}", row.cost_source, row.pricing_source,
            int(row.estimated), row.outcome, row.service_tier, int(row.batch), row.job, row.duration_s,
            None if cost is None else _e10(cost))


def _row(values: Sequence[Any]) -> Row:
    data = dict(zip(COLUMNS, values))
    data["ts"] = datetime.fromisoformat(data["ts"].replace("Z", "+00:00"))
    data["tags"] = json.loads(data["tags"] or "{}")
    data["cost_usd"] = None if values[-1] is None else _from_e10(values[-1])
    data["estimated"], data["batch"] = bool(data["estimated"]), bool(data["batch"])
    return Row(**data)


def _e10(amount: Decimal) -> int:
    return int((amount / _E10).to_integral_value(ROUND_HALF_EVEN))


def _from_e10(units: int | None) -> Decimal:
    return (Decimal(units) * _E10).normalize() if units else Decimal(0)
