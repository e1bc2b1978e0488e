"""The examples run as documented: each line of the README's examples table is run exactly as written,
offline, with the environment's bin directory on PATH (as after `source .venv/bin/activate`)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
BIN = str(Path(sys.executable).parent)


def _readme_launch_lines() -> dict[str, list[str]]:
    """`examples/<file>` -> the commands of its row in the README's examples table, in order."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"^\| `(examples/[a-z_]+\.py)`, [^|]+\| (.+) \|$", line)
        if match:
            rows[match.group(1)] = re.findall(r"`([^`]+)`", match.group(2))
    return rows


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _offline_env(**extra: str) -> dict[str, str]:
    """The shell a user has after activating the virtualenv: no provider URL or key, quiet warnings.
    The test environment also holds the peer instrumentations (for the coexistence tests); they are
    switched off here so the examples run as in `.venv`, where ours is the only one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OTEL_"))}
    return {**env, "PATH": f"{BIN}:{env.get('PATH', '')}", "PYTHONWARNINGS": "ignore",
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,google-genai,botocore", **extra}


def test_every_example_has_a_launch_line_in_the_readme():
    examples = {f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py") if p.name != "__init__.py"}
    assert set(_readme_launch_lines()) == examples


def test_quickstart_runs_as_the_readme_says_with_one_costed_span_per_call():
    command = _readme_launch_lines()["examples/quickstart.py"][0]
    done = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=_offline_env(OTEL_EXPORTER_PROMETHEUS_PORT=str(_free_port())))
    assert done.returncode == 0, done.stderr
    assert "quickstart done" in done.stdout and done.stderr == ""
    spans = [json.loads(block) for block in re.findall(r"^\{\n.*?^\}", done.stdout, flags=re.M | re.S)]
    assert len(spans) == 3  # one span per call, nothing else
    assert all(span["name"] == "chat gpt-4o-mini" and span["attributes"]["gen_ai.usage.cost.amount"] > 0
               for span in spans)


def test_agent_with_budget_runs_as_the_readme_says():
    command = _readme_launch_lines()["examples/agent_with_budget.py"][0]
    done = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=_offline_env())
    assert done.returncode == 0, done.stderr
    assert "stopped before step" in done.stdout and "remaining $" in done.stdout


def test_graceful_budget_runs_as_the_readme_says():
    command = _readme_launch_lines()["examples/graceful_budget.py"][0]
    done = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=_offline_env())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    responded = [line for line in lines if line.startswith("respond ")]
    assert "Budget 'chat-session' is exhausted" in responded[-1] and len(responded) >= 2
    models = re.findall(r"^fallback document \d+: answered by (\S+)", done.stdout, flags=re.M)
    assert models[0] == "gpt-4o" and models[-1] == "gpt-4o-mini" and "gpt-4o" not in models[models.index("gpt-4o-mini"):]
    assert "refused, handled as any OpenAI error" in lines[-1] or any("refused, handled" in line for line in lines)
    assert "-> per-user reached 50%" in done.stdout and "Traceback" not in done.stderr


def test_batch_job_runs_as_the_readme_says():
    command = _readme_launch_lines()["examples/batch_job.py"][0]
    done = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=_offline_env())
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "estimate for 40 documents: at most $" in out and "refused by the job budget before being sent" in out
    summarised = int(re.search(r"done: (\d+) summarised, (\d+) failed", out).group(1))
    assert 0 < summarised < 40 and f"calls           {summarised} (0 errors)" in out
    assert f"what the {summarised} calls that were sent cost (0 of them failed at the provider):" in out
    assert "nightly-summaries: 40/40" in done.stderr or "40/40" in done.stderr  # the forced progress bar


def test_fastapi_service_runs_as_the_readme_says_and_stops_alice_at_her_budget():
    serve, ask = _readme_launch_lines()["examples/fastapi_service.py"]
    port = str(_free_port())
    server = subprocess.Popen(serve.replace("8000", port), shell=True, cwd=ROOT, env=_offline_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = re.search(r"'(localhost:8000[^']+)'", ask).group(1).replace("8000", port)
        headers = dict(h.split(": ", 1) for h in re.findall(r"-H '([^']+)'", ask))
        statuses, first = [], None
        deadline = time.monotonic() + 60
        while len(statuses) < 12:
            try:
                with urllib.request.urlopen(urllib.request.Request(f"http://{url}", headers=headers), timeout=10) as r:
                    statuses.append(r.status)
                    first = first or json.loads(r.read())
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
            except urllib.error.URLError:
                assert time.monotonic() < deadline and server.poll() is None, "uvicorn did not start"
                time.sleep(0.2)
        # gpt-4o-mini: 400 in x $0.15/M + 150 out x $0.60/M = $0.00015 a call (openai.com/api/pricing, 2026-11-25)
        assert first is not None and first["cost_usd"] == "0.00015"
        assert statuses[0] == 200 and 429 in statuses  # alice's $0.001 budget stops her before sending
    finally:
        import signal

        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def test_agent_with_budget_stops_the_runaway_loop():
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "agent_with_budget.py")], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    assert "stopped before step" in result.stdout and "BudgetExceeded" not in result.stderr
    assert "remaining $" in result.stdout


def test_fastapi_service_attributes_calls_per_request(fake, monkeypatch, tracer_provider):
    import importlib

    from fastapi.testclient import TestClient

    from otel_llm_cost import _setup, _state
    from otel_llm_cost.instrumentation import uninstrument

    monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", "offline")
    monkeypatch.setenv("OTEL_LLM_COST_USER_BUDGET_USD", "0.0002")
    previous = _state._settings
    _state._settings = None
    _setup.reset_for_tests()
    from opentelemetry import trace

    monkeypatch.setattr(trace, "get_tracer_provider", lambda: tracer_provider)
    fake.set_model("gpt-4o-mini", output_tokens=100)
    sys.path.insert(0, str(ROOT))
    try:
        service = importlib.import_module("examples.fastapi_service")
        with TestClient(service.app) as client:  # one event loop for the app's async client
            _exercise(client)
    finally:
        sys.path.remove(str(ROOT))
        uninstrument()
        _setup.reset_for_tests()
        _state._settings = previous


def _exercise(client) -> None:  # noqa: ANN001
    first = client.get("/ask", params={"q": "hello"}, headers={"x-session-id": "s1", "x-user-id": "alice"})
    assert first.status_code == 200 and first.json()["cost_usd"] is not None
    statuses = [client.get("/ask", params={"q": "again"}, headers={"x-session-id": "s1", "x-user-id": "alice"})
                .status_code for _ in range(5)]
    assert 429 in statuses  # alice's budget stops her; the refused calls were never sent
    other = client.get("/ask", params={"q": "hi"}, headers={"x-session-id": "s2", "x-user-id": "bob"})
    assert other.status_code == 200
    usage = client.get("/usage/s1").json()
    assert usage["calls"] == 1 + statuses.count(200) and usage["session_id"] == "s1"


_BOTH_SDKS_APP = '''
import anthropic
import openai

openai.OpenAI().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
anthropic.Anthropic().messages.create(model="claude-haiku-4-5", max_tokens=50,
                                      messages=[{"role": "user", "content": "Hi"}])
'''


def test_the_readmes_offline_command_runs_an_app_of_both_sdks_with_a_cost_on_every_span(tmp_path):
    """The "Try your own app offline" block exactly as written (then `kill %1`), in a shell with no
    provider key or URL: an app that calls OpenAI and Anthropic prints one span per call, each priced."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Try your own app offline"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    assert "otel-llm-cost fake-provider &" in block and "python app.py" in block
    (tmp_path / "app.py").write_text(_BOTH_SDKS_APP)
    env = {k: v for k, v in _offline_env().items() if not k.startswith("ANTHROPIC_")}
    done = subprocess.run(["bash", "-c", block + "\nstatus=$?\nkill %1\nexit $status\n"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    spans = [json.loads(text) for text in re.findall(r"^\{\n.*?^\}$", done.stdout, re.S | re.M)]
    calls = [s for s in spans if s["attributes"].get("gen_ai.provider.name") in ("openai", "anthropic")
             and any(key.startswith("llm_cost.") for key in s["attributes"])]  # ours, not an SDK's own span
    assert sorted(s["attributes"]["gen_ai.provider.name"] for s in calls) == ["anthropic", "openai"]
    assert all(s["attributes"]["gen_ai.usage.cost.amount"] > 0 for s in calls)
    assert all(s["resource"]["attributes"]["service.name"] == "my-app" for s in calls)
    assert "Traceback" not in done.stderr and "Transient error" not in done.stderr
