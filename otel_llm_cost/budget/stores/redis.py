"""`RedisStore`: budgets shared by processes on many hosts through Redis, Redis Cluster or Sentinel."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from otel_llm_cost.budget.stores._base import (
    ZERO, Claim, Refusal, Reservation, StoreOpenError, StoreUnavailable, Write, WritesInBatches, belongs_to, ceil_to,
    new_id,
)

__all__ = ["RedisStore"]

_NANO = Decimal("1e-9")
"""Redis keeps money as integer nano-dollars: its Lua numbers are doubles, exact up to 2**53 nano-dollars
(about $9 million in one budget window), and amounts round up."""


def _to_nanos(amount: Decimal) -> int:
    return ceil_to(_NANO, amount)


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
# ARGV: now, ttl, n, then per claim: nano-dollars, limit (-1: none), credit (nano-dollars the caller's unapplied
# writes free on the slot), id, slot, retention (0: keep).
_RESERVE = _HELD + """
local now, ttl, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, n do
  local k, a = 4 * (i - 1), 3 + 6 * (i - 1)
  local held = held_now(KEYS[k + 2], KEYS[k + 3], now)
  local limit = tonumber(ARGV[a + 2])
  if limit >= 0 then
    local spent = tonumber(redis.call('GET', KEYS[k + 1]) or '0')
    if spent + held - tonumber(ARGV[a + 3]) + tonumber(ARGV[a + 1]) > limit then
      return {i, tostring(spent), tostring(held)}
    end
  end
end
for i = 1, n do
  local k, a = 4 * (i - 1), 3 + 6 * (i - 1)
  redis.call('ZADD', KEYS[k + 2], now + ttl, ARGV[a + 4] .. ':' .. ARGV[a + 1])
  redis.call('INCRBY', KEYS[k + 3], ARGV[a + 1])
  redis.call('SADD', KEYS[k + 4], ARGV[a + 5])
  local retention = tonumber(ARGV[a + 6])
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


class RedisStore(WritesInBatches):
    """Processes on several hosts share one budget through Redis.

    A Lua script checks every budget a call touches and reserves on all of them in one atomic step.
    Per (budget, key, window) there is a counter of settled spend and a sorted set of reservations
    scored by their expiry, so a crashed process's reservation lapses by itself; a set per
    (budget, window) lists its keys for `keys()`. The data of an hour, day, week or month expires
    some time after it ends. Every key starts with the hash tag `{prefix}`, so on a Cluster every
    script runs on the one node that owns that slot.

    The client is made on first use and again after a failure to make it, so a Redis, Cluster or
    Sentinel that is down at start-up is an outage like any other, not a failed start.
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
        self._module = redis
        self.url = url
        self._connect = _client_factory(redis, url)  # a malformed URL raises StoreOpenError here, at start-up
        self.ttl = ttl
        self._clock = clock
        self._redis: Any = client
        self._cluster = url.startswith("redis+cluster://")
        self._unreachable = _unreachable_errors(redis)
        self._paused_until = 0.0
        self._tag = "{" + prefix + "}"
        self._reserve_script: Any = None
        self._apply_script: Any = None
        self._replicated = url.startswith("redis+sentinel://")
        """Behind Sentinel, a failover promotes a replica that may not have the master's last writes: a
        batch of writes counts as applied only once a replica has it too (`WAIT`), while the master has
        one; until then it stays queued and is applied again, at most once by its op id, on whichever
        master there is. A master left without replicas (its only one died) has nothing to wait for."""
        self._replicas = (0, 0.0)
        if client is None:
            try:
                self._client()
            except StoreUnavailable:
                pass  # down at start-up: tried again on first use, as the failure policy says

    def quantize(self, amount: Decimal) -> Decimal:
        return _from_nanos(_to_nanos(amount))

    def _client(self) -> Any:
        """The client, made now if it could not be before (its servers were down)."""
        if self._redis is None:
            try:
                self._redis = self._connect()
            except self._unreachable as error:
                self._paused_until = time.monotonic() + self.PAUSE_AFTER_FAILURE
                raise StoreUnavailable(str(error).strip().splitlines()[0] if str(error).strip()
                                       else type(error).__name__) from error
        if self._reserve_script is None:
            self._reserve_script = self._redis.register_script(_RESERVE)
            self._apply_script = self._redis.register_script(_APPLY)
        return self._redis

    def _guarded(self, work: Callable[[], Any]) -> Any:
        """Run `work` against Redis; after a connection failure, fail fast for a few seconds."""
        if time.monotonic() < self._paused_until:
            raise StoreUnavailable("Redis unreachable, retrying shortly")
        self._client()
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
            credit = _to_nanos(claim.credit) if claim.credit >= 0 else -_to_nanos(-claim.credit)
            args.extend([_to_nanos(claim.amount), limit, credit, rid, slot, _retention(claim.window)])
            reservations.append(Reservation(rid, claim.budget, claim.key, claim.window, claim.amount))
        result = self._reserve_script(keys=keys, args=args)
        refused = int(result[0])
        if refused:
            return Refusal(claims[refused - 1], _from_nanos(float(result[1])), _from_nanos(float(result[2])))
        return reservations

    def _apply_arguments(self, write: Write) -> tuple[list[str], list[object]]:
        """The apply script's keys and arguments for one write."""
        keys = [f"{self._tag}:applied:{write.op_id or new_id()}"]
        args: list[object] = [_APPLIED_MARKER_TTL, 0, _to_nanos(write.amount)]
        items = [(r.budget, r.key, r.window, f"{r.id}:{_to_nanos(r.amount)}" if r.id else "")
                 for r in write.reservations] or [(*slot, "") for slot in write.slots]
        args[1] = len(items)
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

    def apply_writes(self, writes: Sequence[Write]) -> None:
        """Settles and adds in one round trip: a pipeline of the apply script, each write applied at
        most once by its op id. A Cluster pipeline cannot load a script on the node it runs on, so a
        batch that meets a node without it loads it there and is sent again (its writes count once)."""

        def send() -> list[Any]:
            with self._redis.pipeline(transaction=False) as pipe:
                for write in writes:
                    keys, args = self._apply_arguments(write)
                    self._apply_script(keys=keys, args=args, client=pipe)
                waits = self._replicated and self._replica_count() > 0
                if waits:
                    pipe.execute_command("WAIT", 1, int(_REPLICATION_WAIT * 1000))
                replies = pipe.execute()
            if waits and int(replies[-1]) < 1:
                self._replicas = (0, 0.0)  # look again next time: the replica may be gone
                raise self._module.ConnectionError("no replica has these writes yet")
            return replies

        def work() -> None:
            try:
                send()
            except self._module.exceptions.NoScriptError:
                if not self._cluster:
                    raise
                self._redis.script_load(_APPLY)  # on every primary, a newly promoted one included
                send()

        self._guarded(work)

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
        """Delete a budget's data and threshold claims (or all data) in every window; a rare,
        administrative scan."""
        prefix = f"{self._tag}:"
        doomed = []
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"  # the prefix, glob-escaped
        for name in self._redis.scan_iter(match=pattern, count=1000):
            kind, _, encoded = name[len(prefix):].partition(":")
            if kind in ("spent", "held", "heldsum", "slots") and (
                    budget is None or belongs_to(json.loads(encoded)[0], budget)) \
                    or kind == "applied" and budget is None:
                doomed.append(name)
        for start in range(0, len(doomed), 500):
            self._redis.delete(*doomed[start:start + 500])

    def clear(self, budget: str | None = None) -> None:
        self._guarded(lambda: self._clear(budget))


