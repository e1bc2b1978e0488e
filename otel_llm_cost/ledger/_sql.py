"""What the SQLite and PostgreSQL ledgers share: the indexes, the group keys, the time range."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

INDEXES = """
    CREATE INDEX llm_calls_ts ON llm_calls (ts);
    CREATE INDEX llm_calls_model ON llm_calls ((COALESCE(response_model, request_model)), ts);
    CREATE INDEX llm_calls_provider ON llm_calls (provider, ts);
    CREATE INDEX llm_calls_session ON llm_calls (session_id, ts);
    CREATE INDEX llm_calls_user ON llm_calls (user_id, ts);
    CREATE INDEX llm_calls_service ON llm_calls (service_name, ts);
    CREATE INDEX llm_calls_job ON llm_calls (job, ts);
"""
"""On `ts` for time ranges, and on each group key (with `ts`, so a range within a group is an index scan)."""

_COLUMNS = {"model": "COALESCE(response_model, request_model)", "provider": "provider", "session": "session_id",
            "user": "user_id", "service": "service_name", "job": "job"}


def group_key(by: str, *, day: str, tag: str, tag_arg: Callable[[str], Any]) -> tuple[str, list[Any]]:
    """The SQL expression to group by, and its arguments. `day` and `tag` are the dialect's expressions."""
    if by.startswith("tag:"):
        return tag, [tag_arg(by[4:])]
    return (day if by == "day" else _COLUMNS[by]), []


def time_range(since: datetime | None, until: datetime | None, placeholder: str,
               value: Callable[[datetime], Any]) -> tuple[str, list[Any]]:
    """`WHERE ts >= since AND ts < until`, with the dialect's placeholder."""
    clauses, args = [], []
    if since is not None:
        clauses.append(f"ts >= {placeholder}")
        args.append(value(since))
    if until is not None:
        clauses.append(f"ts < {placeholder}")
        args.append(value(until))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args
