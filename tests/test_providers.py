"""The provider behind an OpenAI-compatible base URL: named by its host, priced at its own rates, or at
the cost it reports itself. The host table is tested as a pure function; the calls go through the real
openai client to the fake provider, whose loopback port `OTEL_LLM_COST_PROVIDERS` maps to a provider.

Prices (per 1M tokens, checked 2026-11-25): Groq llama-3.3-70b-versatile $0.59 / $0.79
(groq.com/pricing); DeepSeek deepseek-chat $0.27 / $1.10, half off-peak (api-docs.deepseek.com/quick_start/pricing);
OpenAI gpt-4o $2.50 / $10 (openai.com/api/pricing); OpenRouter passes provider prices through
(openrouter.ai/openai/gpt-4o).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import replace
from datetime import UTC, datetime, time
from decimal import Decimal

import openai
import pytest
from conftest import cost_of, only_span, our_spans

from otel_llm_cost import _state
from otel_llm_cost.config import ConfigError, Settings
from otel_llm_cost.providers import Route, route_for_url

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(("url", "provider"), [
    ("https://api.openai.com/v1", "openai"),
    ("https://api.groq.com/openai/v1", "groq"),
    ("https://api.deepseek.com", "deepseek"),
    ("https://api.x.ai/v1", "x_ai"),
    ("https://openrouter.ai/api/v1", "openrouter"),
    ("https://api.together.xyz/v1", "together"),
    ("https://api.fireworks.ai/inference/v1", "fireworks"),
    ("https://api.perplexity.ai", "perplexity"),
    ("https://api.cerebras.ai/v1", "cerebras"),
    ("https://api.moonshot.ai/v1", "moonshot_ai"),
    ("https://api.z.ai/api/paas/v4", "zai"),
    ("https://router.huggingface.co/groq/v1", "huggingface_groq"),
    ("https://api.mistral.ai/v1", "mistral_ai"),
    ("https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini"),
    ("https://my-resource.openai.azure.com/openai", "azure.ai.openai"),
    ("http://localhost:11434/v1", "ollama"),
    ("http://127.0.0.1:11434/v1", "ollama"),
    ("http://127.0.0.1:8000/v1", "openai"),  # vLLM, LM Studio...: no guess
    ("https://llm-gateway.internal/v1", "openai"),
])
def test_the_host_names_the_provider(url, provider):
    assert route_for_url(url).provider == provider


def test_overrides_win_by_host_and_port_then_host():
    overrides = {"127.0.0.1:8000": "groq", "llm-gateway.internal": "x-ai"}
    assert route_for_url("http://127.0.0.1:8000/v1", overrides) == Route("groq", "127.0.0.1", 8000)
    assert route_for_url("http://127.0.0.1:9000/v1", overrides) == Route("openai", "127.0.0.1", 9000)
    assert route_for_url("https://llm-gateway.internal/v1", overrides) == Route("x_ai", "llm-gateway.internal", 443)


@pytest.mark.parametrize(("raw", "parsed"), [
    ("llm-gateway.internal=openai,127.0.0.1:8000=groq",
     (("llm-gateway.internal", "openai"), ("127.0.0.1:8000", "groq"))),
    (" Host.Example = DeepSeek ", (("host.example", "deepseek"),)),
])
def test_providers_setting_parses(raw, parsed):
    assert Settings.from_env({"OTEL_LLM_COST_PROVIDERS": raw}).providers == parsed


@pytest.mark.parametrize("raw", ["groq", "=groq", "host=", "host:port=groq", "a/b=groq"])
def test_a_malformed_providers_setting_names_the_bad_item(raw):
    with pytest.raises(ConfigError, match=r"OTEL_LLM_COST_PROVIDERS="):
        Settings.from_env({"OTEL_LLM_COST_PROVIDERS": raw})


@pytest.fixture
def as_provider(fake, settings, instrumented):
    """Map the fake's loopback port to a provider, as a user maps a gateway."""
    host = fake.url.split("//", 1)[1]

    def use(provider: str) -> openai.OpenAI:
        _state.set_settings(replace(settings, providers=((host, provider),)))
        return openai.OpenAI(base_url=fake.openai_url, api_key="k", max_retries=0)

    return use


def test_groq_through_the_openai_client_is_named_and_priced_as_groq(as_provider, fake, span_exporter):
    client = as_provider("groq")
    fake.set_model("llama-3.3-70b-versatile", input_tokens=1_000, output_tokens=500)
    client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "groq"
    host, port = fake.url.split("//", 1)[1].split(":")
    assert (span.attributes["server.address"], span.attributes["server.port"]) == (host, int(port))
    assert cost_of(span) == Decimal("0.00059") + Decimal("0.000395")
    assert span.attributes["gen_ai.usage.cost.source"] == "local"


