"""Where budget spend and in-flight reservations live: one process (`MemoryStore`), several on one host
(`SqliteStore`), or several hosts (`RedisStore`).

Each makes a reservation atomic across every budget a call touches: either all of them hold the
estimate, or none does and the call is refused. A reservation expires after `ttl` seconds, so a
process that dies between reserve and settle never holds budget for ever.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any, Protocol

from otel_llm_cost._sqlite import ThreadConnections

__all__ = [
    "Claim", "Reservation", "Refusal", "BudgetStore", "MemoryStore", "SqliteStore", "RedisStore", "store_from_url",
    "StoreUnavailable", "StoreOpenError",
]

ZERO = Decimal(0)


class _Ids:
    """Unique ids for reservations and writes, cheaper than `uuid4()` (a getrandom call each): a random
    prefix per process (drawn again in a forked child) and a counter."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._count):x}"


new_id = _Ids()
os.register_at_fork(after_in_child=new_id.reset)


class StoreUnavailable(Exception):
    """The store could not be reached. The operation did not take effect, or (for a write given an
    `op_id`) may be retried safely: a write is applied at most once per `op_id`."""


class StoreOpenError(ValueError):
    """The store named by a URL cannot be used at all (bad path, not a database, missing package)."""


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

    def settle(self, reservations: Sequence[Reservation], actual: Decimal, op_id: str | None = None) -> None: ...

    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None: ...

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]: ...

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]: ...

    def clear(self, budget: str | None = None) -> None: ...


class MemoryStore:
    """One process. A lock makes check-and-reserve atomic across threads and asyncio tasks. Each slot keeps
    the sum it holds, so a check costs the same however many reservations are in flight; with one `ttl`
    and a monotonic clock, reservations expire in the order they were made (a dict's order)."""

    def __init__(self, ttl: float = 600.0, clock: Callable[[], float] = time.monotonic, max_entries: int = 200_000):
        self.ttl = ttl
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._spent: dict[tuple[str, str, str], Decimal] = {}
        self._held: dict[tuple[str, str, str], dict[str, tuple[Decimal, float]]] = {}
        self._held_sum: dict[tuple[str, str, str], Decimal] = {}

    def _reserved(self, slot: tuple[str, str, str], now: float) -> Decimal:
        held = self._held.get(slot)
        if not held:
            return ZERO
        while held:
            rid, (amount, expires) = next(iter(held.items()))
            if expires > now:
                break
            del held[rid]
            self._held_sum[slot] -= amount
        if not held:
            del self._held[slot]
            del self._held_sum[slot]
            return ZERO
        return self._held_sum[slot]

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
                rid = new_id()
                slot = (claim.budget, claim.key, claim.window)
                self._held.setdefault(slot, {})[rid] = (claim.amount, now + self.ttl)
                self._held_sum[slot] = self._held_sum.get(slot, ZERO) + claim.amount
                reservations.append(Reservation(rid, claim.budget, claim.key, claim.window, claim.amount))
            return reservations

    def settle(self, reservations: Sequence[Reservation], actual: Decimal, op_id: str | None = None) -> None:
        with self._lock:
            for r in reservations:
                slot = (r.budget, r.key, r.window)
                held = self._held.get(slot)
                if held is not None and held.pop(r.id, None) is not None:
                    if held:
                        self._held_sum[slot] -= r.amount
                    else:
                        del self._held[slot]
                        del self._held_sum[slot]
                if actual:
                    self._spent[slot] = self._spent.get(slot, ZERO) + actual
            self._prune()

    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None:
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
                self._held_sum.clear()
                return
            for table in (self._spent, self._held, self._held_sum):
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
                if _from_units(spent + held) + claim.amount > claim.limit:
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

    def settle(self, reservations: Sequence[Reservation], actual: Decimal, op_id: str | None = None) -> None:
        self.apply_writes([(op_id or "", reservations, (), actual)])

    def apply_writes(self, writes: Sequence[tuple[str, Sequence[Reservation], Sequence[tuple[str, str, str]],
                                             Decimal]]) -> None:
        """Settles and adds, queued by the settler, in one transaction: (op id, reservations released,
        slots added to when there are no reservations, amount) each."""

        def work(connection: sqlite3.Connection) -> None:
            released = []
            for _, reservations, _, _ in writes:
                for r in reservations:
                    if r.id:
                        released += connection.execute(
                            "DELETE FROM reservations WHERE id=? RETURNING budget, key, window, units", (r.id,)).fetchall()
            self._release(connection, released)
            added: dict[tuple[str, str, str], int] = {}
            for _, reservations, slots, amount in writes:
                units = _to_units(amount)
                if units:
                    for slot in slots if not reservations else [(r.budget, r.key, r.window) for r in reservations]:
                        added[slot] = added.get(slot, 0) + units
            if added:
                connection.executemany(
                    "INSERT INTO spent (budget, key, window, units) VALUES (?,?,?,?) "
                    "ON CONFLICT (budget, key, window) DO UPDATE SET units = units + excluded.units",
                    [(*slot, units) for slot, units in added.items()])

        self._transaction(work)

    @staticmethod
    def _add_units(connection: sqlite3.Connection, budget: str, key: str, window: str, units: int) -> None:
        connection.execute(
            "INSERT INTO spent (budget, key, window, units) VALUES (?,?,?,?) "
            "ON CONFLICT (budget, key, window) DO UPDATE SET units = units + excluded.units",
            (budget, key, window, units))

    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None:
        self._transaction(lambda c: self._add_units(c, budget, key, window, _to_units(amount)))

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
                else:
                    connection.execute(f"DELETE FROM {table} WHERE budget=?", (budget,))  # noqa: S608

        self._transaction(work)


