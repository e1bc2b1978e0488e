"""`Bounded`: an insertion-ordered map that forgets its oldest entries beyond a limit.

Whatever remembers something per span, batch, file, budget key or kind of warning keeps memory bounded
with one of these, however long the process runs and whatever the workload sends it. Each operation is
atomic, but a `put` is two of them: threads that put without a lock may evict an entry more than
needed (a cache can afford that); an owner that counts on every entry locks around it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["Bounded"]

K = TypeVar("K")
V = TypeVar("V")


class Bounded(OrderedDict[K, V], Generic[K, V]):
    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V, *, refresh: bool = False) -> None:
        """Store `value`; the oldest entry goes beyond the limit. `refresh`: a key stored again becomes
        the newest (least recently used first out), instead of keeping its first place."""
        if refresh and key in self:
            self.move_to_end(key)
        self[key] = value
        if len(self) > self.limit:
            self.popitem(last=False)