def test_deepseek_async_and_streamed(as_provider, fake, span_exporter):
    as_provider("deepseek")
    fake.set_model("deepseek-chat", input_tokens=2_000, output_tokens=1_000)
    client = openai.AsyncOpenAI(base_url=fake.openai_url, api_key="k", max_retries=0)

    async def main() -> None:
        await client.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
        async for _ in await client.chat.completions.create(model="deepseek-chat", messages=MESSAGES, stream=True):
            pass

    asyncio.run(main())
    spans = span_exporter.get_finished_spans()
    assert [s.attributes["gen_ai.provider.name"] for s in spans] == ["deepseek", "deepseek"]
    assert [cost_of(s) for s in spans] == [_deepseek_price(s.start_time) for s in spans]


def _deepseek_price(start_ns: int) -> Decimal:
    """2,000 in + 1,000 out at the rate of the call's time of day: DeepSeek billed half from 16:30 to
    00:30 UTC (its off-peak discount, which genai-prices records), so the expectation follows the clock."""
    moment = datetime.fromtimestamp(start_ns / 1e9, UTC).time()
    peak = time(0, 30) <= moment < time(16, 30)
    return (Decimal("0.00054") + Decimal("0.0011")) / (1 if peak else 2)


def test_an_unknown_host_prices_only_models_openai_sells(instrumented, openai_client, fake, span_exporter):
    """A gateway or vLLM on an unknown host: gpt-4o is OpenAI's price; a Llama there is unknown, not guessed."""
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    fake.set_model("llama-3.3-70b-versatile", input_tokens=1_000, output_tokens=100)
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    openai_client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
    gpt, llama = span_exporter.get_finished_spans()
    assert gpt.attributes["gen_ai.provider.name"] == "openai" and cost_of(gpt) == Decimal("0.0035")
    assert llama.attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.usage.cost.amount" not in llama.attributes
    assert llama.attributes["llm_cost.pricing.source"] == "unknown"


def test_openrouter_reported_cost_wins(as_provider, fake, span_exporter):
    client = as_provider("openrouter")
    fake.set_model("openai/gpt-4o", input_tokens=1_000, output_tokens=100, usage_cost=0.00371)
    client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES)
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "openrouter"
    assert cost_of(span) == Decimal("0.00371")  # our own price would be $0.0035
    assert span.attributes["gen_ai.usage.cost.source"] == "provider"
    assert span.attributes["llm_cost.pricing.source"] == "provider"
    split = Decimal(repr(span.attributes["llm_cost.cost.input"])) + Decimal(repr(span.attributes["llm_cost.cost.output"]))
    assert abs(split - Decimal("0.00371")) < Decimal("1e-12")


def test_openrouter_byok_is_the_fee_plus_the_upstream_cost(as_provider, fake, span_exporter):
    client = as_provider("openrouter")
    fake.set_model("openai/gpt-4o", input_tokens=1_000, output_tokens=100, usage_cost=0.000175,
                   byok_upstream_cost=0.0035)
    stream = client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert cost_of(only_span(span_exporter)) == Decimal("0.003675")


def test_openrouter_without_a_reported_cost_falls_back_to_our_price(as_provider, fake, span_exporter):
    client = as_provider("openrouter")
    fake.set_model("openai/gpt-4o", input_tokens=1_000, output_tokens=100)
    client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES)
    span = only_span(span_exporter)
    assert cost_of(span) == Decimal("0.0035") and span.attributes["gen_ai.usage.cost.source"] == "local"


def test_a_litellm_proxys_cost_header_wins(instrumented, openai_client, fake, span_exporter):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100, cost_header="0.0041")
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = only_span(span_exporter)
    assert cost_of(span) == Decimal("0.0041") and span.attributes["gen_ai.usage.cost.source"] == "provider"


def test_the_budget_reserves_our_estimate_and_settles_the_reported_cost(as_provider, fake, guard):
    from otel_llm_cost.budget import Budget

    client = as_provider("openrouter")
    guard.set(Budget.create(1, name="b"))
    fake.set_model("openai/gpt-4o", input_tokens=1_000, output_tokens=100, usage_cost=0.00371)
    client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES, max_tokens=100)
    assert guard.status("b").spent == Decimal("0.00371")


