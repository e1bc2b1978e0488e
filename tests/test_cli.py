"""The `otel-llm-cost` command: real subprocesses, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import sys

import pytest


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, from a directory of its own: its default files (the demo's ledger)
    land there, never in the user's checkout."""
    return subprocess.run(
        [sys.executable, "-m", "otel_llm_cost.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        cwd=tempfile.mkdtemp(prefix="otel-llm-cost-cli-"),
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
    # Claude Sonnet 4.5: $3 input, $6 above 200k prompt tokens (anthropic.com/pricing, 2026-11-25)
    assert row["input_per_mtok"] == {"base": "3", "tiers": [{"above_input_tokens": 200_000, "price": "6"}]}
    assert row["cache_write_1h_per_mtok"]["base"] == "6" and row["output_per_mtok"]["base"] == "15"


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
    assert "until Ctrl-C" not in result.stdout  # no /metrics server, nothing to keep serving
    out = result.stdout
    assert "runaway agent stopped at step" in out  # the session budget stopped it
    for model in ("claude-sonnet-4-5", "gpt-4o", "gpt-4.1", "acme-internal-llm"):
        assert model in out
    assert "unknown" in out  # the in-house model is never priced at 0
    assert "budget demo-per-session" in out and "budget demo-daily-soft" in out
    assert "polite agent answered at step" in out and "Budget 'demo-polite-agent' is exhausted" in out  # respond
    digest = re.findall(r"digest \(falls back when over budget\) (\S+)", out)  # fallback: gpt-4o, then the cheaper
    assert digest[0] == "gpt-4o" and digest[-1] == "gpt-4o-mini"


def test_demo_port_in_use_is_one_clear_line():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run("demo", "--port", str(busy.getsockname()[1]))
    assert result.returncode == 2
    assert result.stderr.startswith("otel-llm-cost: cannot serve /metrics") and "Traceback" not in result.stderr


def test_version():
    from otel_llm_cost import __version__

    result = run("--version")
    assert result.returncode == 0 and result.stdout == f"otel-llm-cost {__version__}\n"


def test_an_unknown_provider_is_an_error_not_an_empty_table():
    result = run("prices", "--provider", "nope")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("otel-llm-cost: no provider 'nope' in the price data")
    assert run("prices", "--provider", "groq").returncode in (0, 1)  # a provider we have prices for


def test_estimate_says_which_output_tokens_it_assumed():
    result = run("estimate", "--model", "gpt-4o-mini", stdin="Hello there")
    assert result.returncode == 0
    assert "1,024 output tokens" in result.stdout
    assert result.stderr == ("note: no --max-tokens, so 1,024 output tokens were assumed "
                             "(set --max-tokens, or OTEL_LLM_COST_DEFAULT_OUTPUT_TOKENS)\n")
    assert json.loads(run("estimate", "--model", "gpt-4o-mini", "--json", stdin="Hi").stdout)["output_tokens_assumed"]


@pytest.mark.parametrize("stdin", ["", "  \n"])
def test_an_empty_prompt_is_an_error(stdin):
    result = run("estimate", "--model", "gpt-4o-mini", stdin=stdin)
    assert result.returncode == 2 and result.stderr == "otel-llm-cost: the prompt on stdin is empty\n"


def test_output_into_a_closed_pipe_ends_quietly():
    """`prices --json | head -1` printed a BrokenPipe traceback in half the runs."""
    for _ in range(5):
        done = subprocess.run(f"{sys.executable} -m otel_llm_cost.cli prices --json | head -1", shell=True,
                              capture_output=True, text=True, timeout=60)
        assert done.stdout == "{\n" and done.stderr == ""


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "99999"], "argument --port: 99999 is not a port (0 to 65535; 0: no /metrics server)"),
    (["--interval", "-1"], "argument --interval: -1 must be zero or more seconds"),
    (["--duration", "soon"], "argument --duration: 'soon' is not a number of seconds"),
])
def test_bad_demo_options_are_one_line(args, message):
    result = run("demo", *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"otel-llm-cost demo: error: {message}"


def test_demo_without_the_sdks_names_the_extra_to_install():
    """After a plain `pip install otel-llm-cost`: no openai, no anthropic."""
    script = ("import importlib.util, sys\n"
              "real = importlib.util.find_spec\n"
              "importlib.util.find_spec = lambda name, *a: None if name in ('openai', 'anthropic') else real(name, *a)\n"
              "from otel_llm_cost.cli import main\n"
              "sys.exit(main(['demo', '--port', '0']))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("otel-llm-cost: the demo needs the openai and anthropic SDKs: "
                             "pip install 'otel-llm-cost[demo]'\n")


def test_demo_serves_metrics_until_ctrl_c_and_says_where_to_look():
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = subprocess.Popen([sys.executable, "-m", "otel_llm_cost.cli", "demo", "--port", str(port), "--quiet"],
                            cwd=tempfile.mkdtemp(prefix="otel-llm-cost-cli-"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        lines = []
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if "until Ctrl-C" in line:
                break
        time.sleep(0.5)  # still serving after the workload
        assert demo.poll() is None
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "llm_cost_calls_total" in body
        out = "".join(lines)
        assert f"curl -s http://127.0.0.1:{port}/metrics" in out
        assert "docker compose -f docker-compose.observability.yml up" in out
    finally:
        demo.send_signal(signal.SIGINT)
        rest, err = demo.communicate(timeout=30)
    assert demo.returncode == 0 and "stopped" in rest and "Traceback" not in err


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT"])
def test_fake_provider_serves_with_stdin_closed_until_ctrl_c_or_sigterm(stop):
    """`otel-llm-cost fake-provider &` (stdin closed, as `&`, nohup and `< /dev/null` leave it) keeps
    serving; a real SDK call goes through; Ctrl-C or SIGTERM ends it cleanly."""
    import signal
    import socket
    import time

    import openai

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "otel_llm_cost.cli", "fake-provider", "--port", str(port)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        assert f"base_url=http://127.0.0.1:{port}/v1" in server.stdout.readline()
        time.sleep(1.0)
        assert server.poll() is None  # still serving
        reply = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content == "Hello from the fake provider."
    finally:
        server.send_signal(getattr(signal, stop))
        _, err = server.communicate(timeout=20)
    assert server.returncode == 0 and "Traceback" not in err


def test_fake_provider_on_a_port_in_use_is_one_clear_line():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run("fake-provider", "--port", str(busy.getsockname()[1]))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "pick another with --port" in result.stderr


def test_did_you_mean_for_a_model_and_a_setting():
    result = run("prices", "gpt4o")
    assert result.returncode == 1 and "gpt4o (did you mean gpt-4o?)" in result.stderr
    from otel_llm_cost.config import ConfigError, Settings

    with pytest.raises(ConfigError, match=r"unknown setting 'budgt_usd'; did you mean 'budget_usd'\?$"):
        Settings().with_overrides(budgt_usd=3)


def test_two_demo_runs_keep_their_own_sessions_under_the_demos_service_name(tmp_path):
    """A rerun never adds to the first run's sessions (which would seem to pass their budgets), and the
    ledger names the demo's service, not `unknown_service:python`."""
    import time

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    for _ in range(2):
        assert run("demo", "--port", "0", "--ledger", url, "--quiet", env={"PYTHONWARNINGS": "ignore"}).returncode == 0
        time.sleep(1.1)  # the run mark has a resolution of one second
    sessions = json.loads(run("report", "--ledger", url, "--by", "session", "--format", "json").stdout)["groups"]
    runaway = [group for group in sessions if (group["key"] or "").startswith("runaway-agent-")]
    assert len(runaway) == 2 and all(group["cost_usd"] == runaway[0]["cost_usd"] for group in runaway)
    services = json.loads(run("report", "--ledger", url, "--by", "service", "--format", "json").stdout)["groups"]
    assert [group["key"] for group in services] == ["otel-llm-cost-demo"]


def test_fake_provider_serves_the_grpc_apis_when_asked():
    """`otel-llm-cost fake-provider --grpc` also serves xAI's gRPC API, and says where: a real xai-sdk
    call goes through it."""
    import re
    import signal

    pytest.importorskip("xai_sdk")
    from xai_sdk import Client
    from xai_sdk.chat import user

    server = subprocess.Popen([sys.executable, "-m", "otel_llm_cost.cli", "fake-provider", "--port", "0", "--grpc"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [server.stdout.readline() for _ in range(8)]
        address = next(re.search(r"api_host='([^']+)'", line).group(1) for line in lines if "api_host=" in line)
        chat = Client(api_key="k", api_host=address, use_insecure_channel=True).chat.create(model="grok-4")
        chat.append(user("Hi"))
        assert chat.sample().content == "Hello from the fake provider."
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
    assert server.returncode == 0 and "Traceback" not in err
