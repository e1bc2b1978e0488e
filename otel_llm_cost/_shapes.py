"""Reading a field from whatever an SDK hands back: a dict, a pydantic model, or any object. Never raises.

This is the hot path of every response and stream chunk we read. A field a pydantic model does not
have costs a `__getattr__` that raises and catches an exception (about 2 µs); providers' optional
fields are missing most of the time, so a model's own storage is looked at first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_llm_cost._bounded import Bounded

__all__ = ["field", "dig"]

_MISSING = object()


def field(obj: Any, name: str) -> Any:
    """`obj[name]` or `obj.name`; None when absent."""
    if obj is None:
        return None
    if type(obj) is dict:
        return obj.get(name)
    stored = getattr(obj, "__dict__", None)
    if stored is not None and name in stored:  # a pydantic field, or a plain object's attribute
        return stored[name]
    if stored is not None and _only_extra(type(obj), name):
        extra = obj.__pydantic_extra__
        return extra.get(name) if extra else None
    try:
        value = getattr(obj, name, _MISSING)
    except Exception:
        return None
    if value is _MISSING:
        return obj.get(name) if isinstance(obj, Mapping) else None
    return value


_ONLY_EXTRA: Bounded[tuple[type, str], bool] = Bounded(10_000)


def _only_extra(cls: type, name: str) -> bool:
    """Whether `cls` is a pydantic model without a field, property or method `name`, so only its extras
    can hold it. Cached: SDK classes and the names we read are both few."""
    key = (cls, name)
    known = _ONLY_EXTRA.get(key)
    if known is None:
        known = getattr(cls, "__pydantic_fields__", None) is not None and getattr(cls, name, None) is None
        _ONLY_EXTRA.put(key, known)
    return known


def dig(payload: Any, *path: str) -> Any:
    """Follow `path` through mappings or attributes; None when any step is missing."""
    current = payload
    for key in path:
        if current is None:
            return None
        current = field(current, key)
    return current
