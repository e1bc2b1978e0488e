"""`SqliteStore`: budgets shared by the processes of one host through a SQLite file."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

from otel_llm_cost._sqlite import ThreadConnections
from otel_llm_cost.budget.stores._base import (
    THRESHOLD_MARK, ZERO, Claim, Refusal, Reservation, StoreOpenError, StoreUnavailable, Write, WritesInBatches,
    ceil_to, new_id,
)

__all__ = ["SqliteStore"]

_UNIT = Decimal("1e-10")
"""SQLite keeps money as integer units of 1e-10 USD, so sums in SQL are exact; amounts round up."""


def _to_units(amount: Decimal) -> int:
    return ceil_to(_UNIT, amount)


def _from_units(units: int | None) -> Decimal:
    return (Decimal(units or 0) * _UNIT).normalize() if units else ZERO


class SqliteStore(WritesInBatches):
    """Several processes share one budget through a SQLite file.

    WAL lets readers go on while one process writes; ``BEGIN IMMEDIATE`` takes the write lock before
    reading the totals, so check-and-reserve is atomic across processes. A transaction either commits
    or leaves nothing, so a write that failed may simply be retried. A file that cannot be a budget
    store (missing directory, a directory, not a database, unwritable) raises `StoreOpenError` here,
    at start-up; a fault later (disk error, lock timeout) raises `StoreUnavailable`.
    """

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS spent (
            budget TEXT NOT NULL, key TEXT NOT NULL, window TEXT NOT NULL, units INTEGER NOT NULL,
            PRIMARY KEY (budget, key, window));
        CREATE TABLE IF NOT EXISTS reservations (
            id TEXT PRIMARY KEY, budget TEXT NOT NULL, key TEXT NOT NULL, window TEXT NOT NULL,
            units INTEGER NOT NULL, expires REAL NOT NULL);
        CREATE INDEX IF NOT EXISTS reservations_slot ON reservations (budget, key, window);
        CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (expires);
        CREATE TABLE IF NOT EXISTS held (
            budget TEXT NOT NULL, key TEXT NOT NULL, window TEXT NOT NULL, units INTEGER NOT NULL,
            PRIMARY KEY (budget, key, window));
    """
    # `held` keeps each slot's sum of live reservations, so a check is two lookups however many calls are
    # in flight (settles are applied behind the calls, so a few hundred can be). Reservations that lapse
    # are taken out of it when a reservation next touches the store.

    def __init__(self, path: str | os.PathLike[str], ttl: float = 600.0, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.ttl = ttl
        self._clock = clock
        self._next_purge = 0.0
        self._connections = ThreadConnections(self.path)
        if not self.path.parent.is_dir():
            raise StoreOpenError(f"directory {str(self.path.parent)!r} does not exist")
        if self.path.is_dir():
            raise StoreOpenError(f"{str(self.path)!r} is a directory")
        try:
            self._connection().executescript(self._SCHEMA)
        except sqlite3.Error as error:
            self._connections.close()
            raise StoreOpenError(f"cannot open {str(self.path)!r} as a SQLite database: {error}") from None

    def quantize(self, amount: Decimal) -> Decimal:
        return _from_units(_to_units(amount))

    def _connection(self) -> sqlite3.Connection:
        return self._connections.get()

    def _transaction(self, work: Callable[[sqlite3.Connection], object]) -> object:
        try:
            connection = self._connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result
        except sqlite3.OperationalError as error:  # locked past the busy timeout, disk I/O, file gone
            raise StoreUnavailable(str(error)) from error

    @staticmethod
    def _slot_units(connection: sqlite3.Connection, budget: str, key: str, window: str, now: float,
                    purged: bool = False) -> tuple[int, int]:
        """Spent and held units of a slot. Unless the transaction just purged lapsed reservations,
        `held` may still count some: those are taken off here (reads do not write)."""
        slot = (budget, key, window)
        spent = connection.execute("SELECT units FROM spent WHERE budget=? AND key=? AND window=?", slot).fetchone()
        held = connection.execute("SELECT units FROM held WHERE budget=? AND key=? AND window=?", slot).fetchone()
        lapsed = 0 if purged else connection.execute(
            "SELECT COALESCE(SUM(units), 0) FROM reservations INDEXED BY reservations_expiry "
            "WHERE expires<=? AND budget=? AND key=? AND window=?", (now, *slot)).fetchone()[0]
        return (spent[0] if spent else 0), max(0, (held[0] if held else 0) - lapsed)

    @staticmethod
    def _release(connection: sqlite3.Connection, rows: Sequence[tuple[str, str, str, int]]) -> None:
        """Take released or lapsed reservations (budget, key, window, units) out of their slots' sums."""
        if rows:
            connection.executemany(
                "UPDATE held SET units = MAX(0, units - ?) WHERE budget=? AND key=? AND window=?",
                [(units, budget, key, window) for budget, key, window, units in rows])

    PURGE_EVERY = 1.0
    """Seconds between looks for lapsed reservations: a reservation lapses after `ttl` (minutes), so
    taking it out of its slot's sum a second late only over-reserves, and most checks skip the look."""

    def _purge(self, connection: sqlite3.Connection, now: float) -> bool:
        """Take lapsed reservations out; False when it is not yet time to look (the sums may then count
        reservations that lapsed within the last `PURGE_EVERY` seconds: over-reserving, never under)."""
        if now < self._next_purge:
            return False
        self._next_purge = now + self.PURGE_EVERY
        lapsed = connection.execute(
            "DELETE FROM reservations WHERE expires<=? RETURNING budget, key, window, units", (now,)).fetchall()
        self._release(connection, lapsed)
        return True

    def reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal:
        now = self._clock()

        def work(connection: sqlite3.Connection) -> list[Reservation] | Refusal:
            self._purge(connection, now)
            for claim in claims:
                if claim.limit is None:
                    continue
                # held counts live reservations, and at most a second's worth of lapsed ones: safe to check
                spent, held = self._slot_units(connection, claim.budget, claim.key, claim.window, now, purged=True)
                if _from_units(spent + held) - claim.credit + claim.amount > claim.limit:
                    return Refusal(claim, _from_units(spent), _from_units(held))
            reservations = []
            for claim in claims:
                rid, units = new_id(), _to_units(claim.amount)
                connection.execute(
                    "INSERT INTO reservations (id, budget, key, window, units, expires) VALUES (?,?,?,?,?,?)",
                    (rid, claim.budget, claim.key, claim.window, units, now + self.ttl))
                connection.execute(
                    "INSERT INTO held (budget, key, window, units) VALUES (?,?,?,?) "
                    "ON CONFLICT (budget, key, window) DO UPDATE SET units = units + excluded.units",
                    (claim.budget, claim.key, claim.window, units))
                reservations.append(Reservation(rid, claim.budget, claim.key, claim.window, claim.amount))
            return reservations

        return self._transaction(work)  # type: ignore[return-value]

    def apply_writes(self, writes: Sequence[Write]) -> None:
        """Settles and adds in one transaction: the settler's batch."""

        def work(connection: sqlite3.Connection) -> None:
            released = []
            for write in writes:
                for r in write.reservations:
                    if r.id:
                        released += connection.execute(
                            "DELETE FROM reservations WHERE id=? RETURNING budget, key, window, units", (r.id,)).fetchall()
            self._release(connection, released)
            added: dict[tuple[str, str, str], int] = {}
            for write in writes:
                units = _to_units(write.amount)
                if units:
                    for slot in write.added_to():
                        added[slot] = added.get(slot, 0) + units
            if added:
                connection.executemany(
                    "INSERT INTO spent (budget, key, window, units) VALUES (?,?,?,?) "
                    "ON CONFLICT (budget, key, window) DO UPDATE SET units = units + excluded.units",
                    [(*slot, units) for slot, units in added.items()])

        self._transaction(work)

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]:
        try:
            spent, held = self._slot_units(self._connection(), budget, key, window, self._clock())
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(str(error)) from error
        return _from_units(spent), _from_units(held)

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]:
        try:
            return self._keys(budget, window)
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(str(error)) from error

    def _keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]:
        connection = self._connection()
        now = self._clock()
        rows = connection.execute(
            "SELECT key FROM spent WHERE budget=? AND window=? UNION "
            "SELECT key FROM held WHERE budget=? AND window=? AND units > 0",
            (budget, window, budget, window)).fetchall()
        result = []
        for (key,) in rows:
            spent, held = self._slot_units(connection, budget, key, window, now)
            result.append((key, _from_units(spent), _from_units(held)))
        return result

    def clear(self, budget: str | None = None) -> None:
        def work(connection: sqlite3.Connection) -> None:
            for table in ("spent", "reservations", "held"):
                if budget is None:
                    connection.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
                else:  # the budget and its threshold claims
                    connection.execute(f"DELETE FROM {table} WHERE budget=? OR substr(budget, 1, ?)=?",  # noqa: S608
                                       (budget, len(budget) + len(THRESHOLD_MARK), budget + THRESHOLD_MARK))

        self._transaction(work)
