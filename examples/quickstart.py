"""A plain OpenAI app: no otel-llm-cost code at all. Launch it with opentelemetry-instrument:

    OTEL_METRICS_EXPORTER=prometheus OTEL_TRACES_EXPORTER=console OTEL_LLM_COST_BUDGET_USD=5 \
        opentelemetry-instrument python examples/quickstart.py

Without OPENAI_BASE_URL it starts the project's offline fake provider, so it runs with no API key.
"""

from __future__ import annotations

import os
import time

import openai


def main() -> None:
    fake = None
    if not os.environ.get("OPENAI_BASE_URL"):
        from otel_llm_cost.testing.fake import FakeProvider

        fake = FakeProvider().start()
        fake.set_model("gpt-4o-mini", input_tokens=1_200, cache_read_tokens=1_024, output_tokens=150)
        os.environ["OPENAI_BASE_URL"] = fake.openai_url
        os.environ.setdefault("OPENAI_API_KEY", "offline-demo")
    client = openai.OpenAI(max_retries=0)
    calls = int(os.environ.get("QUICKSTART_CALLS", "3"))
    for question in ["What is OpenTelemetry?", "What is a span?", "What is a metric?"][:calls]:
        answer = client.chat.completions.create(
            model="gpt-4o-mini", max_tokens=200, messages=[{"role": "user", "content": question}])
        print(f"{question} -> {answer.choices[0].message.content}")
    print("quickstart done: each span printed above carries its cost in USD; with "
          "QUICKSTART_HOLD_SECONDS=30 the process stays up so http://localhost:9464/metrics shows "
          "gen_ai_client_operation_cost_USD and llm_cost_calls_total", flush=True)
    hold = float(os.environ.get("QUICKSTART_HOLD_SECONDS", "0"))
    if hold:  # keep /metrics up for a scrape
        time.sleep(hold)
    if fake is not None:
        fake.stop()


if __name__ == "__main__":
    main()
