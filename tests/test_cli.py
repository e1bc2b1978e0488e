"""The `otel-llm-cost` command: real subprocesses, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "otel_llm_cost.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_prices_shows_source_and_rates():
    result = run("prices", "gpt-4o", "--provider", "openai")
    assert result.returncode == 0, result.stderr
    assert "price source: bundled" in result.stdout
    assert "gpt-4o" in result.stdout and "2.5" in result.stdout and "10" in result.stdout


def test_prices_json():
    result = run("prices", "claude-sonnet-4-5", "--provider", "anthropic", "--json")
    data = json.loads(result.stdout)
    row = data["prices"][0]
    assert row["source"] == "bundled"
    assert row["input_per_mtok"].startswith("3 ")  # tiered: 3, then 6 above 200k
    assert row["cache_write_1h_per_mtok"].startswith("6 ")


def test_unknown_model_exits_non_zero_with_one_line():
    result = run("prices", "no-such-model", "--provider", "openai")
    assert result.returncode == 1
    assert result.stderr.strip() == "otel-llm-cost: no price known for no-such-model"


def test_custom_pricing_file_is_the_source(tmp_path):
    prices = tmp_path / "p.toml"
    prices.write_text('[models."house-model"]\ninput_per_mtok = 1\noutput_per_mtok = 2\n')
    result = run("prices", "house-model", "--json", env={"OTEL_LLM_COST_PRICING_FILE": str(prices)})
    assert json.loads(result.stdout)["prices"][0]["source"] == "custom"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OTEL_LLM_COST_PRICING_FILE": "/nope.toml"}, "OTEL_LLM_COST_PRICING_FILE='/nope.toml' cannot be read"),
        ({"OTEL_LLM_COST_BUDGET_USD": "abc"}, "OTEL_LLM_COST_BUDGET_USD='abc' is not a number of US dollars"),
    ],
)
def test_bad_settings_are_one_line_without_traceback(env, expected):
    result = run("prices", env=env)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_malformed_pricing_file_names_file_entry_and_value(tmp_path):
    prices = tmp_path / "p.toml"
    prices.write_text('[models."m"]\ninput_per_mtok = -3\noutput_per_mtok = 2\n')
    result = run("prices", env={"OTEL_LLM_COST_PRICING_FILE": str(prices)})
    assert result.returncode == 2
    assert str(prices) in result.stderr and "model 'm'" in result.stderr and "input_per_mtok=-3" in result.stderr


def test_estimate_reads_stdin():
    result = run("estimate", "--model", "gpt-4o-mini", "--max-tokens", "100", "--json", stdin="Hello there")
    data = json.loads(result.stdout)
    assert data["output_tokens"] == 100 and data["price_source"] == "bundled"
    assert float(data["cost_usd"]) > 0


def test_estimate_reads_a_file_and_rejects_a_missing_one(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Summarise this.")
    assert run("estimate", "--model", "gpt-4o", "--file", str(prompt)).returncode == 0
    missing = run("estimate", "--model", "gpt-4o", "--file", str(tmp_path / "none.txt"))
    assert missing.returncode == 2 and "cannot read --file" in missing.stderr


def test_demo_runs_offline_and_prints_the_cost_table_and_budgets():
    result = run("demo", "--port", "0", env={"PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "runaway agent stopped at step" in out  # the session budget stopped it
    for model in ("claude-sonnet-4-5", "gpt-4o", "gpt-4.1", "acme-internal-llm"):
        assert model in out
    assert "unknown" in out  # the in-house model is never priced at 0
    assert "budget demo-per-session" in out and "budget demo-daily-soft" in out


def test_demo_port_in_use_is_one_clear_line():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run("demo", "--port", str(busy.getsockname()[1]))
    assert result.returncode == 2
    assert result.stderr.startswith("otel-llm-cost: cannot serve /metrics") and "Traceback" not in result.stderr