@pytest.mark.parametrize("value", ["-1", "nan", "1e400", "free", "Infinity"])
def test_an_implausible_reported_cost_is_ignored(instrumented, openai_client, fake, span_exporter, value):
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100, cost_header=value)
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = only_span(span_exporter)
    assert cost_of(span) == Decimal("0.0035") and span.attributes["gen_ai.usage.cost.source"] == "local"


def test_the_azure_client_is_azure_whatever_its_host(instrumented, fake, span_exporter):
    """AzureOpenAI behind a private endpoint or gateway (here the loopback fake): still `azure.ai.openai`."""
    client = openai.AzureOpenAI(azure_endpoint=fake.url, api_key="k", api_version="2024-10-21", max_retries=0)
    fake.set_model("gpt-4o", input_tokens=1_000, output_tokens=100)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert span.attributes["server.address"] == "127.0.0.1"


HUGE = 10**400  # a 401-digit integer, valid JSON


@pytest.mark.parametrize("reported", [{"usage_cost": HUGE}, {"usage_cost": 0.000175, "byok_upstream_cost": HUGE}])
def test_a_reported_cost_too_big_for_a_number_leaves_the_usage_read(as_provider, fake, span_exporter, caplog, reported):
    client = as_provider("openrouter")
    fake.set_model("openai/gpt-4o", input_tokens=1_000, output_tokens=100, **reported)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES)
    span = only_span(span_exporter)
    assert span.attributes["gen_ai.usage.input_tokens"] == 1_000 and span.attributes["gen_ai.usage.output_tokens"] == 100
    assert cost_of(span) == Decimal("0.0035") and span.attributes["gen_ai.usage.cost.source"] == "local"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_implausibly_high_reported_cost_is_kept_aside_and_our_price_is_used(as_provider, fake, span_exporter,
                                                                                guard, caplog):
    from otel_llm_cost.budget import Budget

    client = as_provider("openrouter")
    guard.set(Budget.create(1, name="monthly"))
    fake.set_model("openai/gpt-4o", input_tokens=10, output_tokens=10, usage_cost=999_999.99)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        for _ in range(3):
            client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES, max_tokens=10)
    ours = Decimal("0.000125")  # 10 input at $2.50/M plus 10 output at $10/M
    spans = our_spans(span_exporter)
    assert [cost_of(s) for s in spans] == [ours] * 3
    assert [s.attributes["llm_cost.cost.reported"] for s in spans] == [999_999.99] * 3
    assert {s.attributes["gen_ai.usage.cost.source"] for s in spans} == {"local"}
    assert guard.status("monthly").spent == 3 * ours  # the budget is not poisoned: every call was allowed
    warnings = [r.getMessage() for r in caplog.records if "more than OTEL_LLM_COST_REPORTED_COST_MAX_RATIO" in r.getMessage()]
    assert len(warnings) == 1 and "$999999.99" in warnings[0] and "openai/gpt-4o" in warnings[0]


def test_a_reported_cost_within_the_ratio_is_believed_and_minus_zero_is_zero(as_provider, fake, span_exporter):
    client = as_provider("openrouter")
    fake.set_model("openai/gpt-4o", input_tokens=1_000, output_tokens=100, usage_cost=0.035)  # 10x ours: the limit
    client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES)
    fake.set_model("openai/gpt-4o", input_tokens=1_000, output_tokens=100, usage_cost=-0.0)
    client.chat.completions.create(model="openai/gpt-4o", messages=MESSAGES)
    believed, free = our_spans(span_exporter)
    assert cost_of(believed) == Decimal("0.035") and believed.attributes["gen_ai.usage.cost.source"] == "provider"
    amount = free.attributes["gen_ai.usage.cost.amount"]
    assert amount == 0.0 and math.copysign(1.0, amount) == 1.0 and free.attributes["gen_ai.usage.cost.source"] == "provider"
    assert "llm_cost.cost.reported" not in believed.attributes


def test_openrouter_reported_cost_wins_on_the_responses_api_too(as_provider, fake, span_exporter):
    """Recorded OpenRouter traffic: Responses calls report `usage.cost` as Chat Completions ones do."""
    client = as_provider("openrouter")
    fake.set_model("openai/gpt-4o", input_tokens=1_000, output_tokens=100, usage_cost=0.002196)
    client.responses.create(model="openai/gpt-4o", input="Hi")
    stream = client.responses.create(model="openai/gpt-4o", input="Hi", stream=True)
    assert [event.type for event in stream][-1] == "response.completed"
    for span in our_spans(span_exporter):
        assert cost_of(span) == Decimal("0.002196") and span.attributes["gen_ai.usage.cost.source"] == "provider"
