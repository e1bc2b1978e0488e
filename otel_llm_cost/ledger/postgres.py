"""The ledger in PostgreSQL (psycopg 3), for many hosts writing to one book. `cost_usd` is `NUMERIC` holding
each cost as stored to 1e-10 USD (`rows.COST_UNIT`), so sums are exact and add up to the rows; tags are `jsonb`. Migrations take an advisory lock, so hosts starting together migrate once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from otel_llm_cost.ledger import COLUMNS, LedgerOpenError, Row
from otel_llm_cost.ledger import rollup
from otel_llm_cost.ledger._sql import (
    INDEXES,
    ROLLUP_UPSERT,
    rollup_migration,
    rollup_rebuild,
    rollup_selects,
    summarize,
    time_range,
)

_DAY = "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
_MEASURES_SQL = """COUNT(*) FILTER (WHERE outcome <> 'blocked'), SUM(input_tokens), SUM(output_tokens),
    SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), COALESCE(SUM(cost_usd), 0),
    COUNT(*) FILTER (WHERE cost_usd IS NULL AND outcome <> 'blocked'), COUNT(*) FILTER (WHERE outcome = 'error'),
    COUNT(*) FILTER (WHERE outcome = 'blocked'),
    COALESCE(SUM(input_tokens + output_tokens) FILTER (WHERE cost_usd IS NOT NULL), 0)"""
"""A summary's sums, in `rollup.MEASURES` order."""

_TAGS = "jsonb_each_text(llm_calls.tags) AS t(key, value)"

_REBUILD = rollup_rebuild(day=_DAY, measures=_MEASURES_SQL, tag_source=_TAGS)
"""The rollup emptied and filled again from the rows."""

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE llm_calls (
        id UUID PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, trace_id TEXT, span_id TEXT, service_name TEXT, provider TEXT,
        operation TEXT, request_model TEXT, response_model TEXT, response_id TEXT, session_id TEXT,
        conversation_id TEXT, user_id TEXT, tags JSONB NOT NULL DEFAULT '{}',
        input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, cache_read_tokens BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL,
        cost_usd NUMERIC(30, 15), cost_source TEXT, pricing_source TEXT, estimated BOOLEAN NOT NULL,
        outcome TEXT NOT NULL, service_tier TEXT, batch BOOLEAN NOT NULL, job TEXT, duration_s DOUBLE PRECISION);
    """ + INDEXES,
    # 2: the day rollup reports read (see `rollup`), filled from the rows already here; the per-key
    # indexes it replaces are dropped, so a row costs less to write
    rollup_migration(
        table="""CREATE TABLE llm_rollup (
            dim TEXT NOT NULL, day TEXT NOT NULL, key TEXT NOT NULL, calls BIGINT NOT NULL,
            input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL, cache_read_tokens BIGINT NOT NULL,
            cache_write_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL, cost NUMERIC(38, 15) NOT NULL,
            unpriced BIGINT NOT NULL, errors BIGINT NOT NULL, blocked BIGINT NOT NULL,
            priced_tokens BIGINT NOT NULL, PRIMARY KEY (dim, day, key))""",
        day=_DAY, measures=_MEASURES_SQL, tag_source=_TAGS),
    # 3: one precision end to end: each cost as stored to 1e-10 USD (half to even, as `rows.stored_cost`
    # rounds a new one), and the rollup rebuilt from those stored costs
    """
    UPDATE llm_calls SET cost_usd = CASE
        WHEN cost_usd * 1e10 - trunc(cost_usd * 1e10) = 0.5 AND mod(trunc(cost_usd * 1e10), 2) = 0
        THEN trunc(cost_usd * 1e10) / 1e10 ELSE round(cost_usd, 10) END
    WHERE cost_usd IS NOT NULL AND cost_usd <> round(cost_usd, 10);
    """ + _REBUILD,
)


_SUMMARY = """
    SELECT {key} AS k, """ + _MEASURES_SQL + """
    FROM llm_calls {where} GROUP BY 1
"""

_COPY_TYPES = ["uuid", "timestamptz", *["text"] * 11, "jsonb", *["int8"] * 5, "numeric", "text", "text", "bool", "text",
               "text", "bool", "text", "float8"]
"""The columns' types, in `COLUMNS` order, for a binary COPY (no text to parse on either side)."""
_INCOMING_TABLE = ("CREATE TEMPORARY TABLE IF NOT EXISTS llm_calls_incoming (LIKE llm_calls INCLUDING DEFAULTS) "
                   "ON COMMIT DELETE ROWS")
"""Where a batch lands first (COPY, the fastest way in): one per connection, emptied at each commit."""
_ROLLED_UP = ("response_model, request_model, provider, session_id, user_id, service_name, job, tags, input_tokens, "
              "output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, outcome")
"""The columns the rollup reads of a new row."""
_INSERT_AND_ROLL_UP = (
    f"WITH added AS (INSERT INTO llm_calls ({','.join(COLUMNS)}) SELECT {','.join(COLUMNS)} FROM llm_calls_incoming "
    f"ON CONFLICT (id) DO NOTHING RETURNING {_ROLLED_UP}, {_DAY} AS utc_day), "  # the day once a row
    "deltas AS (" + " UNION ALL ".join(rollup_selects("added", day="utc_day", measures=_MEASURES_SQL, tag_source=_TAGS))
    + ") " + ROLLUP_UPSERT.replace("VALUES ({ps})", "SELECT * FROM deltas ORDER BY 1, 2, 3")
)
"""The batch's new rows, and their sums added to the rollup, in one statement. The upserts go in key
order on every host, so two writers never wait on each other in a cycle."""

