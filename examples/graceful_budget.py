"""When the budget runs out, the app keeps working: a refusal message as the model's answer, a cheaper
model, or the error the app already handles.

    python examples/graceful_budget.py                 # offline, against the fake provider
    OPENAI_BASE_URL=... OPENAI_API_KEY=... python examples/graceful_budget.py

Nothing here catches `BudgetExceededError` by name: the app is written against the OpenAI SDK alone.
"""

from __future__ import annotations

import os

import openai

import otel_llm_cost as llm_cost


def chat_until_the_session_budget_answers(client: openai.OpenAI) -> None:
    """`respond`: the refused turn gets an ordinary ChatCompletion holding the refusal message."""
    llm_cost.set_budget("0.03", scope="session", on_exceed="respond", name="chat-session")
    history = [{"role": "user", "content": "Help me plan the migration of this service: " + "details " * 600}]
    with llm_cost.session("chat-1", user_id="dana"):
        for turn in range(1, 20):
            reply = client.chat.completions.create(model="gpt-4o", max_tokens=400, messages=history)
            answer = reply.choices[0].message.content
            print(f"respond  turn {turn}: {answer[:60]!r}  {llm_cost.budget_remaining('chat-session', 'chat-1')}")
            if reply.id.startswith("llm_cost-refused-"):
                break
            history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "Go on."}]


def summarise_with_a_cheaper_model_when_needed(client: openai.OpenAI) -> None:
    """`fallback`: gpt-4o while it fits the user's budget, then gpt-4o-mini, then the SDK's own error."""
    llm_cost.set_budget("0.03", scope="user", on_exceed="fallback", name="per-user")
    with llm_cost.session(user_id="erin"):
        for document in range(1, 30):
            try:
                reply = client.chat.completions.create(model="gpt-4o", max_tokens=400, messages=[
                    {"role": "user", "content": f"Summarise document {document}: " + "text " * 1_000}])
            except openai.OpenAIError as error:  # the app's existing handler
                print(f"fallback document {document}: refused, handled as any OpenAI error ({error})")
                break
            print(f"fallback document {document}: answered by {reply.model}  "
                  f"{llm_cost.budget_remaining('per-user', 'erin')}")


def main() -> None:
    fake = None
    if not os.environ.get("OPENAI_BASE_URL"):
        from otel_llm_cost.testing.fake import FakeProvider

        fake = FakeProvider().start()
        fake.set_model("gpt-4o", output_tokens=400)  # the prompt is counted as sent
        fake.set_model("gpt-4o-mini", output_tokens=400)
        os.environ["OPENAI_BASE_URL"] = fake.openai_url
        os.environ.setdefault("OPENAI_API_KEY", "offline-demo")

    llm_cost.configure(fallback_models={"gpt-4o": "gpt-4o-mini"})
    llm_cost.on_budget_threshold(lambda status, at: print(f"           -> {status.name} reached {at:.0%}: {status}"),
                                 at=(0.5, 1.0))
    client = openai.OpenAI(max_retries=0)
    chat_until_the_session_budget_answers(client)
    summarise_with_a_cheaper_model_when_needed(client)
    if fake is not None:
        fake.stop()


if __name__ == "__main__":
    main()
