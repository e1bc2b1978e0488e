"""The usage ledger as FOCUS 1.0 (the FinOps Open Cost and Usage Specification): the CSV FinOps tools
ingest next to their cloud bills.

One charge row per UTC day, provider, model, service, user and tag set, summed from the ledger's rows as
stored: its `BilledCost` (= `EffectiveCost` = `ListCost` = `ContractedCost`, no discounts are known to
us) adds up to the report's total for the same range. Rows of unknown cost are left out (FOCUS has no
unknown cost) and counted, for the caller to say so; calls a budget refused cost nothing and are no charge.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from otel_llm_cost.ledger.rows import Row

__all__ = ["FOCUS_COLUMNS", "FocusExport", "focus_rows"]

FOCUS_COLUMNS: Final = (
    "AvailabilityZone", "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
    "BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd",
    "ChargePeriodStart", "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "ConsumedQuantity", "ConsumedUnit", "ContractedCost",
    "ContractedUnitPrice", "EffectiveCost", "InvoiceIssuer", "ListCost", "ListUnitPrice", "PricingCategory",
    "PricingQuantity", "PricingUnit", "Provider", "Publisher", "RegionId", "RegionName", "ResourceID", "ResourceName",
    "ResourceType", "ServiceCategory", "ServiceName", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags",
)
"""FOCUS 1.0's columns, as the FinOps Foundation's validator names them."""

_PROVIDER_NAMES: Final = {
    "openai": "OpenAI", "anthropic": "Anthropic", "gcp.gemini": "Google", "gcp.vertex_ai": "Google", "google": "Google",
    "aws.bedrock": "AWS", "mistral_ai": "Mistral AI", "mistral": "Mistral AI", "cohere": "Cohere", "groq": "Groq",
    "x_ai": "xAI", "deepseek": "DeepSeek", "azure.ai.openai": "Microsoft", "azure.ai.inference": "Microsoft",
    "openrouter": "OpenRouter", "together": "Together AI", "fireworks": "Fireworks AI", "cerebras": "Cerebras",
    "ollama": "Ollama", "huggingface": "Hugging Face", "voyageai": "Voyage AI", "replicate": "Replicate",
}


@dataclass(slots=True)
class _Charge:
    cost: Decimal = Decimal(0)
    tokens: int = 0
    calls: int = 0


@dataclass(slots=True)
class FocusExport:
    """What an export left out: calls of unknown cost (no price was known when they were made)."""

    unknown_cost_calls: int = 0
    charges: dict[tuple[Any, ...], _Charge] = field(default_factory=dict)


def focus_rows(rows: Iterable[Row], export: FocusExport) -> Iterator[list[Any]]:
    """The FOCUS charge rows of `rows`, in `FOCUS_COLUMNS` order; `export` counts what was left out."""
    charges = export.charges
    for row in rows:
        if row.outcome == "blocked":
            continue
        if row.cost_usd is None:
            export.unknown_cost_calls += 1
            continue
        key = (row.ts.astimezone(UTC).date(), row.provider or "unknown", row.response_model or row.request_model or "unknown",
               row.service_name or "", row.user_id or "", json.dumps(row.tags, sort_keys=True))
        charge = charges.get(key)
        if charge is None:
            charge = charges[key] = _Charge()
        charge.cost += row.cost_usd
        charge.tokens += row.input_tokens + row.output_tokens
        charge.calls += 1
    for key in sorted(charges):
        yield _charge_row(key, charges[key])


def _charge_row(key: tuple[Any, ...], charge: _Charge) -> list[Any]:
    day, provider, model, service, user, tags = key
    name = _PROVIDER_NAMES.get(provider, provider)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    dimensions = {"service": service or None, "user": user or None, **json.loads(tags)}
    cost = f"{charge.cost:f}"
    values = {
        "BilledCost": cost, "EffectiveCost": cost, "ListCost": cost, "ContractedCost": cost,
        "BillingAccountId": provider, "BillingAccountName": name, "BillingCurrency": "USD",
        "BillingPeriodStart": _at(month), "BillingPeriodEnd": _at(next_month),
        "ChargePeriodStart": _at(day), "ChargePeriodEnd": _at(day + timedelta(days=1)),
        "ChargeCategory": "Usage", "ChargeFrequency": "Usage-Based",
        "ChargeDescription": f"{charge.calls:,} call{'s' if charge.calls != 1 else ''} to {model}",
        "ConsumedQuantity": f"{charge.tokens}.0", "ConsumedUnit": "Tokens",  # a decimal column, not a count
        "PricingQuantity": f"{charge.tokens}.0", "PricingUnit": "Tokens", "PricingCategory": "Standard",
        "Provider": name, "Publisher": name, "InvoiceIssuer": name,
        "ResourceID": model, "ResourceName": model, "ResourceType": "Model", "SkuId": model,
        "ServiceCategory": "AI and Machine Learning", "ServiceName": f"{name} API",
        "SubAccountId": service or None, "SubAccountName": service or None,
        "Tags": json.dumps({k: v for k, v in dimensions.items() if v is not None}, sort_keys=True),
    }
    return [values.get(column) for column in FOCUS_COLUMNS]


def _at(day: date) -> str:
    return datetime.combine(day, time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
