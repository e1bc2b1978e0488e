"""What a newcomer trips over: settings that silently do nothing, calls before the pipeline exists,
and money written as `1E-7`. Each is said once, in one line, naming the fix."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from pathlib import Path

import pytest

import otel_llm_cost as llm_cost
from otel_llm_cost import _setup, _state, config
from otel_llm_cost.budget import BudgetExceededError, BudgetStatus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_runtime(settings):
    _setup.reset_for_tests()
    yield
    _setup.reset_for_tests()


def test_a_misspelt_variable_is_named_with_the_closest_setting(caplog, monkeypatch):
    monkeypatch.setattr(config, "_warned_unknown", set())
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        config.Settings.from_env({"OTEL_LLM_COST_BUDGET": "5", "OTEL_LLM_COST_BUDGET_USD": "5"})
        config.Settings.from_env({"OTEL_LLM_COST_BUDGET": "5"})  # once, not at every read
    assert [r.getMessage() for r in caplog.records] == [
        "otel-llm-cost: OTEL_LLM_COST_BUDGET is not a setting and is ignored; did you mean OTEL_LLM_COST_BUDGET_USD?"]


def test_calls_before_configure_say_why_nothing_is_counted(fresh_runtime, caplog):
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        assert llm_cost.session_usage("s").calls == 0
        llm_cost.session_usage("s")
        assert llm_cost.budget_remaining() is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "otel-llm-cost: session_usage() before configure(): no call is counted until configure() attaches the "
        "span processor (or the app runs under opentelemetry-instrument)",
        "otel-llm-cost: budget_remaining() before configure(): no call is counted until configure() attaches the "
        "span processor (or the app runs under opentelemetry-instrument)"]


def test_a_budget_set_before_anything_is_instrumented_says_it_waits(fresh_runtime, caplog, monkeypatch):
    monkeypatch.setattr(_state, "instrumented_sdks", set())
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        llm_cost.set_budget(5, name="early")
    assert len(caplog.records) == 1 and "set_budget() before any LLM SDK is instrumented" in caplog.text
    assert llm_cost.budget_remaining("early").limit == 5  # kept, and applied once configure() runs


def test_a_budget_set_after_instrument_warns_nothing(fresh_runtime, instrumented, caplog):
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        llm_cost.set_budget(5, name="checked")
    assert caplog.records == []


def test_a_second_configure_names_what_it_ignored(fresh_runtime, tracer_provider, caplog):
    from opentelemetry.sdk.trace import TracerProvider

    first = llm_cost.configure(tracer_provider=tracer_provider, instrument=False, budget_usd=5)
    with caplog.at_level(logging.WARNING, logger="otel_llm_cost"):
        assert llm_cost.configure(tracer_provider=tracer_provider, instrument=False, budget_usd=5) is first
        assert caplog.records == []  # the same settings again: nothing to say
        assert llm_cost.configure(tracer_provider=TracerProvider(), instrument=False, budget_usd=9,
                                  budget_window="day") is first
    assert [r.getMessage() for r in caplog.records] == [
        "otel-llm-cost: configure() was already called; this call changes nothing and ignored tracer_provider, "
        "budget_usd=9 (active: 5), budget_window=day (active: total). Use set_budget() and set_pricing() to change "
        "budgets and prices at run time"]


def test_money_is_written_in_plain_digits():
    refusal = BudgetExceededError("tiny", Decimal("1E-3"), Decimal("9E-4"), Decimal("0.00012615"),
                                  held=Decimal("1E-5"))
    assert str(refusal) == ("budget 'tiny' would be exceeded: limit $0.001, spent $0.0009, "
                            "held by calls in flight $0.00001, this call up to $0.00012615")
    refusal = BudgetExceededError("tiny", Decimal("1E-7"), Decimal("0"), Decimal("0.00012615"))
    assert str(refusal) == "budget 'tiny' would be exceeded: limit $0.0000001, this call alone needs up to $0.00012615"
    status = BudgetStatus("daily", "global", "day", Decimal(5), Decimal("1.25"), Decimal("0.5"))
    assert repr(status) == ("BudgetStatus(name='daily', limit=$5, spent=$1.25, reserved=$0.5, remaining=$3.25, "
                            "utilization=35.0%)")


def test_the_readme_documents_every_variable_the_code_reads():
    """Fails when a new OTEL_LLM_COST_* variable is read but not in the README's configuration table."""
    read = set()
    for path in (ROOT / "otel_llm_cost").rglob("*.py"):
        read |= set(re.findall(r'"(OTEL_LLM_COST_[A-Z0-9_]+)"', path.read_text()))
    readme = (ROOT / "README.md").read_text()
    table = {m for m in re.findall(r"^\| `(OTEL_LLM_COST_[A-Z0-9_]+)` \|", readme, flags=re.M)}
    assert read - {"OTEL_LLM_COST_"} <= table, sorted(read - table)
    assert config.known_variables() <= table
    assert table <= config.known_variables() | read  # no row for a variable that does not exist


def test_docstrings_do_not_point_to_a_file_that_is_not_shipped():
    for path in (ROOT / "otel_llm_cost").rglob("*.py"):
        assert "ARCHITECTURE" not in path.read_text(), path


def test_the_license_that_pyproject_declares_is_there():
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