_NANO = Decimal("1e-9")
"""Redis keeps money as integer nano-dollars: its Lua numbers are doubles, exact up to 2**53 nano-dollars
(about $9 million in one budget window), and amounts round up."""


def _to_nanos(amount: Decimal) -> int:
    return int((amount / _NANO).to_integral_value(rounding=ROUND_CEILING))


def _from_nanos(nanos: int | float | None) -> Decimal:
    return (Decimal(int(nanos)) * _NANO).normalize() if nanos else ZERO


# All keys share the hash tag `{prefix}`, so one script may touch them all, on Redis Cluster too.
# Per (budget, key, window): a counter of settled spend, the live reservations (a sorted set scored by
# expiry, members `id:nanos`) and the sum they hold (a counter), so a check is a few lookups however many
# calls are in flight; a reservation that lapses is taken out of the sum when a reservation next looks.
_HELD = """
local function held_now(held_key, sum_key, now)
  local lapsed = redis.call('ZRANGEBYSCORE', held_key, '-inf', now)
  if #lapsed > 0 then
    local gone = 0
    for _, member in ipairs(lapsed) do
      gone = gone + tonumber(string.match(member, ':(%d+)$'))
    end
    redis.call('ZREMRANGEBYSCORE', held_key, '-inf', now)
    if redis.call('DECRBY', sum_key, gone) < 0 then
      redis.call('SET', sum_key, 0)
    end
  end
  return math.max(0, tonumber(redis.call('GET', sum_key) or '0'))
end
"""

# KEYS, per claim i: spent counter, reservations, held sum, the (budget, window) slot index.
# ARGV: now, ttl, n, then per claim: nano-dollars, limit (-1: none), id, slot, retention (0: keep).
_RESERVE = _HELD + """
local now, ttl, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, n do
  local k, a = 4 * (i - 1), 3 + 5 * (i - 1)
  local held = held_now(KEYS[k + 2], KEYS[k + 3], now)
  local limit = tonumber(ARGV[a + 2])
  if limit >= 0 then
    local spent = tonumber(redis.call('GET', KEYS[k + 1]) or '0')
    if spent + held + tonumber(ARGV[a + 1]) > limit then
      return {i, tostring(spent), tostring(held)}
    end
  end
end
for i = 1, n do
  local k, a = 4 * (i - 1), 3 + 5 * (i - 1)
  redis.call('ZADD', KEYS[k + 2], now + ttl, ARGV[a + 3] .. ':' .. ARGV[a + 1])
  redis.call('INCRBY', KEYS[k + 3], ARGV[a + 1])
  redis.call('SADD', KEYS[k + 4], ARGV[a + 4])
  local retention = tonumber(ARGV[a + 5])
  if retention > 0 then
    redis.call('EXPIRE', KEYS[k + 2], retention)
    redis.call('EXPIRE', KEYS[k + 3], retention)
    redis.call('EXPIRE', KEYS[k + 4], retention)
  end
end
return {0}
"""