_MIGRATION_LOCK = 0x6C6C6D636F7374  # "llmcost": one advisory lock id for every host

_inherited: list[Any] = []
"""Connections a forked child inherited: referenced, so the child never closes the parent's session."""


class PostgresLedger:
    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise LedgerOpenError("the psycopg package is not installed: pip install 'otel-llm-cost[postgres]'") from None
        self._psycopg = psycopg
        self.url = url
        self._local = threading.local()
        try:
            self._migrate(self._connection())
        except psycopg.Error as error:
            raise LedgerOpenError(f"cannot open the PostgreSQL ledger: {str(error).strip().splitlines()[0]}") from None

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = self._psycopg.connect(self.url, connect_timeout=5, autocommit=False)
            self._local.connection = connection
            self._local.incoming = False
        return connection

    def _writing_connection(self) -> Any:
        """The connection, with its temporary table for incoming batches (made once, in its own
        transaction, so a batch that fails cannot take it away)."""
        connection = self._connection()
        if not self._local.incoming:
            with connection.transaction():
                connection.execute(_INCOMING_TABLE)
            connection.commit()
            self._local.incoming = True
        return connection

    @staticmethod
    def _migrate(connection: Any) -> None:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
                               "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            current = connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
            for version, script in enumerate(_MIGRATIONS, start=1):
                if version > current:
                    connection.execute(script)
                    connection.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        connection.commit()

    def write(self, rows: Sequence[Row], fresh: bool = False) -> None:
        """The rows, and what they add to the rollup, in one transaction: COPY into a temporary table, then
        one statement inserts them and adds to the rollup what the insert really added (RETURNING), so a
        row already in the ledger adds nothing, whichever host wrote it first."""
        unique = rollup.distinct(rows)
        try:
            connection = self._writing_connection()
            with connection.transaction(), connection.cursor() as cursor:
                with cursor.copy(f"COPY llm_calls_incoming ({','.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(_COPY_TYPES)
                    for row in unique:
                        copy.write_row(_values(row))
                cursor.execute(_INSERT_AND_ROLL_UP)
            connection.commit()
        except self._psycopg.OperationalError:
            self._local.connection = None  # reconnect on the next batch
            raise

    def reprice(self, changes: Sequence[tuple[str, Decimal, str]], cost_source: str) -> None:
        """Set these rows' costs (id, stored cost, pricing source) and rebuild the rollup from the rows, in
        one transaction."""
        connection = self._connection()
        with connection.transaction(), connection.cursor() as cursor:
            cursor.executemany(
                "UPDATE llm_calls SET cost_usd = %s, pricing_source = %s, cost_source = %s WHERE id = %s",
                [(cost, source, cost_source, row_id) for row_id, cost, source in changes])
            cursor.execute(_REBUILD)
        connection.commit()

    def is_row_error(self, error: BaseException) -> bool:
        """A value PostgreSQL refuses (out of range, not encodable, a NUL left in text), not a server that
        is down or a connection that broke."""
        psycopg = self._psycopg
        return isinstance(error, (psycopg.DataError, psycopg.IntegrityError, OverflowError, UnicodeError,
                                  TypeError, ValueError)) and not isinstance(error, psycopg.OperationalError)

    def after_fork(self) -> None:
        """The parent's connections stay open for the parent: keep them referenced (never finalised
        here) and connect afresh."""
        _inherited.append(self._local)
        self._local = threading.local()

    def summarize(self, since: datetime | None, until: datetime | None, by: str) -> list[tuple[Any, ...]]:
        connection = self._connection()
        try:
            result = [(*row[:7], row[7] if row[7] is not None else Decimal(0), *row[8:])
                      for row in summarize(connection, since, until, by, summary=_SUMMARY, day=_DAY,
                                           tag="tags ->> %s", placeholder="%s", ts=_same)]
        finally:
            connection.rollback()
        return [tuple(int(v) if isinstance(v, Decimal) and i not in (0, 7) else v for i, v in enumerate(row))
                for row in result]

    def rows(self, since: datetime | None, until: datetime | None) -> Iterator[Row]:
        where, args = time_range(since, until, "%s", _same)
        connection = self._connection()
        try:
            cursor = connection.execute(f"SELECT {','.join(COLUMNS)} FROM llm_calls {where} ORDER BY ts, id", args)
            for values in cursor:
                data = dict(zip(COLUMNS, values))
                data["id"] = str(data["id"])
                data["cost_usd"] = None if data["cost_usd"] is None else data["cost_usd"].normalize()
                yield Row(**data)
        finally:
            connection.rollback()

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def _values(row: Row) -> tuple[Any, ...]:
    from psycopg.types.json import Jsonb

    return (uuid.UUID(row.id), row.ts.astimezone(UTC), row.trace_id, row.span_id, row.service_name, row.provider, row.operation,
            row.request_model, row.response_model, row.response_id, row.session_id, row.conversation_id, row.user_id,
            Jsonb(row.tags), row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens,
            row.reasoning_tokens, row.cost_usd, row.cost_source, row.pricing_source, row.estimated, row.outcome,
            row.service_tier, row.batch, row.job, row.duration_s)


def _same(value: datetime) -> datetime:
    return value
