"""A batch job: estimate it, run it in 8 threads with a job budget and a progress bar, print what it cost.

    python examples/batch_job.py

Without OPENAI_BASE_URL it starts the project's offline fake provider, so it runs with no API key.
"""

from __future__ import annotations

import os

import openai
from opentelemetry.sdk.trace import TracerProvider

import otel_llm_cost as llm_cost

DOCUMENTS = [f"Incident report {n}: the nightly export stalled for {n % 7 + 1} minutes." for n in range(40)]


def main() -> None:
    fake = None
    if not os.environ.get("OPENAI_BASE_URL"):
        from otel_llm_cost.testing.fake import FakeProvider

        fake = FakeProvider().start()
        fake.set_model("gpt-4o-mini", output_tokens=180)  # input: the prompt's own tokens
        os.environ["OPENAI_BASE_URL"] = fake.openai_url
        os.environ.setdefault("OPENAI_API_KEY", "offline-demo")
    llm_cost.configure(tracer_provider=TracerProvider())
    client = openai.OpenAI(max_retries=0)

    def summarise(document: str) -> str:
        reply = client.chat.completions.create(model="gpt-4o-mini", max_tokens=200, messages=[
            {"role": "user", "content": f"Summarise in one line: {document}"}])
        return reply.choices[0].message.content or ""

    prompts = [[{"role": "user", "content": f"Summarise in one line: {d}"}] for d in DOCUMENTS]
    estimate = llm_cost.estimate_batch("gpt-4o-mini", prompts, max_tokens=200)
    print(f"estimate for {len(prompts)} documents: at most ${estimate.cost.total:.6f}")

    budget = round(float(estimate.cost.total) * 0.6, 6)  # less than the worst case: the budget will stop it
    print(f"job budget: ${budget} (60% of the estimate)")
    with llm_cost.track("nightly-summaries", total=len(DOCUMENTS), progress=True, budget_usd=budget) as job:
        job.map(summarise, DOCUMENTS, workers=8)
    print(f"done: {job.succeeded} summarised, {job.failed} failed "
          f"({'refused by the job budget before being sent' if job.failed else 'all within budget'})")
    print(f"what the {job.calls} calls that were sent cost ({job.errors} of them failed at the provider):")
    print(job.summary().format("detailed"))
    if fake is not None:
        fake.stop()


if __name__ == "__main__":
    main()
