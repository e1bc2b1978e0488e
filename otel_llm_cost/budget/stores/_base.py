"""The budget store protocol, and the values that cross it.

A store makes a reservation atomic across every budget a call touches: either all of them hold the
estimate, or none does and the call is refused. A reservation expires after `ttl` seconds, so a process
that dies between reserve and settle never holds budget for ever. Writes (settles, adds) are applied in
batches (`apply_writes`), at most once per operation id, so a write retried after an ambiguous failure
counts once.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import NamedTuple, Protocol

__all__ = [
    "Claim", "Reservation", "Refusal", "Write", "BudgetStore", "StoreUnavailable", "StoreOpenError", "new_id",
    "Slot", "ZERO", "ceil_to", "WritesInBatches", "belongs_to", "THRESHOLD_MARK",
]

ZERO = Decimal(0)
Slot = tuple[str, str, str]
"""(budget, key, window): where a store keeps one budget's spend and holds."""


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
    credit: Decimal = ZERO
    """What this process's own writes that the store has not applied yet will free on this slot: the
    holds they release minus the spend they add. The check nets it out, so a process sees its own calls
    at once although their settles are applied behind them; strict, because those writes are applied."""


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    budget: str
    key: str
    window: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Refusal:
    """The claim that did not fit, and its slot's settled spend and holds as the store counts them."""

    claim: Claim
    spent: Decimal
    reserved: Decimal


class Write(NamedTuple):
    """A settle (`reservations` released, `amount` added to their slots) or an add (`amount` added to
    `slots`), applied at most once per `op_id`."""

    op_id: str
    reservations: Sequence[Reservation]
    slots: Sequence[Slot]
    amount: Decimal

    def added_to(self) -> Sequence[Slot]:
        return [(r.budget, r.key, r.window) for r in self.reservations] if self.reservations else self.slots


class BudgetStore(Protocol):
    """One budget store kind. `quantize` rounds an amount as the store keeps it (up, to its unit), so a
    process can net out its unapplied writes to the store's last unit."""

    def reserve(self, claims: Sequence[Claim]) -> list[Reservation] | Refusal: ...

    def apply_writes(self, writes: Sequence[Write]) -> None: ...

    def settle(self, reservations: Sequence[Reservation], actual: Decimal, op_id: str | None = None) -> None: ...

    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None: ...

    def usage(self, budget: str, key: str, window: str) -> tuple[Decimal, Decimal]: ...

    def keys(self, budget: str, window: str) -> list[tuple[str, Decimal, Decimal]]: ...

    def clear(self, budget: str | None = None) -> None: ...

    def quantize(self, amount: Decimal) -> Decimal: ...


def ceil_to(unit: Decimal, amount: Decimal) -> int:
    """`amount` in whole `unit`s, rounded up: a store never holds or adds less than was asked."""
    return int((amount / unit).to_integral_value(rounding=ROUND_CEILING))


class WritesInBatches:
    """`settle` and `add` as one-write batches of the store's `apply_writes`."""

    def apply_writes(self, writes: Sequence[Write]) -> None:
        raise NotImplementedError

    def settle(self, reservations: Sequence[Reservation], actual: Decimal, op_id: str | None = None) -> None:
        self.apply_writes([Write(op_id or new_id(), tuple(reservations), (), actual)])

    def add(self, budget: str, key: str, window: str, amount: Decimal, op_id: str | None = None) -> None:
        self.apply_writes([Write(op_id or new_id(), (), ((budget, key, window),), amount)])


THRESHOLD_MARK = "@threshold:"
"""A budget's threshold claims are kept as budgets of their own, named `<budget>@threshold:<level>`."""


def belongs_to(name: str, budget: str) -> bool:
    """Whether a slot named `name` is `budget`'s: its own, or one of its threshold claims."""
    return name == budget or name.startswith(budget + THRESHOLD_MARK)