def _unreachable_errors(redis: Any) -> tuple[type[BaseException], ...]:
    """What Redis raises when it cannot answer now but may later: a connection or timeout, a cluster
    that is down, unreachable or re-electing a master, a slot no node covers yet."""
    names = ("ClusterDownError", "RedisClusterUnreachableError", "SlotNotCoveredError", "TryAgainError",
             "MasterNotFoundError")
    found = [getattr(redis.exceptions, name, None) or getattr(redis.sentinel, name, None) for name in names]
    return (redis.ConnectionError, redis.TimeoutError, *(error for error in found if error is not None))


def _client_factory(redis: Any, url: str) -> Callable[[], Any]:
    """What makes a client for `redis://` (also `rediss://`, `unix://`), `redis+cluster://host:port` (any
    node; the others are discovered) or `redis+sentinel://host:port[,host:port]/service` (the master the
    sentinels name, followed through a failover). The URL is checked now (a malformed one raises
    `StoreOpenError`); the client is made when the factory is called, which may fail while the servers
    are down. Every key carries one hash tag, so the Lua scripts that touch several budgets at once run on
    one Cluster slot.

    Short timeouts and no retry loop: a budget check must not stall the LLM call it guards. One immediate
    reconnect on a dropped connection, so a pooled connection from before a restart or failover does not
    count as an outage."""
    from urllib.parse import urlsplit

    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options: dict[str, Any] = dict(decode_responses=True, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        if url.startswith("redis+cluster://"):
            from redis.cluster import RedisCluster

            plain = "redis://" + url[len("redis+cluster://"):]
            parts = urlsplit(plain)
            if not parts.hostname or parts.port is None and parts.netloc.endswith(":"):
                raise ValueError(f"{url!r} is not redis+cluster://host:port")
            return lambda: RedisCluster.from_url(plain, **options)
        if url.startswith("redis+sentinel://"):
            from redis.sentinel import Sentinel

            hosts, _, service = url[len("redis+sentinel://"):].partition("/")
            nodes = [(host, int(port)) for host, _, port in (item.rpartition(":") for item in hosts.split(","))]
            if not service or not nodes or not all(host for host, _ in nodes):
                raise ValueError(f"{url!r} is not redis+sentinel://host:port[,host:port]/service")
            return lambda: Sentinel(nodes, sentinel_kwargs={"socket_timeout": 1.0}, **options).master_for(
                service, retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError])
        client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 1), retry_on_error=[redis.ConnectionError],
                                      **options)  # connects lazily: made once, here
        return lambda: client
    except (ValueError, redis.RedisError) as error:
        raise StoreOpenError(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__) \
            from None
