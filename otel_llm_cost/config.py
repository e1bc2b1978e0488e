"""Settings from the OTEL_LLM_COST_* environment variables (the README's configuration table).

Every variable is read here and nowhere else. A bad value raises `ConfigError` at start-up with
one line that names the variable and the value, so a typo never silently disables a budget.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

ENABLED: Final = "OTEL_LLM_COST_ENABLED"
BUDGET_USD: Final = "OTEL_LLM_COST_BUDGET_USD"
BUDGET_WINDOW: Final = "OTEL_LLM_COST_BUDGET_WINDOW"
SESSION_BUDGET_USD: Final = "OTEL_LLM_COST_SESSION_BUDGET_USD"
USER_BUDGET_USD: Final = "OTEL_LLM_COST_USER_BUDGET_USD"
BUDGETS_FILE: Final = "OTEL_LLM_COST_BUDGETS_FILE"
ON_EXCEED: Final = "OTEL_LLM_COST_ON_EXCEED"
BUDGET_STORE: Final = "OTEL_LLM_COST_BUDGET_STORE"
BUDGET_STORE_FAILURE: Final = "OTEL_LLM_COST_BUDGET_STORE_FAILURE"
BUDGET_LEASE: Final = "OTEL_LLM_COST_BUDGET_LEASE"
"""`on`: a process admits calls against a leased slice of a shared budget, without a round trip (opt-in:
see the README's "Budget leases" for the over-admission still seen in 2 of about 10 four-process races)."""
DEFAULT_OUTPUT_TOKENS: Final = "OTEL_LLM_COST_DEFAULT_OUTPUT_TOKENS"
PRICING_FILE: Final = "OTEL_LLM_COST_PRICING_FILE"
PRICES_UPDATE: Final = "OTEL_LLM_COST_PRICES_UPDATE"
PRICES_URL: Final = "OTEL_LLM_COST_PRICES_URL"
PRICES_CACHE_DIR: Final = "OTEL_LLM_COST_PRICES_CACHE_DIR"
STREAM_USAGE: Final = "OTEL_LLM_COST_STREAM_USAGE"
METRIC_TAGS: Final = "OTEL_LLM_COST_METRIC_TAGS"
COMPAT_COST_ATTRIBUTE: Final = "OTEL_LLM_COST_COMPAT_COST_ATTRIBUTE"
MAX_SESSIONS: Final = "OTEL_LLM_COST_MAX_SESSIONS"
PROVIDERS: Final = "OTEL_LLM_COST_PROVIDERS"
LEDGER: Final = "OTEL_LLM_COST_LEDGER"
LEDGER_EXIT_TIMEOUT: Final = "OTEL_LLM_COST_LEDGER_EXIT_TIMEOUT"
LEDGER_SPOOL: Final = "OTEL_LLM_COST_LEDGER_SPOOL"
REPORTED_COST_MAX_RATIO: Final = "OTEL_LLM_COST_REPORTED_COST_MAX_RATIO"
REFUSAL_MESSAGE: Final = "OTEL_LLM_COST_REFUSAL_MESSAGE"
FALLBACK_MODELS: Final = "OTEL_LLM_COST_FALLBACK_MODELS"
DEFAULT_REFUSAL_MESSAGE: Final = "Budget '{budget}' is exhausted: ${spent} of ${limit} spent. No model was called."

PREFIX: Final = "OTEL_LLM_COST_"

_logger = logging.getLogger(__name__)

WINDOWS: Final = ("total", "hour", "day", "week", "month")
POLICIES: Final = ("raise", "warn", "respond", "fallback")
STORE_FAILURE_POLICIES: Final = ("allow", "refuse")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class ConfigError(ValueError):
    """A setting has a value we cannot use. The message names the setting and the value."""


@dataclass(frozen=True, slots=True)
class Settings:
    enabled: bool = True
    budget_usd: Decimal | None = None
    budget_window: str = "total"
    session_budget_usd: Decimal | None = None
    user_budget_usd: Decimal | None = None
    budgets_file: Path | None = None
    on_exceed: str = "raise"
    budget_store: str = "memory"
    budget_store_failure: str = "allow"
    budget_lease: bool = False
    default_output_tokens: int = 1024
    pricing_file: Path | None = None
    prices_update: bool = False
    prices_url: str | None = None
    prices_cache_dir: Path | None = None
    stream_usage: bool = True
    metric_tags: tuple[str, ...] = field(default_factory=tuple)
    compat_cost_attribute: bool = True
    max_sessions: int = 10_000
    ledger: str | None = None
    """Where every counted call is recorded: sqlite:///path/usage.db or postgresql://... (none: no ledger)."""
    providers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """`host[:port]` -> provider, for hosts genai-prices does not know (a gateway, a loopback test server)."""
    ledger_exit_timeout: float = 5.0
    """Seconds the ledger waits at exit for a database that is down, before spooling its rows to a file."""
    ledger_spool: Path | None = None
    """Where unwritten ledger rows are spooled (default: beside a SQLite ledger; else the user cache dir)."""
    refusal_message: str = DEFAULT_REFUSAL_MESSAGE
    """The model's answer when a budget with `on_exceed="respond"` refuses a call."""
    fallback_models: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """model -> cheaper model, for budgets with `on_exceed="fallback"`."""
    reported_cost_max_ratio: Decimal = Decimal(10)
    """A provider-reported cost above this many times our own price for the same usage is not believed."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        warn_unknown_variables(env)
        values: dict[str, Any] = {}
        for name, (variable, parse) in _PARSERS.items():
            raw = env.get(variable)
            if raw is not None and raw.strip() != "":
                values[name] = parse(variable, raw.strip())
        return cls(**values)._checked()

    def _checked(self) -> Settings:
        """What no single variable's parser can see: settings that only make sense together."""
        if self.on_exceed == "fallback" and not self.fallback_models:
            raise ConfigError(f"{ON_EXCEED}=fallback needs {FALLBACK_MODELS} (e.g. gpt-4o=gpt-4o-mini): without "
                              "it every refused call would simply be refused")
        return self

    def with_overrides(self, **overrides: Any) -> Settings:
        """Settings given in code (`configure(budget_usd=5)`) win over the environment.

        Values go through the same parsers as the environment, so they fail the same way.
        """
        known = {f.name for f in fields(self)}
        values: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"expected one of {sorted(known)}"
                raise ConfigError(f"configure(): unknown setting {name!r}; {hint}")
            if value is None:
                values[name] = None
                continue
            variable, parse = _PARSERS[name]
            if isinstance(value, Mapping):  # providers={"llm-gateway.internal": "openai"}
                text = ",".join(f"{k}={v}" for k, v in value.items())
            else:
                text = ",".join(value) if isinstance(value, (list, tuple)) else str(value)
            values[name] = parse(f"configure({name}=...)", text)
        return replace(self, **values)._checked()


def parse_bool(variable: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{variable}={raw!r} is not a boolean; use true or false")


def parse_usd(variable: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise ConfigError(f"{variable}={raw!r} is not a number of US dollars") from None
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{variable}={raw!r} must be a finite, non-negative number of US dollars")
    return value


def parse_positive_int(variable: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{variable}={raw!r} must be greater than zero")
    return value


def parse_seconds(variable: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{variable}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{variable}={raw!r} must be a finite, non-negative number of seconds")
    return value


def parse_ratio(variable: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise ConfigError(f"{variable}={raw!r} is not a number") from None
    if not value.is_finite() or value < 1:
        raise ConfigError(f"{variable}={raw!r} must be a finite number of at least 1")
    return value


def parse_window(variable: str, raw: str) -> str:
    if raw.lower() not in WINDOWS:
        raise ConfigError(f"{variable}={raw!r} is not a budget window; use one of {', '.join(WINDOWS)}")
    return raw.lower()


def parse_policy(variable: str, raw: str) -> str:
    if raw.lower() not in POLICIES:
        raise ConfigError(f"{variable}={raw!r} is not a policy; use raise, warn, respond or fallback")
    return raw.lower()


REFUSAL_FIELDS: Final = {"budget": "b", "limit": "1", "spent": "1", "window": "day"}


def parse_refusal_message(variable: str, raw: str) -> str:
    try:
        raw.format(**REFUSAL_FIELDS)
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(f"{variable}={raw!r} is not a message template ({type(error).__name__}: {error}); it may "
                          "use {budget}, {limit}, {spent} and {window}") from None
    return raw


def parse_fallback_models(variable: str, raw: str) -> tuple[tuple[str, str], ...]:
    """`model=cheaper,cheaper=cheapest`: each model once on the left, and no chain that comes back."""
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        model, sep, cheaper = (piece.strip() for piece in item.partition("="))
        if not sep or not model or not cheaper or model == cheaper:
            raise ConfigError(f"{variable}={raw!r}: {item!r} is not model=cheaper_model "
                              "(e.g. gpt-4o=gpt-4o-mini,claude-sonnet-4-5=claude-haiku-4-5)")
        if model in pairs:
            raise ConfigError(f"{variable}={raw!r}: {model!r} falls back twice ({pairs[model]!r} and {cheaper!r})")
        pairs[model] = cheaper
    for start in pairs:
        seen, model = {start}, start
        while model in pairs:
            model = pairs[model]
            if model in seen:
                raise ConfigError(f"{variable}={raw!r}: the chain from {start!r} comes back to {model!r}")
            seen.add(model)
    return tuple(pairs.items())


def parse_store_failure(variable: str, raw: str) -> str:
    if raw.lower() not in STORE_FAILURE_POLICIES:
        raise ConfigError(f"{variable}={raw!r} is not a failure policy; use allow (calls go ahead while the "
                          "budget store is unreachable) or refuse")
    return raw.lower()


def parse_store(variable: str, raw: str) -> str:
    if raw == "memory" or raw.startswith("sqlite:///") and len(raw) > len("sqlite:///"):
        return raw
    parts = urlsplit(raw)
    if parts.scheme == "redis+sentinel" and parts.netloc and parts.path.strip("/"):
        return raw
    if parts.scheme in ("redis", "rediss", "redis+cluster") and parts.hostname or parts.scheme == "unix" and parts.path:
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            pass
        else:
            return raw
    raise ConfigError(f"{variable}={raw!r} is not a budget store; use memory, sqlite:///path/to/file.db, "
                      "redis://host:port/db, redis+cluster://host:port or redis+sentinel://host:port/service")


def parse_readable_file(variable: str, raw: str) -> Path:
    path = Path(raw).expanduser()
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{variable}={raw!r} cannot be read: {exc.strerror or exc}") from None
    return path


def parse_dir(variable: str, raw: str) -> Path:
    return Path(raw).expanduser()


def parse_url(variable: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://", "file://")):
        raise ConfigError(f"{variable}={raw!r} is not an http(s):// or file:// URL")
    return raw


def parse_tag_list(variable: str, raw: str) -> tuple[str, ...]:
    tags = tuple(t.strip() for t in raw.split(",") if t.strip())
    for tag in tags:
        if not tag.replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise ConfigError(f"{variable}={raw!r}: tag name {tag!r} may hold only letters, digits, '_', '-', '.'")
    return tags


def parse_ledger(variable: str, raw: str) -> str:
    if raw.startswith("sqlite:///") and len(raw) > len("sqlite:///") or raw.startswith(("postgresql://", "postgres://")):
        return raw
    raise ConfigError(f"{variable}={raw!r} is not a ledger; use sqlite:///path/usage.db or "
                      "postgresql://user@host/db")


def parse_providers(variable: str, raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        host, sep, provider = (piece.strip() for piece in item.partition("="))
        if not sep or not host or not provider or "/" in host or " " in provider:
            raise ConfigError(f"{variable}={raw!r}: {item!r} is not host[:port]=provider "
                              "(e.g. llm-gateway.internal=openai,127.0.0.1:8000=groq)")
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        if port and not port.isdigit():
            raise ConfigError(f"{variable}={raw!r}: {host!r} has a port that is not a number")
        pairs.append((host.lower(), provider.lower()))
    return tuple(pairs)


def is_finite_number(value: object) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool) and math.isfinite(value)


_PARSERS: Final[dict[str, tuple[str, Any]]] = {
    "enabled": (ENABLED, parse_bool),
    "budget_usd": (BUDGET_USD, parse_usd),
    "budget_window": (BUDGET_WINDOW, parse_window),
    "session_budget_usd": (SESSION_BUDGET_USD, parse_usd),
    "user_budget_usd": (USER_BUDGET_USD, parse_usd),
    "budgets_file": (BUDGETS_FILE, parse_readable_file),
    "on_exceed": (ON_EXCEED, parse_policy),
    "budget_store": (BUDGET_STORE, parse_store),
    "budget_store_failure": (BUDGET_STORE_FAILURE, parse_store_failure),
    "budget_lease": (BUDGET_LEASE, parse_bool),
    "default_output_tokens": (DEFAULT_OUTPUT_TOKENS, parse_positive_int),
    "pricing_file": (PRICING_FILE, parse_readable_file),
    "prices_update": (PRICES_UPDATE, parse_bool),
    "prices_url": (PRICES_URL, parse_url),
    "prices_cache_dir": (PRICES_CACHE_DIR, parse_dir),
    "stream_usage": (STREAM_USAGE, parse_bool),
    "metric_tags": (METRIC_TAGS, parse_tag_list),
    "compat_cost_attribute": (COMPAT_COST_ATTRIBUTE, parse_bool),
    "max_sessions": (MAX_SESSIONS, parse_positive_int),
    "providers": (PROVIDERS, parse_providers),
    "ledger": (LEDGER, parse_ledger),
    "ledger_exit_timeout": (LEDGER_EXIT_TIMEOUT, parse_seconds),
    "ledger_spool": (LEDGER_SPOOL, parse_dir),
    "reported_cost_max_ratio": (REPORTED_COST_MAX_RATIO, parse_ratio),
    "refusal_message": (REFUSAL_MESSAGE, parse_refusal_message),
    "fallback_models": (FALLBACK_MODELS, parse_fallback_models),
}


def known_variables() -> frozenset[str]:
    """Every OTEL_LLM_COST_* variable the package reads."""
    return frozenset(variable for variable, _ in _PARSERS.values())


_warned_unknown: set[str] = set()


def warn_unknown_variables(env: Mapping[str, str]) -> None:
    """A misspelt variable (OTEL_LLM_COST_BUDGET=5) would silently do nothing: say so, once, with the
    closest known name."""
    known = known_variables()
    for name in env:
        if name.startswith(PREFIX) and name not in known and name not in _warned_unknown:
            _warned_unknown.add(name)
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; known variables: {', '.join(sorted(known))}"
            _logger.warning("otel-llm-cost: %s is not a setting and is ignored%s", name, hint)


def prepare_price_book(settings: Settings, book: Any = None) -> Any:
    """Load the custom pricing file and, if asked, fresh prices into `book` (default: the global one).

    A malformed pricing file is a start-up error that names the variable and the file's problem.
    """
    from otel_llm_cost.pricing import PricingError, default_price_book
    from otel_llm_cost.pricing_fetch import refresh_prices

    book = book or default_price_book()
    if settings.pricing_file is not None:
        try:
            book.load_pricing_file(settings.pricing_file)
        except PricingError as exc:
            raise ConfigError(f"{PRICING_FILE}: {exc}") from None
    if settings.prices_update:
        refresh_prices(book, url=settings.prices_url, cache_dir=settings.prices_cache_dir)
    return book
