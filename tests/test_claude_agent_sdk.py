"""claude-agent-sdk driven for real: `query()` runs a stand-in for the Claude Code CLI
(`otel_llm_cost.testing.fake.claude_cli`, through the SDK's own `cli_path`), which speaks the CLI's
stream-json protocol and bills each turn as configured, honouring `--max-budget-usd` as the CLI does.

Claude Sonnet 4.5 is $3 input / $15 output per 1M tokens (anthropic.com/pricing, read 2026-12-03): a turn
of 1,000 input and 100 output tokens costs $0.0045 at our price, which the fake CLI also reports."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cost_of, our_spans

import otel_llm_cost as llm_cost
from otel_llm_cost.budget import Budget

pytest.importorskip("claude_agent_sdk")
from claude_agent_sdk import ClaudeAgentOptions, ResultMessage, query  # noqa: E402

TURN = Decimal("0.0045")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch) -> Path:
    """An executable `claude` that runs the fake CLI with this interpreter; each run's arguments logged."""
    path = tmp_path / "claude"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m otel_llm_cost.testing.fake.claude_cli "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_CLAUDE_CLI_ARGS", str(tmp_path / "args.jsonl"))
    monkeypatch.setenv("FAKE_CLAUDE_CLI", json.dumps({"turns": 3, "input_tokens": 1_000, "output_tokens": 100,
                                                      "cost": float(TURN)}))
    return path


def _run(cli: Path, **options) -> list:
    async def main() -> list:
        return [m async for m in query(prompt="Fix the bug", options=ClaudeAgentOptions(cli_path=cli, **options))]

    return asyncio.run(main())


def _args(cli: Path) -> list[list[str]]:
    return [json.loads(line) for line in (cli.parent / "args.jsonl").read_text().splitlines()]


def test_a_query_is_one_span_carrying_the_clis_own_bill(instrumented, cli, span_exporter):
    messages = _run(cli, model="claude-sonnet-4-5")
    result = messages[-1]
    assert isinstance(result, ResultMessage) and result.num_turns == 3  # the app's messages are untouched
    span = our_spans(span_exporter)[0]
    assert len(our_spans(span_exporter)) == 1
    assert span.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert span.attributes["gen_ai.usage.input_tokens"] == 3_000
    assert span.attributes["gen_ai.usage.output_tokens"] == 300
    assert cost_of(span) == 3 * TURN and span.attributes["gen_ai.usage.cost.source"] == "provider"
    assert span.attributes["gen_ai.response.model"] == "claude-sonnet-4-5"


def test_the_remaining_budget_is_the_clis_spending_cap(instrumented, cli, guard, span_exporter):
    """The CLI checks its cap between turns, so a run ends with the turn that reaches it: the budget
    records what was really spent, and the next run is refused before the CLI starts."""
    guard.set(Budget.create("0.02", name="agent"))
    first = _run(cli)[-1]
    assert _cap(cli, 0) == "0.02" and first.subtype == "success"  # 3 turns, $0.0135
    second = _run(cli)[-1]
    assert Decimal(_cap(cli, 1)) == Decimal("0.0065")  # what the budget had left
    assert second.subtype == "error_max_budget_usd" and second.num_turns == 2
    status = guard.status("agent")
    assert status.spent == 5 * TURN and status.reserved == 0
    assert [cost_of(s) for s in our_spans(span_exporter)] == [3 * TURN, 2 * TURN]
    with pytest.raises(llm_cost.BudgetExceededError):
        _run(cli)
    assert len(_args(cli)) == 2


def _cap(cli: Path, run: int) -> str:
    args = _args(cli)[run]
    return args[args.index("--max-budget-usd") + 1]


def test_an_apps_lower_cap_is_kept_and_its_options_object_never_changes(instrumented, cli, guard):
    guard.set(Budget.create(10, name="roomy"))
    options = ClaudeAgentOptions(cli_path=cli, max_budget_usd=0.005)

    async def main() -> None:
        async for _ in query(prompt="Hi", options=options):
            pass

    asyncio.run(main())
    assert options.max_budget_usd == 0.005 and _cap(cli, 0) == "0.005"


def test_a_spent_budget_refuses_the_run_before_the_cli_starts(instrumented, cli, guard):
    guard.set(Budget.create(0, name="zero"))
    with pytest.raises(llm_cost.BudgetExceededError):
        _run(cli)
    assert not (cli.parent / "args.jsonl").exists()
