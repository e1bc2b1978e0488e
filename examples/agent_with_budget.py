"""A runaway agent loop that a per-session budget stops before it spends more.

    python examples/agent_with_budget.py                      # offline, against the fake provider
    ANTHROPIC_BASE_URL=... ANTHROPIC_API_KEY=... python examples/agent_with_budget.py

The budget is checked before each request is sent: the refused turn never reaches the API.
"""

from __future__ import annotations

import os
import time

import anthropic

import otel_llm_cost as llm_cost


def main() -> None:
    fake = None
    if not os.environ.get("ANTHROPIC_BASE_URL"):
        from otel_llm_cost.testing.fake import FakeProvider

        fake = FakeProvider().start()
        fake.set_model("claude-haiku-4-5", output_tokens=900)
        os.environ["ANTHROPIC_BASE_URL"] = fake.anthropic_url
        os.environ.setdefault("ANTHROPIC_API_KEY", "offline-demo")

    llm_cost.configure()  # uses the global tracer provider, or makes one
    llm_cost.set_budget(os.environ.get("AGENT_BUDGET_USD", "0.02"), scope="session", name="agent-session")
    client = anthropic.Anthropic(max_retries=0)
    history = [{"role": "user", "content": "Find the root cause of the outage."}]
    with llm_cost.session("agent-run-1", user_id="oncall", feature="agent"):
        for step in range(1, 100):
            try:
                reply = client.messages.create(model="claude-haiku-4-5", max_tokens=1_000, messages=history)
            except llm_cost.BudgetExceededError as stop:
                print(f"stopped before step {step}: {stop}")
                break
            history += [{"role": "assistant", "content": reply.content[0].text},
                        {"role": "user", "content": "Keep digging. " * 200}]
            print(f"step {step}: ${llm_cost.last_usage().cost:.6f}")
    summary = llm_cost.session_usage("agent-run-1")
    status = llm_cost.budget_remaining("agent-session", "agent-run-1")
    print(summary.format("compact"))
    print(f"budget: limit ${status.limit}, spent ${status.spent}, remaining ${status.remaining}", flush=True)
    hold = float(os.environ.get("AGENT_HOLD_SECONDS", "0"))
    if hold:  # keep /metrics up for a scrape
        time.sleep(hold)
    if fake is not None:
        fake.stop()


if __name__ == "__main__":
    main()
