"""Budgets from configuration: the OTEL_LLM_COST_*BUDGET* variables and the budgets TOML file.

```toml
[budgets.daily-spend]
limit_usd = 50
scope = "global"        # global | session | user | tag
window = "day"          # total | hour | day | week | month (calendar, UTC)
on_exceed = "raise"     # raise | warn | respond | fallback

[budgets.per-feature]
limit_usd = 5
scope = "tag"
tag = "feature"
```
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otel_llm_cost import config
from otel_llm_cost.budget import Budget, BudgetError
from otel_llm_cost.config import ConfigError, Settings

__all__ = ["load_budgets_file", "budgets_from_settings"]

_FIELDS = frozenset({"limit_usd", "scope", "window", "on_exceed", "tag"})


def load_budgets_file(path: Path, default_policy: str = "raise") -> list[Budget]:
    """Parse the budgets file; any problem raises `ConfigError` naming the file, the budget and the value."""
    where = f"{config.BUDGETS_FILE}={str(path)!r}"
    try:
        document = tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    table = document.get("budgets")
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(f"{where}: expected a [budgets.<name>] table for each budget")
    budgets = []
    for name, entry in table.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: budget {name!r} must be a table, got {entry!r}")
        unknown = set(entry) - _FIELDS
        if unknown:
            raise ConfigError(f"{where}: budget {name!r} has unknown field(s) {sorted(unknown)}; "
                              f"expected {sorted(_FIELDS)}")
        if "limit_usd" not in entry:
            raise ConfigError(f"{where}: budget {name!r} has no limit_usd")
        budgets.append(_budget(where, name, entry, default_policy))
    return budgets


def _budget(where: str, name: str, entry: Mapping[str, Any], default_policy: str) -> Budget:
    try:
        return Budget.create(
            entry["limit_usd"], name=name, scope=entry.get("scope", "global"), window=entry.get("window", "total"),
            on_exceed=entry.get("on_exceed", default_policy), tag=entry.get("tag"), where=where,
        )
    except BudgetError as exc:
        raise ConfigError(str(exc).replace("limit=", "limit_usd=")) from None


def budgets_from_settings(settings: Settings) -> list[Budget]:
    """Every budget the settings define, in the order: global, session, user, then the file's."""
    policy = settings.on_exceed
    budgets = []
    if settings.budget_usd is not None:
        budgets.append(Budget.create(settings.budget_usd, name="global", window=settings.budget_window,
                                     on_exceed=policy, where=config.BUDGET_USD))
    if settings.session_budget_usd is not None:
        budgets.append(Budget.create(settings.session_budget_usd, name="per-session", scope="session",
                                     on_exceed=policy, where=config.SESSION_BUDGET_USD))
    if settings.user_budget_usd is not None:
        budgets.append(Budget.create(settings.user_budget_usd, name="per-user", scope="user",
                                     on_exceed=policy, where=config.USER_BUDGET_USD))
    if settings.budgets_file is not None:
        budgets.extend(load_budgets_file(settings.budgets_file, policy))
    return budgets
