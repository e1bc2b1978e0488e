"""Every bad setting stops start-up with one line that names the variable and the value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from otel_llm_cost.config import ConfigError, Settings


def test_defaults_match_the_contract():
    settings = Settings.from_env({})
    assert settings.enabled and settings.stream_usage and settings.compat_cost_attribute
    assert (settings.budget_window, settings.on_exceed, settings.budget_store) == ("total", "raise", "memory")
    assert settings.default_output_tokens == 1024
    assert settings.budget_usd is None and settings.metric_tags == ()


def test_values_are_parsed():
    settings = Settings.from_env({
        "OTEL_LLM_COST_BUDGET_USD": "5.25",
        "OTEL_LLM_COST_BUDGET_WINDOW": "Day",
        "OTEL_LLM_COST_ON_EXCEED": "warn",
        "OTEL_LLM_COST_BUDGET_STORE": "sqlite:///tmp/b.db",
        "OTEL_LLM_COST_METRIC_TAGS": "feature, team",
        "OTEL_LLM_COST_ENABLED": "false",
    })
    assert settings.budget_usd == Decimal("5.25")
    assert settings.budget_window == "day"
    assert settings.metric_tags == ("feature", "team")
    assert settings.enabled is False


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("OTEL_LLM_COST_BUDGET_USD", "abc", "not a number of US dollars"),
        ("OTEL_LLM_COST_BUDGET_USD", "-1", "non-negative"),
        ("OTEL_LLM_COST_BUDGET_USD", "NaN", "finite"),
        ("OTEL_LLM_COST_SESSION_BUDGET_USD", "Infinity", "finite"),
        ("OTEL_LLM_COST_BUDGET_WINDOW", "fortnight", "not a budget window"),
        ("OTEL_LLM_COST_ON_EXCEED", "explode", "not a policy"),
        ("OTEL_LLM_COST_BUDGET_STORE", "postgres://x", "not a budget store"),
        ("OTEL_LLM_COST_BUDGET_STORE", "redis://", "not a budget store"),
        ("OTEL_LLM_COST_BUDGET_STORE", "redis://host:port/0", "not a budget store"),
        ("OTEL_LLM_COST_DEFAULT_OUTPUT_TOKENS", "0", "greater than zero"),
        ("OTEL_LLM_COST_DEFAULT_OUTPUT_TOKENS", "many", "whole number"),
        ("OTEL_LLM_COST_ENABLED", "maybe", "not a boolean"),
        ("OTEL_LLM_COST_PRICING_FILE", "/no/such/file.toml", "cannot be read"),
        ("OTEL_LLM_COST_BUDGETS_FILE", "/no/such/budgets.toml", "cannot be read"),
        ("OTEL_LLM_COST_METRIC_TAGS", "feature,us er", "tag name"),
    ],
)
def test_bad_value_names_variable_and_value(variable, value, fragment):
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({variable: value})
    message = str(excinfo.value)
    assert message.startswith(f"{variable}={value!r}")
    assert fragment in message
    assert "\n" not in message


def test_code_overrides_win_and_are_validated():
    settings = Settings.from_env({"OTEL_LLM_COST_BUDGET_USD": "5"}).with_overrides(budget_usd=2)
    assert settings.budget_usd == Decimal(2)
    with pytest.raises(ConfigError, match=r"configure\(budget_window=\.\.\.\)='fortnight'"):
        settings.with_overrides(budget_window="fortnight")
    with pytest.raises(ConfigError, match="unknown setting 'budget'"):
        settings.with_overrides(budget=3)


@pytest.mark.parametrize("store, reason", [
    ("sqlite:////proc/x.db", "cannot open"),
    ("sqlite:///{tmp}", "is a directory"),
    ("sqlite:///{tmp}/missing/x.db", "does not exist"),
    ("sqlite:///{tmp}/text.db", "cannot open"),
])
def test_configure_raises_config_error_for_a_store_that_cannot_be_opened(tmp_path, store, reason):
    from otel_llm_cost import _setup, configure

    (tmp_path / "text.db").write_text("plain text, not a database " * 100)
    value = store.format(tmp=tmp_path)
    _setup.reset_for_tests()
    try:
        with pytest.raises(ConfigError) as raised:
            configure(budget_store=value, instrument=False)
    finally:
        _setup.reset_for_tests()
    message = str(raised.value)
    assert message.startswith(f"OTEL_LLM_COST_BUDGET_STORE={value!r} cannot be used: ") and reason in message
    assert "\n" not in message and not (tmp_path / "missing").exists()


def test_a_redis_store_without_the_redis_package_names_the_extra(monkeypatch):
    import sys

    from otel_llm_cost import _setup, configure

    monkeypatch.setitem(sys.modules, "redis", None)  # as on an install without the [redis] extra
    _setup.reset_for_tests()
    try:
        with pytest.raises(ConfigError, match=r"OTEL_LLM_COST_BUDGET_STORE='redis://localhost:6379/0' cannot be "
                                              r"used: the redis package is not installed: pip install "
                                              r"'otel-llm-cost\[redis\]'"):
            configure(budget_store="redis://localhost:6379/0", instrument=False)
    finally:
        _setup.reset_for_tests()


@pytest.mark.parametrize("value", ["maybe", "deny"])
def test_store_failure_policy_is_validated(value):
    with pytest.raises(ConfigError, match="OTEL_LLM_COST_BUDGET_STORE_FAILURE=.* is not a failure policy"):
        Settings.from_env({"OTEL_LLM_COST_BUDGET_STORE_FAILURE": value})
