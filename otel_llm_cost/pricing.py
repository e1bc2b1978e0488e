"""`PriceBook` and `compute_cost`: exact USD cost from a `Usage`, built on genai-prices.

Resolution order: custom (``set_pricing``, ``OTEL_LLM_COST_PRICING_FILE``) > fetched
(``OTEL_LLM_COST_PRICES_UPDATE``) > bundled (the genai-prices snapshot) > unknown.

genai-prices finds the model and its prices for a date and context; we add what it leaves out,
as rules and data rather than code tables:

* ``data/corrections.toml`` amends prices it lacks or has wrong, each with its published source;
* the Batch API and OpenAI ``flex`` cost 50% of standard for dates before genai-prices lists a
  batch or flex variant, and for models without one;
* the service tier is the one the *response* reports, passed in by the caller.

Resolving a price costs about 100 µs in genai-prices, so resolved rates are cached per
(provider, model, tier, batch, UTC day) and the arithmetic on a cached entry is a few Decimal
multiplications. `tests/test_pricing_matches_genai_prices.py` proves that arithmetic equals
``genai_prices.calc_price`` wherever genai-prices has the price.
"""

from __future__ import annotations

import functools
import json
from copy import copy
import logging
import os
import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Final

from genai_prices import data_snapshot
from genai_prices import types as gp

from otel_llm_cost._log import warn_once
from otel_llm_cost.usage import Usage, usage_from_api

__all__ = [
    "Cost",
    "PriceBook",
    "PricingError",
    "PricingStatus",
    "Rates",
    "compute_cost",
    "default_price_book",
    "normalize_provider",
]

_logger = logging.getLogger(__name__)

MTOK: Final = Decimal(1_000_000)
KILO: Final = Decimal(1_000)
HALF: Final = Decimal("0.5")
ZERO: Final = Decimal(0)
TWO: Final = Decimal(2)
_SECONDS_PER_DAY: Final = 86_400
_SECONDS_PER_HOUR: Final = Decimal(3_600)

Price = Decimal | gp.TieredPrices

