"""What agent frameworks do with a budget refusal, run for real over the fake provider: they must surface
`BudgetExceededError` to the app (never retry it into a loop that spends), and under `respond` carry on
with the refusal message as the model's answer."""

from __future__ import annotations

import pytest

import otel_llm_cost as llm_cost
from otel_llm_cost import _setup
from otel_llm_cost.budget import Budget

pytest.importorskip("pydantic_ai", reason="the peers extra installs pydantic-ai-slim")

REFUSAL = "Budget 'zero' is exhausted: $0 of $0 spent. No model was called."


@pytest.fixture
def configured(tracer_provider, settings, fake):
    _setup.reset_for_tests()
    llm_cost.configure(tracer_provider=tracer_provider)
    yield _setup.runtime().guard
    from otel_llm_cost.instrumentation import uninstrument

    uninstrument()
    _setup.reset_for_tests()


def _langchain(fake):
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-4o", base_url=fake.openai_url, api_key="k")
    return lambda: model.invoke("Hi").content


def _pydantic_ai(fake):
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    agent = Agent(OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=fake.openai_url, api_key="k")))
    return lambda: agent.run_sync("Hi").output


def _openai_agents(fake):
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
    from openai import AsyncOpenAI

    set_tracing_disabled(True)
    agent = Agent(name="assistant", model=OpenAIChatCompletionsModel(
        model="gpt-4o", openai_client=AsyncOpenAI(base_url=fake.openai_url, api_key="k")))
    return lambda: Runner.run_sync(agent, "Hi").final_output


FRAMEWORKS = {"langchain": _langchain, "pydantic-ai": _pydantic_ai, "openai-agents": _openai_agents}


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_a_framework_surfaces_the_refusal_after_one_attempt(configured, fake, framework):
    """The refusal is also `openai.APIError`, so pydantic-ai maps it, as it maps every `APIError`, to its
    own `ModelAPIError`, raised from ours; the others let ours through. Either way: once, never retried."""
    run = FRAMEWORKS[framework](fake)
    configured.set(Budget.create(0, name="zero"))
    with pytest.raises(Exception) as raised:
        run()
    refusal = raised.value if framework != "pydantic-ai" else raised.value.__cause__
    if framework == "pydantic-ai":
        from pydantic_ai.exceptions import ModelAPIError

        assert isinstance(raised.value, ModelAPIError)
    assert isinstance(refusal, llm_cost.BudgetExceededError)
    assert refusal.budget == "zero" and configured.blocked["zero"] == 1  # refused once, not retried
    assert fake.request_count("") == 0


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_under_respond_a_framework_carries_on_with_the_refusal_as_the_answer(configured, fake, framework):
    run = FRAMEWORKS[framework](fake)
    configured.set(Budget.create(0, name="zero", on_exceed="respond"))
    assert run() == REFUSAL and fake.request_count("") == 0


def test_langchain_with_retry_retries_every_exception_unless_told_which(configured, fake):
    import openai
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="gpt-4o", base_url=fake.openai_url, api_key="k")
    configured.set(Budget.create(0, name="zero"))
    with pytest.raises(llm_cost.BudgetExceededError):
        model.with_retry(stop_after_attempt=3).invoke("Hi")
    assert configured.blocked["zero"] == 3 and fake.request_count("") == 0  # each retry refused before sending
    with pytest.raises(llm_cost.BudgetExceededError):
        model.with_retry(stop_after_attempt=3, retry_if_exception_type=(openai.RateLimitError,)).invoke("Hi")
    assert configured.blocked["zero"] == 4