# Settle or add spend, at most once per operation id: the marker key is set first, with NX, so a write
# retried after an ambiguous failure (the connection dropped during the reply) is never applied twice.
# KEYS: marker, then per item i: reservations, spent counter, the slot index, held sum.
# ARGV: marker ttl, n, nano-dollars, then per item: reservation member ('' for none), slot, retention.
_APPLY = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return 0
end
local n, nanos = tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, n do
  local k, a = 1 + 4 * (i - 1), 3 + 3 * (i - 1)
  local member = ARGV[a + 1]
  if member ~= '' and redis.call('ZREM', KEYS[k + 1], member) == 1 then
    if redis.call('DECRBY', KEYS[k + 4], tonumber(string.match(member, ':(%d+)$'))) < 0 then
      redis.call('SET', KEYS[k + 4], 0)
    end
  end
  if nanos > 0 then
    redis.call('INCRBY', KEYS[k + 2], nanos)
    redis.call('SADD', KEYS[k + 3], ARGV[a + 2])
    local retention = tonumber(ARGV[a + 3])
    if retention > 0 then
      redis.call('EXPIRE', KEYS[k + 2], retention)
      redis.call('EXPIRE', KEYS[k + 3], retention)
    end
  end
end
return 1
"""

_DAY = 86_400
_REPLICATION_WAIT = 1.0
"""Seconds a batch of settles waits for a replica behind Sentinel before it is tried again."""
_APPLIED_MARKER_TTL = 8 * _DAY
"""How long an applied write's id is remembered: longer than any outage whose writes are still queued."""


def _retention(window: str) -> int:
    """Seconds to keep a window's data once written: a while past the window's end, so a finished
    hour, day, week or month leaves nothing behind. `total` is kept until cleared."""
    if window == "total":
        return 0
    if "T" in window:  # 2026-11-25T10
        return 2 * _DAY
    if "-W" in window:  # 2026-W48
        return 15 * _DAY
    if len(window) == 10:  # 2026-11-25
        return 3 * _DAY
    return 63 * _DAY  # 2026-11


