"""Where budget spend and in-flight reservations live: one process (`MemoryStore`) or several (`SqliteStore`).

Both make a reservation atomic across every budget a call touches: either all of them hold the
estimate, or none does and the call is refused. A reservation expires after `ttl` seconds, so a
process that dies between reserve and settle never holds budget for ever.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Protocol

__all__ = ["Claim", "Reservation", "Refusal", "BudgetStore", "MemoryStore", "SqliteStore", "store_from_url"]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Claim:
    """Hold `amount` on (budget, key, window) if that keeps spent + reserved within `limit`."""

    budget: str
    key: str
    window: str
    amount: Decimal
    limit: Decimal | None  # None: record the reservation, never refuse (a `warn` budget)


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    budget: str
    key: str
    window: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Refusal:
    claim: Claim
    spent: Decimal
    reserved: Decimal


class BudgetStore(Protocol):
    def reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal: ...

    def settle(self, reservations: Sequence[Reservation], actual: Decimal) -> None: ...

    def add(self, budget: str, key: str, window: str, amount: Decimal) -> None: ...

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]: ...

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]: ...

    def clear(self, budget: str | None = None) -> None: ...


class MemoryStore:
    """One process. A lock makes check-and-reserve atomic across threads and asyncio tasks."""

    def __init__(self, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic, max_entries: int = 200_000):
        self.ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._spent: dict[tuple[str, str, str], Decimal] = {}
        self._held: dict[tuple[str, str, str], dict[str, tuple[Decimal, float]]] = {}

    def _reserved(self, slot: tuple[str, str, str], now: float) -> Decimal:
        held = self._held.get(slot)
        if not held:
            return ZERO
        expired = [rid for rid, (_, expires) in held.items() if expires <= now]
        for rid in expired:
            del held[rid]
        return sum((amount for amount, _ in held.values()), ZERO)

    def reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal:
        now = self._clock()
        with self._lock:
            for claim in claims:
                if claim.limit is None:
                    continue
                slot = (claim.budget, claim.key, claim.window)
                spent, reserved = self._spent.get(slot, ZERO), self._reserved(slot, now)
                if spent + reserved + claim.amount > claim.limit:
                    return Refusal(claim, spent, reserved)
            reservations = []
            for claim in claims:
                rid = uuid.uuid4().hex
                self._held.setdefault((claim.budget, claim.key, claim.window), {})[rid] = (claim.amount, now + self.ttl)
                reservations.append(Reservation(rid, claim.budget, claim.key, claim.window, claim.amount))
            return reservations

    def settle(self, reservations: Sequence[Reservation], actual: Decimal) -> None:
        with self._lock:
            for r in reservations:
                slot = (r.budget, r.key, r.window)
                held = self._held.get(slot)
                if held is not None:
                    held.pop(r.id, None)
                    if not held:
                        del self._held[slot]
                if actual:
                    self._spent[slot] = self._spent.get(slot, ZERO) + actual
            self._prune()

    def add(self, budget: str, key: str, window: str, amount: Decimal) -> None:
        with self._lock:
            slot = (budget, key, window)
            self._spent[slot] = self._spent.get(slot, ZERO) + amount
            self._prune()

    def _prune(self) -> None:
        """Per-session keys are unbounded: drop the oldest idle entries beyond the cap."""
        excess = len(self._spent) - self._max_entries
        if excess > 0:
            for slot in [s for s in self._spent if s not in self._held][:excess]:
                del self._spent[slot]

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]:
        slot = (budget, key, window)
        with self._lock:
            return self._spent.get(slot, ZERO), self._reserved(slot, self._clock())

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]:
        now = self._clock()
        with self._lock:
            slots = {s for s in self._spent if s[0] == budget and s[2] == window}
            slots |= {s for s in self._held if s[0] == budget and s[2] == window}
            return [(s[1], self._spent.get(s, ZERO), self._reserved(s, now)) for s in slots]

    def clear(self, budget: str | None = None) -> None:
        with self._lock:
            if budget is None:
                self._spent.clear()
                self._held.clear()
                return
            for table in (self._spent, self._held):
                for slot in [s for s in table if s[0] == budget]:
                    del table[slot]


_UNIT = Decimal("1e-10")
"""SQLite keeps money as integer units of 1e-10 USD, so sums in SQL are exact; amounts round up."""


def _to_units(amount: Decimal) -> int:
    return int((amount / _UNIT).to_integral_value(rounding=ROUND_CEILING))


def _from_units(units: int | None) -> Decimal:
    return (Decimal(units or 0) * _UNIT).normalize() if units else ZERO


class SqliteStore:
    """Several processes share one budget through a SQLite file.

    WAL lets readers go on while one process writes; ``BEGIN IMMEDIATE`` takes the write lock before
    reading the totals, so check-and-reserve is atomic across processes.
    """

    _SCHEMA = """
        CREATE TABLE IF NOT EXISTS spent (
            budget TEXT NOT NULL, key TEXT NOT NULL, window TEXT NOT NULL, units INTEGER NOT NULL,
            PRIMARY KEY (budget, key, window));
        CREATE TABLE IF NOT EXISTS reservations (
            id TEXT PRIMARY KEY, budget TEXT NOT NULL, key TEXT NOT NULL, window TEXT NOT NULL,
            units INTEGER NOT NULL, expires REAL NOT NULL);
        CREATE INDEX IF NOT EXISTS reservations_slot ON reservations (budget, key, window);
    """

    def __init__(self, path: str | os.PathLike[str], ttl: float = 600.0, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.ttl = ttl
        self._clock = clock
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self._connection()
        connection.executescript(self._SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            self._local.connection = connection
        return connection

    def _transaction(self, work: Callable[[sqlite3.Connection], object]) -> object:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return result

    @staticmethod
    def _slot_units(connection: sqlite3.Connection, budget: str, key: str, window: str, now: float) -> tuple[int, int]:
        spent = connection.execute(
            "SELECT units FROM spent WHERE budget=? AND key=? AND window=?", (budget, key, window)).fetchone()
        held = connection.execute(
            "SELECT COALESCE(SUM(units), 0) FROM reservations WHERE budget=? AND key=? AND window=? AND expires>?",
            (budget, key, window, now)).fetchone()
        return (spent[0] if spent else 0), held[0]

    def reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal:
        now = self._clock()

        def work(connection: sqlite3.Connection) -> list[Reservation] | Refusal:
            connection.execute("DELETE FROM reservations WHERE expires<=?", (now,))
            for claim in claims:
                if claim.limit is None:
                    continue
                spent, held = self._slot_units(connection, claim.budget, claim.key, claim.window, now)
                if _from_units(spent + held) + claim.amount > claim.limit:
                    return Refusal(claim, _from_units(spent), _from_units(held))
            reservations = []
            for claim in claims:
                rid = uuid.uuid4().hex
                connection.execute(
                    "INSERT INTO reservations (id, budget, key, window, units, expires) VALUES (?,?,?,?,?,?)",
                    (rid, claim.budget, claim.key, claim.window, _to_units(claim.amount), now + self.ttl))
                reservations.append(Reservation(rid, claim.budget, claim.key, claim.window, claim.amount))
            return reservations

        return self._transaction(work)  # type: ignore[return-value]

    def settle(self, reservations: Sequence[Reservation], actual: Decimal) -> None:
        units = _to_units(actual)

        def work(connection: sqlite3.Connection) -> None:
            for r in reservations:
                connection.execute("DELETE FROM reservations WHERE id=?", (r.id,))
                if units:
                    self._add_units(connection, r.budget, r.key, r.window, units)

        self._transaction(work)

    @staticmethod
    def _add_units(connection: sqlite3.Connection, budget: str, key: str, window: str, units: int) -> None:
        connection.execute(
            "INSERT INTO spent (budget, key, window, units) VALUES (?,?,?,?) "
            "ON CONFLICT (budget, key, window) DO UPDATE SET units = units + excluded.units",
            (budget, key, window, units))

    def add(self, budget: str, key: str, window: str, amount: Decimal) -> None:
        self._transaction(lambda c: self._add_units(c, budget, key, window, _to_units(amount)))

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]:
        spent, held = self._slot_units(self._connection(), budget, key, window, self._clock())
        return _from_units(spent), _from_units(held)

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]:
        connection = self._connection()
        now = self._clock()
        rows = connection.execute(
            "SELECT key FROM spent WHERE budget=? AND window=? UNION "
            "SELECT key FROM reservations WHERE budget=? AND window=? AND expires>?",
            (budget, window, budget, window, now)).fetchall()
        result = []
        for (key,) in rows:
            spent, held = self._slot_units(connection, budget, key, window, now)
            result.append((key, _from_units(spent), _from_units(held)))
        return result

    def clear(self, budget: str | None = None) -> None:
        def work(connection: sqlite3.Connection) -> None:
            for table in ("spent", "reservations"):
                if budget is None:
                    connection.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
                else:
                    connection.execute(f"DELETE FROM {table} WHERE budget=?", (budget,))  # noqa: S608

        self._transaction(work)


def store_from_url(url: str) -> BudgetStore:
    """`memory` or `sqlite:///path/to/file.db` (the OTEL_LLM_COST_BUDGET_STORE values)."""
    if url == "memory":
        return MemoryStore()
    if url.startswith("sqlite:///"):  # as SQLAlchemy: sqlite:///relative.db, sqlite:////absolute.db
        return SqliteStore(url[len("sqlite:///"):])
    raise ValueError(f"unknown budget store {url!r}")