# gen_ai.provider.name values (and common aliases) -> genai-prices provider ids
_PROVIDER_IDS: Final[dict[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "google": "google",
    "vertex_ai": "google",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "aws": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "azure": "azure",
    "cohere": "cohere",
    "mistral_ai": "mistral",
    "mistral": "mistral",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "moonshot_ai": "moonshotai",
    "ibm.watsonx.ai": "ibm",
}

# The default API of each provider, for callers that hand `compute_cost` a raw payload.
_DEFAULT_API: Final[dict[str, str]] = {
    "openai": "openai.chat",
    "azure": "openai.chat",
    "anthropic": "anthropic.messages",
    "google": "gemini.generate_content",
    "aws": "bedrock.converse",
    "cohere": "cohere.chat",
    "mistral": "mistral.chat",
}

# Tiers that cost the same as standard, and those that cost half (OpenAI prices flex at Batch rates:
# https://platform.openai.com/docs/guides/flex-processing, read 2025-09).
_STANDARD_TIERS: Final = frozenset({"", "default", "standard", "auto", "scale", "on_demand", "reserved"})
_HALF_PRICE_TIERS: Final = frozenset({"flex"})


class PricingError(ValueError):
    """A pricing file or custom price is malformed. The message names the file, entry and value."""


@dataclass(frozen=True, slots=True)
class Cost:
    """USD cost of one call. `input` includes cache reads and writes; `tools` holds per-request fees."""

    total: Decimal
    input: Decimal
    output: Decimal
    source: str
    model: str
    tools: Decimal = ZERO
    currency: str = "USD"


@dataclass(frozen=True, slots=True)
class Rates:
    """Resolved prices of one model for one (tier, batch, day): USD per million tokens.

    A `None` rate falls back to its parent: cache and audio rates to the input or output rate,
    the 1-hour cache write to the 5-minute one.
    """

    model: str
    source: str
    input: Price
    output: Price
    cache_read: Price | None = None
    cache_write: Price | None = None
    cache_write_1h: Price | None = None
    input_audio: Price | None = None
    output_audio: Price | None = None
    web_search_per_k: Decimal | None = None
    per_k_requests: Decimal | None = None
    input_image: Price | None = None
    audio_per_hour: Decimal | None = None
    input_per_mchar: Decimal | None = None
    rerank_per_k_searches: Decimal | None = None
    per_image: tuple[tuple[str, Decimal], ...] = ()
    """Per generated image, by ``"quality/size"`` (dall-e: ``"standard/1024x1024"``, ``"hd/1792x1024"``)."""
    _flat_rates: tuple[Decimal, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def scaled(self, factor: Decimal) -> Rates:
        return replace(
            self,
            input=_scale(self.input, factor),
            output=_scale(self.output, factor),
            cache_read=_scale(self.cache_read, factor),
            cache_write=_scale(self.cache_write, factor),
            cache_write_1h=_scale(self.cache_write_1h, factor),
            input_audio=_scale(self.input_audio, factor),
            output_audio=_scale(self.output_audio, factor),
            input_image=_scale(self.input_image, factor),
            audio_per_hour=_scale(self.audio_per_hour, factor),
            input_per_mchar=_scale(self.input_per_mchar, factor),
            rerank_per_k_searches=_scale(self.rerank_per_k_searches, factor),
            per_image=tuple((kind, price * factor) for kind, price in self.per_image),
        )

    def rates_for_prompt(self, prompt_tokens: int) -> tuple[Decimal, ...]:
        """(input, output, cache read, 5m write, 1h write, audio in, audio out, image in) with fallbacks applied."""
        input_rate = _at(self.input, prompt_tokens)
        output_rate = _at(self.output, prompt_tokens)
        write_rate = _at_or(self.cache_write, prompt_tokens, input_rate)
        return (
            input_rate,
            output_rate,
            _at_or(self.cache_read, prompt_tokens, input_rate),
            write_rate,
            _at_or(self.cache_write_1h, prompt_tokens, write_rate),
            _at_or(self.input_audio, prompt_tokens, input_rate),
            _at_or(self.output_audio, prompt_tokens, output_rate),
            _at_or(self.input_image, prompt_tokens, input_rate),
        )

    def cost(self, usage: Usage) -> Cost | None:
        """The cost of `usage`; None when it bills a unit this model has no price for (an image size)."""
        # Hot path: skip the arithmetic of counts that are zero; flat (untiered) rates are resolved once.
        flat = self._flat_rates
        if flat is None:
            flat = self.rates_for_prompt(usage.input_tokens)
        (input_rate, output_rate, read_rate, write_rate, write_1h_rate, audio_in_rate, audio_out_rate,
         image_in_rate) = flat
        cache_read = usage.cache_read_tokens
        write_5m = usage.cache_write_5m_tokens
        write_1h = usage.cache_write_1h_tokens
        audio_in = usage.input_audio_tokens
        audio_out = usage.output_audio_tokens
        image_in = usage.input_image_tokens

        input_cost = max(0, usage.input_tokens - cache_read - write_5m - write_1h - audio_in - image_in) * input_rate
        if cache_read:
            input_cost += cache_read * read_rate
        if write_5m:
            input_cost += write_5m * write_rate
        if write_1h:
            input_cost += write_1h * write_1h_rate
        if audio_in:
            input_cost += audio_in * audio_in_rate
        if image_in:
            input_cost += image_in * image_in_rate
        output_cost = max(0, usage.output_tokens - audio_out) * output_rate
        if audio_out:
            output_cost += audio_out * audio_out_rate
        input_cost /= MTOK
        output_cost /= MTOK
        tools = ZERO
        if self.web_search_per_k is not None and usage.web_search_requests:
            tools += usage.web_search_requests * self.web_search_per_k / KILO
        if self.per_k_requests is not None:
            tools += self.per_k_requests / KILO
        if usage.audio_seconds or usage.input_characters or usage.rerank_searches or usage.images:
            units = self._unit_costs(usage)
            if units is None:
                return None
            input_cost += units[0]
            output_cost += units[1]
        return Cost(input_cost + output_cost + tools, input_cost, output_cost, self.source, self.model, tools)

    def _unit_costs(self, usage: Usage) -> tuple[Decimal, Decimal] | None:
        """(input, output) cost of the units that are not tokens; None when one has no price here."""
        input_cost = output_cost = ZERO
        for count, rate, per in ((usage.audio_seconds, self.audio_per_hour, _SECONDS_PER_HOUR),
                                 (usage.input_characters, self.input_per_mchar, MTOK),
                                 (usage.rerank_searches, self.rerank_per_k_searches, KILO)):
            if count:
                if rate is None:
                    return None
                input_cost += count * rate / per
        if usage.images:
            price = self.image_price(usage.image_kind)
            if price is None:
                return None
            output_cost = usage.images * price
        return input_cost, output_cost

    def image_price(self, kind: str) -> Decimal | None:
        """The price of one image of `kind` ("quality/size"); a size alone matches its standard quality."""
        prices = dict(self.per_image)
        if kind in prices:
            return prices[kind]
        return prices.get(f"standard/{kind.rpartition('/')[2]}") if kind else None

    def __post_init__(self) -> None:
        tiered = any(
            isinstance(p, gp.TieredPrices)
            for p in (self.input, self.output, self.cache_read, self.cache_write, self.cache_write_1h,
                      self.input_audio, self.output_audio, self.input_image)
        )
        object.__setattr__(self, "_flat_rates", None if tiered else self.rates_for_prompt(0))


def _scale(price: Any, factor: Decimal) -> Any:
    if price is None:
        return None
    if isinstance(price, gp.TieredPrices):
        return gp.TieredPrices(
            base=price.base * factor, tiers=[gp.Tier(start=t.start, price=t.price * factor) for t in price.tiers]
        )
    return price * factor


def _at(price: Price, prompt_tokens: int) -> Decimal:
    """The rate that applies to a prompt of this size (tiers start *above* their threshold)."""
    if isinstance(price, Decimal):
        return price
    for tier in reversed(price.tiers):
        if prompt_tokens > tier.start:
            return tier.price
    return price.base


def _at_or(price: Price | None, prompt_tokens: int, fallback: Decimal) -> Decimal:
    return fallback if price is None else _at(price, prompt_tokens)


@dataclass(frozen=True, slots=True)
class PricingStatus:
    """Which price source is active, and how old it is."""

    source: str
    updated_at: datetime | None
    age_seconds: float | None
    custom_models: int
    genai_prices_version: str
    fetch_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "age_seconds": self.age_seconds,
            "custom_models": self.custom_models,
            "genai_prices_version": self.genai_prices_version,
            "fetch_error": self.fetch_error,
        }


# ---------------------------------------------------------------------------------------------
# parsing prices from files and keyword arguments
# ---------------------------------------------------------------------------------------------

_RATE_FIELDS: Final[dict[str, str]] = {
    "input_per_mtok": "input",
    "output_per_mtok": "output",
    "cache_read_per_mtok": "cache_read",
    "cache_write_per_mtok": "cache_write",
    "cache_write_1h_per_mtok": "cache_write_1h",
    "input_audio_per_mtok": "input_audio",
    "output_audio_per_mtok": "output_audio",
    "web_search_per_k": "web_search_per_k",
    "input_image_per_mtok": "input_image",
    "audio_per_hour": "audio_per_hour",
    "input_per_mchar": "input_per_mchar",
    "rerank_per_k_searches": "rerank_per_k_searches",
}
_UNIT_FIELDS: Final = frozenset({"audio_per_hour", "input_per_mchar", "rerank_per_k_searches", "per_image"})
"""Prices of units that are not tokens: a model billed only by them needs no token price."""
_META_FIELDS: Final = frozenset({"provider", "source", "refs", "from", "until", "model"})


def _parse_amount(where: str, key: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise PricingError(f"{where}: {key}={value!r} is not a number")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise PricingError(f"{where}: {key}={value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise PricingError(f"{where}: {key}={value!r} must be a finite, non-negative price")
    return amount


def _parse_price(where: str, key: str, value: object) -> Price:
    if not isinstance(value, Mapping):
        return _parse_amount(where, key, value)
    unknown = set(value) - {"base", "tiers"}
    if unknown or "base" not in value:
        raise PricingError(f"{where}: {key} must be a number or {{base = N, tiers = [...]}}, got {dict(value)!r}")
    tiers = []
    for raw in value.get("tiers") or []:
        if not isinstance(raw, Mapping) or set(raw) != {"start", "price"}:
            raise PricingError(f"{where}: {key} tier {raw!r} must have exactly start and price")
        start = raw["start"]
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise PricingError(f"{where}: {key} tier start={start!r} must be a whole number of tokens")
        tiers.append(gp.Tier(start=start, price=_parse_amount(where, f"{key} tier price", raw["price"])))
    tiers.sort(key=lambda t: t.start)
    return gp.TieredPrices(base=_parse_amount(where, f"{key} base", value["base"]), tiers=tiers)


def _parse_rate_fields(where: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(entry) - set(_RATE_FIELDS) - {"per_image"} - _META_FIELDS
    if unknown:
        raise PricingError(
            f"{where}: unknown field(s) {sorted(unknown)}; expected {sorted({*_RATE_FIELDS, 'per_image'})}")
    rates: dict[str, Any] = {}
    for key, attr in _RATE_FIELDS.items():
        if key in entry and entry[key] is not None:
            rates[attr] = _parse_price(where, key, entry[key])
            if key in _UNIT_FIELDS and not isinstance(rates[attr], Decimal):
                raise PricingError(f"{where}: {key}={entry[key]!r} must be a number")
    per_image = entry.get("per_image")
    if per_image is not None:
        if not isinstance(per_image, Mapping) or not per_image:
            raise PricingError(f"{where}: per_image={per_image!r} must be a table of \"quality/size\" = price")
        rates["per_image"] = tuple(sorted((str(kind), _parse_amount(where, f"per_image {kind!r}", price))
                                          for kind, price in per_image.items()))
    return rates


def _parse_date(where: str, key: str, value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise PricingError(f"{where}: {key}={value!r} is not a YYYY-MM-DD date") from None


@dataclass(frozen=True, slots=True)
class CustomPrice:
    model: str
    provider: str | None
    rates: Rates


@dataclass(frozen=True, slots=True)
class Correction:
    provider: str
    model: str
    refs: frozenset[str] | None
    start: date | None
    until: date | None
    rates: Mapping[str, Price]
    source: str

    def applies(self, model_ref: str, day: date) -> bool:
        if self.refs is not None and model_ref not in self.refs:
            return False
        if self.start is not None and day < self.start:
            return False
        return self.until is None or day < self.until


def load_price_file(path: Path) -> list[CustomPrice]:
    """Read custom prices from TOML or JSON: ``[models."name"] input_per_mtok = 1.0 ...``."""
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise PricingError(f"pricing file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".json":
            document = json.loads(raw_bytes)
        else:
            document = tomllib.loads(raw_bytes.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PricingError(f"pricing file {str(path)!r} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from None
    models = document.get("models") if isinstance(document, Mapping) else None
    if not isinstance(models, Mapping) or not models:
        raise PricingError(f"pricing file {str(path)!r} must hold a non-empty 'models' table")
    prices = []
    for name, entry in models.items():
        where = f"pricing file {str(path)!r}, model {name!r}"
        if not isinstance(entry, Mapping):
            raise PricingError(f"{where}: expected a table of prices, got {entry!r}")
        prices.append(_custom_price(where, str(name), entry))
    return prices


def _custom_price(where: str, model: str, entry: Mapping[str, Any]) -> CustomPrice:
    rates = _parse_rate_fields(where, entry)
    missing = [key for key in ("input_per_mtok", "output_per_mtok") if _RATE_FIELDS[key] not in rates]
    if missing and not _UNIT_FIELDS.intersection(entry):
        raise PricingError(f"{where}: missing {', '.join(missing)}")
    provider = entry.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise PricingError(f"{where}: provider={provider!r} must be a string")
    return CustomPrice(
        model=model.lower(),
        provider=normalize_provider(provider) if provider else None,
        rates=Rates(model=model, source="custom", **{"input": ZERO, "output": ZERO, **rates}),
    )


@dataclass(frozen=True, slots=True)
class RegionalPremium:
    """A regional endpoint's surcharge over the global one (corrections.toml `[[regional_premium]]`)."""

    provider: str
    model_prefix: str
    exceptions: frozenset[str]
    factor: Decimal
    source: str

    def applies(self, provider: str | None, model_id: str) -> bool:
        return provider == self.provider and model_id.startswith(self.model_prefix) and model_id not in self.exceptions


def load_regional_premiums() -> list[RegionalPremium]:
    return [RegionalPremium(entry["provider"], entry["model_prefix"], frozenset(entry.get("except", ())),
                            Decimal(str(entry["factor"])), entry["source"])
            for entry in _corrections_data().get("regional_premium", [])]


@functools.cache
def _corrections_data() -> dict[str, Any]:
    """The bundled corrections file, parsed once: corrections, regional premiums and added models read it."""
    return tomllib.loads(resources.files("otel_llm_cost").joinpath("data/corrections.toml").read_text("utf-8"))


def load_additions() -> dict[tuple[str | None, str], Rates]:
    """corrections.toml `[[model]]`: models genai-prices lacks, keyed by (provider, name) and (None, name)
    for every spelling the API accepts."""
    additions: dict[tuple[str | None, str], Rates] = {}
    for entry in _corrections_data().get("model", []):
        price = _custom_price(f"corrections.toml model {entry.get('model')!r}", entry["model"], entry)
        rates = replace(price.rates, source="bundled")
        for name in (price.model, *(ref.lower() for ref in entry.get("refs", ()))):
            additions[(price.provider, name)] = additions[(None, name)] = rates
    return additions


def load_corrections() -> list[Correction]:
    corrections = []
    for index, entry in enumerate(_corrections_data().get("correction", [])):
        where = f"corrections.toml entry {index} ({entry.get('model')!r})"
        refs = entry.get("refs")
        corrections.append(
            Correction(
                provider=entry["provider"],
                model=entry["model"],
                refs=frozenset(r.lower() for r in refs) if refs else None,
                start=_parse_date(where, "from", entry.get("from")),
                until=_parse_date(where, "until", entry.get("until")),
                rates=_parse_rate_fields(where, entry),
                source=entry["source"],
            )
        )
    return corrections


def normalize_provider(provider: str | None) -> str | None:
    if not provider:
        return None
    key = provider.strip().lower()
    return _PROVIDER_IDS.get(key, key)


def _as_utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _epoch_day(at: datetime | None) -> int:
    if at is None:
        return int(time.time()) // _SECONDS_PER_DAY
    return int(_as_utc(at).timestamp()) // _SECONDS_PER_DAY


def _normalize_tier(service_tier: str | None) -> str:
    return (service_tier or "").strip().lower()


# ---------------------------------------------------------------------------------------------
# the price book
# ---------------------------------------------------------------------------------------------

_MISSING: Final = object()


@dataclass
class PriceBook:
    """Prices from every source, resolved once per (provider, model, tier, batch, day) and cached."""

    corrections: list[Correction] = field(default_factory=load_corrections)
    regional_premiums: list[RegionalPremium] = field(default_factory=load_regional_premiums)
    additions: dict[tuple[str | None, str], Rates] = field(default_factory=load_additions)
    _custom: dict[tuple[str | None, str], CustomPrice] = field(default_factory=dict)
    _fetched: data_snapshot.DataSnapshot | None = None
    _fetched_at: datetime | None = None
    _fetch_error: str | None = None
    _cache: dict[tuple[Any, ...], Rates | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- sources ---

    def set_pricing(
        self,
        model: str,
        input_per_mtok: float | Decimal | str,
        output_per_mtok: float | Decimal | str,
        *,
        provider: str | None = None,
        **more: float | Decimal | str | Mapping[str, Any] | None,
    ) -> None:
        """Custom prices always win. Extra keywords: cache_read_per_mtok, cache_write_per_mtok, ..."""
        if not isinstance(model, str) or not model.strip():
            raise PricingError(f"set_pricing: model={model!r} must be a non-empty string")
        entry = {"input_per_mtok": input_per_mtok, "output_per_mtok": output_per_mtok, **more}
        if provider is not None:
            entry["provider"] = provider
        self._add_custom([_custom_price(f"set_pricing({model!r})", model, entry)])

    def load_pricing_file(self, path: str | os.PathLike[str]) -> int:
        prices = load_price_file(Path(path))
        self._add_custom(prices)
        return len(prices)

    def _add_custom(self, prices: list[CustomPrice]) -> None:
        with self._lock:
            for price in prices:
                self._custom[(price.provider, price.model)] = price
            self._cache.clear()

    def clear_custom(self) -> None:
        with self._lock:
            self._custom.clear()
            self._cache.clear()

    def knows_provider(self, provider: str) -> bool:
        """Whether any price source has this provider (semconv names and genai-prices ids alike)."""
        key = normalize_provider(provider)
        if any(p == key for p, _ in self._custom):
            return True
        snapshot = self._fetched or data_snapshot.get_snapshot()
        return key is not None and data_snapshot.find_provider_by_id(snapshot.providers, key) is not None

    def closest_model(self, model: str, provider: str | None = None) -> str | None:
        """The known model id most like `model` (`gpt4o` -> `gpt-4o`), for a "did you mean" hint."""
        import difflib

        key = normalize_provider(provider) if provider else None
        snapshot = self._fetched or data_snapshot.get_snapshot()
        names = {m for p, m in self._custom if key is None or p == key}
        for entry in snapshot.providers:
            if key is None or entry.id == key:
                names.update(m.id for m in entry.models)
        squashed = {name.replace("-", "").replace(".", "").lower(): name for name in names}
        exact = squashed.get(model.replace("-", "").replace(".", "").lower())
        if exact is not None and exact != model:
            return exact
        close = difflib.get_close_matches(model, sorted(names), n=1, cutoff=0.75)
        return close[0] if close and close[0] != model else None

    def use_fetched(self, snapshot: data_snapshot.DataSnapshot, fetched_at: datetime) -> None:
        with self._lock:
            self._fetched, self._fetched_at, self._fetch_error = snapshot, fetched_at, None
            self._cache.clear()

    def note_fetch_error(self, error: str) -> None:
        self._fetch_error = error

    def status(self) -> PricingStatus:
        version = metadata.version("genai-prices")
        if self._custom:
            source, updated = "custom", None
        elif self._fetched is not None:
            source, updated = "fetched", self._fetched_at
        else:
            source, updated = "bundled", None
        age = (datetime.now(UTC) - updated).total_seconds() if updated else None
        return PricingStatus(source, updated, age, len(self._custom), version, self._fetch_error)

    # --- resolution ---

    def rates(
        self,
        provider: str | None,
        model: str,
        *,
        service_tier: str | None = None,
        batch: bool = False,
        at: datetime | None = None,
        regional: bool = False,
    ) -> Rates | None:
        """The rates that apply, or None when no source knows this model. `regional`: the call went to a
        regional endpoint, which may cost more than the global one."""
        tier = _normalize_tier(service_tier)
        if tier == "batch":
            tier, batch = "", True
        key = (provider, model, tier, batch, _epoch_day(at), regional)
        cached = self._cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        provider_id = normalize_provider(provider)
        rates, cacheable = self._resolve(provider_id, model.lower(), tier, batch, _as_utc(at))
        if regional and rates is not None and rates.source != "custom":
            premium = next((p for p in self.regional_premiums if p.applies(provider_id, rates.model)), None)
            if premium is not None:
                rates = rates.scaled(premium.factor)
        if cacheable:
            if len(self._cache) > 50_000:  # unbounded model names must not grow memory for ever
                self._cache.clear()
            self._cache[key] = rates
        return rates

    def _resolve(
        self, provider: str | None, model: str, tier: str, batch: bool, at: datetime
    ) -> tuple[Rates | None, bool]:
        custom = self._custom.get((provider, model)) or self._custom.get((None, model))
        listed = custom.rates if custom is not None else self.additions.get((provider, model))
        if listed is not None:
            return (listed.scaled(HALF) if batch or tier in _HALF_PRICE_TIERS else listed), True

        snapshot = self._fetched or data_snapshot.get_snapshot()
        source = "fetched" if self._fetched is not None else "bundled"
        try:
            gp_provider, info = snapshot.find_provider_model(model, None, provider, None)
        except LookupError:
            if provider is not None and data_snapshot.find_provider_by_id(snapshot.providers, provider) is None:
                warn_once(_logger, ("provider", provider), "otel-llm-cost: no prices for provider %r", provider)
            return None, True
        cacheable = not _has_time_of_day_prices(info)
        context: dict[str, str] = {}
        if tier and tier not in _STANDARD_TIERS:
            context["service_tier"] = tier
        if batch:
            context["processing"] = "batch"
        standard = info.get_prices(at)
        resolved = info.get_prices(at, context) if context else standard
        variant_missing = bool(context) and resolved == standard
        if variant_missing and not batch and tier not in _HALF_PRICE_TIERS:
            # A priority-style tier that genai-prices lists only from a later date: its published
            # rate applied before genai-prices recorded it, so use the listed variant.
            resolved = _variant_ignoring_dates(info, standard, context)
            variant_missing = resolved == standard
        rates = _rates_from_model_price(resolved, info.id, source)
        rates = self._apply_corrections(rates, gp_provider.id, info.id, model, at.date())
        if variant_missing and (batch or tier in _HALF_PRICE_TIERS):
            rates = rates.scaled(HALF)
        elif variant_missing:
            warn_once(
                _logger,
                ("tier", info.id, tier),
                "otel-llm-cost: no %r service-tier price for %s; priced at the standard rate",
                tier,
                info.id,
            )
        return rates, cacheable

    def _apply_corrections(self, rates: Rates, provider: str, model_id: str, model_ref: str, day: date) -> Rates:
        for correction in self.corrections:
            if correction.provider == provider and correction.model == model_id and correction.applies(model_ref, day):
                rates = replace(rates, **correction.rates)  # type: ignore[arg-type]
        return rates

    def compute_cost(
        self,
        provider: str | None,
        model: str | None,
        usage: Any,
        *,
        api: str | None = None,
        service_tier: str | None = None,
        batch: bool = False,
        at: datetime | None = None,
        regional: bool = False,
    ) -> Cost | None:
        if not model or not isinstance(model, str):
            return None
        if not isinstance(usage, Usage):
            provider_id = normalize_provider(provider)
            api_name = api or _DEFAULT_API.get(provider_id or "", "")
            parsed = usage_from_api(api_name, usage)
            if parsed is None:
                warn_once(_logger, ("api", api_name), "otel-llm-cost: unknown API %r; cost left unknown", api_name)
                return None
            usage = parsed
        rates = self.rates(provider, model, service_tier=service_tier, batch=batch, at=at, regional=regional)
        return None if rates is None else rates.cost(usage)


def _variant_ignoring_dates(info: gp.ModelInfo, standard: gp.ModelPrice, context: Mapping[str, str]) -> gp.ModelPrice:
    overrides: dict[str, Any] = {}
    for variant in info.price_variants or ():
        if all(context.get(k) == v for k, v in variant.when.items()):
            for key, price in variant.prices.__dict__.items():
                if price is not None:
                    overrides.setdefault(key, price)
    if not overrides:
        return standard
    resolved = copy(standard)
    resolved.__dict__.update(overrides)
    return resolved


def _has_time_of_day_prices(info: gp.ModelInfo) -> bool:
    conditional = info.prices if isinstance(info.prices, list) else []
    return any(isinstance(c.constraint, gp.TimeOfDateConstraint) for c in conditional)


def _rates_from_model_price(price: gp.ModelPrice, model_id: str, source: str) -> Rates:
    def get(name: str) -> Any:
        return getattr(price, name, None)

    input_price = get("input_mtok") if get("input_mtok") is not None else ZERO
    cache_write_1h = get("cache_write_1h_mtok")
    if cache_write_1h is None and get("cache_write_mtok") is not None and "claude" in model_id:
        # Anthropic bills a 1-hour cache write at 2x the base input price wherever Claude runs
        # (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#pricing, read 2025-11;
        # Bedrock and Vertex AI use the same multipliers). genai-prices lists no 1h rate for most
        # Bedrock and Vertex Claude models, which would price those writes at the 5-minute rate.
        cache_write_1h = _scale(input_price, TWO)
    return Rates(
        model=model_id,
        source=source,
        input=input_price,
        output=get("output_mtok") if get("output_mtok") is not None else ZERO,
        cache_read=get("cache_read_mtok"),
        cache_write=get("cache_write_mtok"),
        cache_write_1h=cache_write_1h,
        input_audio=get("input_audio_mtok"),
        output_audio=get("output_audio_mtok"),
        web_search_per_k=get("web_searches_kcount"),
        per_k_requests=get("requests_kcount"),
        input_image=get("input_image_mtok"),
        audio_per_hour=get("input_audio_hours") if get("input_audio_hours") is not None else get("audio_hours"),
        input_per_mchar=get("input_mchars"),
        rerank_per_k_searches=get("rerank_searches_kcount"),
    )


_default_book: PriceBook | None = None
_default_lock = threading.Lock()


def default_price_book() -> PriceBook:
    global _default_book
    if _default_book is None:
        with _default_lock:
            if _default_book is None:
                _default_book = PriceBook()
    return _default_book


def compute_cost(
    provider: str | None,
    model: str | None,
    usage: Any,
    api: str | None = None,
    service_tier: str | None = None,
    batch: bool = False,
    at: datetime | None = None,
) -> Cost | None:
    """USD cost of one call, or None when its price is unknown (never 0 for a missing price).

    `usage` is a `Usage`, or a provider's raw usage (dict or SDK object) read as `api`
    (`openai.chat`, `anthropic.messages`, ...; default: the provider's main API).
    `service_tier` is the tier the response reports. `at` picks historic prices.
    """
    return default_price_book().compute_cost(
        provider, model, usage, api=api, service_tier=service_tier, batch=batch, at=at
    )

