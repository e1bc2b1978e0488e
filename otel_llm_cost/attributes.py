"""Every span attribute and metric name of the public contract, once: dashboards, alerts and users rely on them.

Dashboards and alert rules depend on these strings: change them only with the contract.
"""

from __future__ import annotations

from typing import Final

# --- GenAI semantic conventions (request / response) ---
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # pre-1.37 name, read from foreign spans only
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_STREAM: Final = "gen_ai.request.stream"
GEN_AI_REQUEST_SERVICE_TIER: Final = "gen_ai.openai.request.service_tier"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_SERVICE_TIER: Final = "gen_ai.openai.response.service_tier"
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"  # semconv >= 1.37, foreign spans
LLM_COST_REQUEST_SERVICE_TIER: Final = "llm_cost.request.service_tier"
LLM_COST_RESPONSE_SERVICE_TIER: Final = "llm_cost.response.service_tier"
_OPENAI_PROVIDERS: Final = frozenset({"openai", "azure.ai.openai"})


def service_tier_keys(provider: str) -> tuple[str, str]:
    """(request, response) tier attribute names: semconv names them only for OpenAI, so the other
    providers' tiers (Anthropic `priority`, Bedrock `flex`, Gemini `flex`) go under `llm_cost.*`."""
    if provider in _OPENAI_PROVIDERS:
        return GEN_AI_REQUEST_SERVICE_TIER, GEN_AI_RESPONSE_SERVICE_TIER
    return LLM_COST_REQUEST_SERVICE_TIER, LLM_COST_RESPONSE_SERVICE_TIER


GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
ERROR_TYPE: Final = "error.type"
SESSION_ID: Final = "session.id"
USER_ID: Final = "user.id"

# --- usage ---
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"  # legacy, foreign spans
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"  # legacy, foreign spans
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"

# --- cost (draft semantic-conventions-genai #443) ---
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"
GEN_AI_USAGE_COST_COMPAT: Final = "gen_ai.usage.cost"  # read by Langfuse and OpenLIT

# --- our extensions ---
LLM_COST_COST_INPUT: Final = "llm_cost.cost.input"
LLM_COST_COST_OUTPUT: Final = "llm_cost.cost.output"
LLM_COST_COST_REPORTED: Final = "llm_cost.cost.reported"
"""A cost the response reported but that was not believed (over the plausibility ratio): kept for the record."""
LLM_COST_PRICING_SOURCE: Final = "llm_cost.pricing.source"
LLM_COST_PRICING_MODEL: Final = "llm_cost.pricing.model"
LLM_COST_USAGE_ESTIMATED: Final = "llm_cost.usage.estimated"
LLM_COST_USAGE_INCOMPLETE: Final = "llm_cost.usage.incomplete"
# units billed that are not tokens (whisper-1 seconds, tts-1 characters, dall-e images, rerank searches)
LLM_COST_USAGE_AUDIO_SECONDS: Final = "llm_cost.usage.audio_seconds"
LLM_COST_USAGE_INPUT_CHARACTERS: Final = "llm_cost.usage.input_characters"
LLM_COST_USAGE_IMAGES: Final = "llm_cost.usage.images"
LLM_COST_USAGE_RERANK_SEARCHES: Final = "llm_cost.usage.rerank_searches"
LLM_COST_ATTEMPTS: Final = "llm_cost.attempts"
"""Requests the SDK sent for this call, retries included; set only when more than one."""
LLM_COST_BUDGET_NAME: Final = "llm_cost.budget.name"
LLM_COST_BUDGET_OUTCOME: Final = "llm_cost.budget.outcome"
"""`allowed`, `warned`, `blocked`, `responded` (answered with the refusal message, never sent) or `fallback`."""
LLM_COST_BUDGET_FALLBACK_FROM: Final = "llm_cost.budget.fallback_from"
"""The model the app asked for, when a budget's fallback sent a cheaper one (`gen_ai.request.model`)."""
LLM_COST_BUDGET_THRESHOLD_EVENT: Final = "llm_cost.budget.threshold"
"""The span event of the call whose spend first reached a budget threshold (`on_budget_threshold`)."""
LLM_COST_TAG_PREFIX: Final = "llm_cost.tag."
LLM_COST_ROLLUP_COST: Final = "llm_cost.rollup.cost"
LLM_COST_ROLLUP_CALLS: Final = "llm_cost.rollup.calls"
LLM_COST_ROLLUP_UNPRICED_CALLS: Final = "llm_cost.rollup.unpriced_calls"
"""On every open ancestor of LLM calls (an HTTP request, an agent's invoke_agent, a job): what the calls
below it cost (priced calls only), how many there were, and how many had no known price."""
LLM_COST_JOB: Final = "llm_cost.job"
"""The job (`llm_cost.track(name)`) a call belongs to; the ledger's `job` column."""
LLM_COST_BATCH: Final = "llm_cost.batch"
"""True for calls billed at a provider's batch rate (Batch API results)."""
LLM_COST_CALL_ID: Final = "llm_cost.call.id"
"""Marks a span as ours and pairs it with the foreign spans of the same call (see processor)."""

# --- metric instrument names ---
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_OPERATION_COST: Final = "gen_ai.client.operation.cost"
METRIC_TOKENS: Final = "llm_cost.tokens"
METRIC_CALLS: Final = "llm_cost.calls"
METRIC_BUDGET_LIMIT: Final = "llm_cost.budget.limit"
METRIC_BUDGET_SPENT: Final = "llm_cost.budget.spent"
METRIC_BUDGET_REMAINING: Final = "llm_cost.budget.remaining"
METRIC_BUDGET_UTILIZATION: Final = "llm_cost.budget.utilization"
METRIC_BUDGET_BLOCKED: Final = "llm_cost.budget.blocked"
METRIC_LEDGER_DROPPED: Final = "llm_cost.ledger.dropped"
"""Ledger rows lost: the writer's queue was full, or the database refused the row itself."""
METRIC_LEDGER_SPOOLED: Final = "llm_cost.ledger.spooled"
"""Ledger rows written to a spool file (the database was down) for a later process to write."""
METRIC_BUDGET_EXHAUSTED_KEYS: Final = "llm_cost.budget.exhausted_keys"

# --- metric attribute names ---
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
LLM_COST_TOKEN_TYPE: Final = "llm_cost.token.type"
LLM_COST_OUTCOME: Final = "llm_cost.outcome"
LLM_COST_PRICING_KNOWN: Final = "llm_cost.pricing.known"
LLM_COST_BUDGET_WINDOW: Final = "llm_cost.budget.window"

COST_SOURCE_LOCAL: Final = "local"
COST_SOURCE_PROVIDER: Final = "provider"
"""The response itself reported the cost (OpenRouter `usage.cost`, a LiteLLM proxy's cost header)."""

SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
CURRENCY_USD: Final = "USD"