class RedisStore:
    """Processes on several hosts share one budget through Redis.

    A Lua script checks every budget a call touches and reserves on all of them in one atomic step.
    Per (budget, key, window) there is a counter of settled spend and a sorted set of reservations
    scored by their expiry, so a crashed process's reservation lapses by itself; a set per
    (budget, window) lists its keys for `keys()`. The data of an hour, day, week or month expires
    some time after it ends. Every key starts with the hash tag `{prefix}`.
    """

    PAUSE_AFTER_FAILURE = 2.0
    """Seconds the store is not tried again after Redis could not be reached: calls are decided at once
    (by the failure policy) instead of each waiting on a dead connection."""

    def __init__(self, url: str = "redis://localhost:6379/0", ttl: float = 600.0,
                 clock: Callable[[], float] = time.time, prefix: str = "llm_cost", client: object = None):
        try:
            import redis
        except ImportError:
            raise StoreOpenError("the redis package is not installed: pip install 'otel-llm-cost[redis]'") from None
        if client is None:
            client = _redis_client(redis, url)
        self.ttl = ttl
        self._clock = clock
        self._redis: Any = client
        self._unreachable = (redis.ConnectionError, redis.TimeoutError)
        self._paused_until = 0.0
        self._tag = "{" + prefix + "}"
        self._reserve_script = self._redis.register_script(_RESERVE)
        self._apply_script = self._redis.register_script(_APPLY)
        self._replicated = url.startswith("redis+sentinel://")
        """Behind Sentinel, a failover promotes a replica that may not have the master's last writes: a
        batch of writes counts as applied only once a replica has it too (`WAIT`), while the master has
        one; until then it stays queued and is applied again, at most once by its op id, on whichever
        master there is. A master left without replicas (its only one died) has nothing to wait for."""
        self._replicas = (0, 0.0)

    def _guarded(self, work: Callable[[], Any]) -> Any:
        """Run `work` against Redis; after a connection failure, fail fast for a few seconds."""
        if time.monotonic() < self._paused_until:
            raise StoreUnavailable("Redis unreachable, retrying shortly")
        try:
            return work()
        except self._unreachable as error:
            self._paused_until = time.monotonic() + self.PAUSE_AFTER_FAILURE
            raise StoreUnavailable(str(error) or type(error).__name__) from error

    # --- key layout: {prefix}:spent:["budget","key","window"], :held:[...], :slots:["budget","window"] ---
    @staticmethod
    def _slot(budget: str, key: str, window: str) -> str:
        return json.dumps([budget, key, window], separators=(",", ":"))

    def _keys(self, slot: str) -> tuple[str, str, str]:
        """The slot's spent counter, reservations and held sum."""
        return f"{self._tag}:spent:{slot}", f"{self._tag}:held:{slot}", f"{self._tag}:heldsum:{slot}"

    def _index(self, budget: str, window: str) -> str:
        return f"{self._tag}:slots:" + json.dumps([budget, window], separators=(",", ":"))

    def reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal:
        return self._guarded(lambda: self._reserve(claims))  # type: ignore[no-any-return]

    def _reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal:
        now = self._clock()
        keys: list[str] = []
        args: list[object] = [repr(now), repr(self.ttl), len(claims)]
        reservations = []
        for claim in claims:
            rid = new_id()
            slot = self._slot(claim.budget, claim.key, claim.window)
            keys.extend((*self._keys(slot), self._index(claim.budget, claim.window)))  # 4 a claim
            limit = -1 if claim.limit is None else _to_nanos(claim.limit) if claim.limit >= 0 else 0
            args.extend([_to_nanos(claim.amount), limit, rid, slot, _retention(claim.window)])
            reservations.append(Reservation(rid, claim.budget, claim.key, claim.window, claim.amount))
        result = self._reserve_script(keys=keys, args=args)
        refused = int(result[0])
        if refused:
            return Refusal(claims[refused - 1], _from_nanos(float(result[1])), _from_nanos(float(result[2])))
        return reservations

    def _apply(self, op_id: str | None, items: Sequence[tuple[str, str, str, str]], actual: Decimal) -> None:
        """Release reservations and add spend in one script, at most once per `op_id`."""
        keys, args = self._apply_arguments(op_id, items, actual)
        self._guarded(lambda: self._apply_script(keys=keys, args=args))

    def _apply_arguments(self, op_id: str | None, items: Sequence[tuple[str, str, str, str]],
                         actual: Decimal) -> tuple[list[str], list[object]]:
        """The script's keys and arguments. Each item: (budget, key, window, reservation member or '')."""
        keys = [f"{self._tag}:applied:{op_id or new_id()}"]
        args: list[object] = [_APPLIED_MARKER_TTL, len(items), _to_nanos(actual)]
        for budget, key, window, member in items:
            slot = self._slot(budget, key, window)
            spent_key, held_key, sum_key = self._keys(slot)
            keys.extend((held_key, spent_key, self._index(budget, window), sum_key))
            args.extend((member, slot, _retention(window)))
        return keys, args

    def _replica_count(self) -> int:
        """How many replicas the master has (`ROLE`), looked up at most every few seconds."""
        count, checked = self._replicas
        now = time.monotonic()
        if now - checked > 5.0:
            role = self._redis.execute_command("ROLE")
            count = len(role[2]) if role and role[0] == "master" else 0
            self._replicas = (count, now)
        return count

    def settle(self, reservations: Sequence[Reservation], actual: Decimal, op_id: str | None = None) -> None:
        self._apply(op_id, self._released(reservations), actual)

    @staticmethod
    def _released(reservations: Sequence[Reservation]) -> list[tuple[str, str, str, str]]:
        return [(r.budget, r.key, r.window, f"{r.id}:{_to_nanos(r.amount)}" if r.id else "") for r in reservations]

    def apply_writes(self, writes: Sequence[tuple[str, Sequence[Reservation], Sequence[tuple[str, str, str]],
                                             Decimal]]) -> None:
        """Settles and adds, queued by the settler, in one round trip: a pipeline of the same script,
        each write still applied at most once by its op id."""

        def work() -> None:
            with self._redis.pipeline(transaction=False) as pipe:
                for op_id, reservations, slots, amount in writes:
                    items = self._released(reservations) if reservations else [(*slot, "") for slot in slots]
                    keys, args = self._apply_arguments(op_id, items, amount)
                    self._apply_script(keys=keys, args=args, client=pipe)
                waits = self._replicated and self._replica_count() > 0
                if waits:
                    pipe.execute_command("WAIT", 1, int(_REPLICATION_WAIT * 1000))
                replies = pipe.execute()
            if waits and int(replies[-1]) < 1:
                self._replicas = (0, 0.0)  # look again next time: the replica may be gone
                raise self._unreachable[0]("no replica has these writes yet")

        self._guarded(work)

    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None:
        self._apply(op_id, [(budget, key, window, "")], amount)

    def _usage_of(self, slots: Sequence[str]) -> list[tuple[Decimal, Decimal]]:
        now = self._clock()
        with self._redis.pipeline(transaction=False) as pipe:
            for slot in slots:
                spent_key, held_key, sum_key = self._keys(slot)
                pipe.get(spent_key)
                pipe.get(sum_key)
                pipe.zrangebyscore(held_key, "-inf", repr(now))  # lapsed, not yet taken out of the sum
            replies = pipe.execute()
        usage = []
        for spent, held, lapsed in zip(replies[::3], replies[1::3], replies[2::3]):
            held_nanos = int(held or 0) - sum(int(member.rsplit(":", 1)[1]) for member in lapsed)
            usage.append((_from_nanos(int(spent or 0)), _from_nanos(max(0, held_nanos))))
        return usage

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]:
        return self._guarded(lambda: self._usage_of([self._slot(budget, key, window)])[0])  # type: ignore[no-any-return]

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]:
        def work() -> list[tuple[str, Decimal, Decimal]]:
            slots = sorted(self._redis.smembers(self._index(budget, window)))
            return [(json.loads(slot)[1], spent, held) for slot, (spent, held) in zip(slots, self._usage_of(slots))]

        return self._guarded(work)  # type: ignore[no-any-return]

    def _clear(self, budget: str | None = None) -> None:
        """Delete a budget's data (or all of it) in every window; a rare, administrative scan."""
        prefix = f"{self._tag}:"
        doomed = []
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"  # the prefix, glob-escaped
        for name in self._redis.scan_iter(match=pattern, count=1000):
            kind, _, encoded = name[len(prefix):].partition(":")
            if kind in ("spent", "held", "heldsum", "slots") and (budget is None or json.loads(encoded)[0] == budget) \
                    or kind == "applied" and budget is None:
                doomed.append(name)
        for start in range(0, len(doomed), 500):
            self._redis.delete(*doomed[start:start + 500])

    def clear(self, budget: str | None = None) -> None:
        self._guarded(lambda: self._clear(budget))


def _redis_client(redis: Any, url: str) -> Any:
    """A client for `redis://` (also `rediss://`, `unix://`), `redis+cluster://host:port` (any node; the
    others are discovered) or `redis+sentinel://host:port[,host:port]/service` (the master the sentinels
    name, followed through a failover). Every key carries one hash tag, so the Lua scripts that touch
    several budgets at once run on one Cluster slot.

    Short timeouts and no retry loop: a budget check must not stall the LLM call it guards. One immediate
    reconnect on a dropped connection, so a pooled connection from before a restart or failover does not
    count as an outage."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options = dict(decode_responses=True, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        if url.startswith("redis+cluster://"):
            from redis.cluster import RedisCluster

            return RedisCluster.from_url("redis://" + url[len("redis+cluster://"):], **options)
        if url.startswith("redis+sentinel://"):
            from redis.sentinel import Sentinel

            hosts, _, service = url[len("redis+sentinel://"):].partition("/")
            nodes = [(host, int(port)) for host, _, port in (item.rpartition(":") for item in hosts.split(","))]
            if not service or not nodes:
                raise ValueError(f"{url!r} is not redis+sentinel://host:port[,host:port]/service")
            return Sentinel(nodes, sentinel_kwargs={"socket_timeout": 1.0}, **options).master_for(
                service, retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError])
        return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError],
                                    **options)
    except (ValueError, redis.RedisError) as error:
        raise StoreOpenError(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__) \
            from None


def store_from_url(url: str) -> BudgetStore:
    """`memory`, `sqlite:///path/to/file.db` or `redis://host:port/db` (also `rediss://`, `unix://`):
    the OTEL_LLM_COST_BUDGET_STORE values. One that cannot be used raises `StoreOpenError`."""
    if url == "memory":
        return MemoryStore()
    if url.startswith("sqlite:///"):  # as SQLAlchemy: sqlite:///relative.db, sqlite:////absolute.db
        return SqliteStore(url[len("sqlite:///"):])
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://", "redis+sentinel://")):
        return RedisStore(url)
    raise StoreOpenError(f"unknown budget store {url!r}")
