"""Dashboards, alert rules and the compose stack, proven with a real Prometheus and promtool."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "dashboards"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

# ARCHITECTURE section 3: the Prometheus names and the labels they carry
METRICS = {
    "gen_ai_client_token_usage_bucket", "gen_ai_client_token_usage_sum", "gen_ai_client_token_usage_count",
    "gen_ai_client_operation_duration_seconds_bucket", "gen_ai_client_operation_duration_seconds_sum",
    "gen_ai_client_operation_duration_seconds_count", "gen_ai_client_operation_cost_USD_bucket",
    "gen_ai_client_operation_cost_USD_sum", "gen_ai_client_operation_cost_USD_count", "llm_cost_tokens_total",
    "llm_cost_calls_total", "llm_cost_budget_limit_USD", "llm_cost_budget_spent_USD",
    "llm_cost_budget_remaining_USD", "llm_cost_budget_utilization", "llm_cost_budget_blocked_total",
    "llm_cost_budget_exhausted_keys",
}
LABELS = {
    "gen_ai_provider_name", "gen_ai_operation_name", "gen_ai_request_model", "gen_ai_response_model",
    "gen_ai_token_type", "llm_cost_token_type", "llm_cost_outcome", "llm_cost_pricing_known",
    "llm_cost_budget_name", "llm_cost_budget_window", "error_type",
    "llm_cost_tag_job",  # the job tag, a label because the demo lists it in OTEL_LLM_COST_METRIC_TAGS
}


def _panels(path: Path) -> list[dict]:
    return json.loads(path.read_text())["panels"]


def _queries() -> list[tuple[str, str, str]]:
    return [(path.name, panel["title"], target["expr"])
            for path in sorted((DASHBOARDS / "grafana").glob("*.json"))
            for panel in _panels(path) for target in panel["targets"]]


def _variables() -> list[tuple[str, str]]:
    return [(path.name, v["query"]["query"]) for path in sorted((DASHBOARDS / "grafana").glob("*.json"))
            for v in json.loads(path.read_text())["templating"]["list"]]


def test_dashboards_use_only_contract_metric_names():
    assert len({name for name, _, _ in _queries()}) >= 2
    for dashboard, title, expr in _queries():
        names = set(re.findall(r"\b(?:gen_ai|llm_cost)_[A-Za-z0-9_]+", expr))
        unknown = names - METRICS - LABELS
        assert not unknown, f"{dashboard} / {title}: {unknown}"
    overview = {p["title"] for p in _panels(DASHBOARDS / "grafana" / "llm-cost-overview.json")}
    for needed in ("Spend rate", "Spend rate by model (USD/h)", "Spend rate by provider (USD/h)",
                   "Tokens by type (per second)", "Cache-hit ratio", "Cost per call (p50, p95)",
                   "Call outcomes (per second)", "Calls with unknown price", "Latency (p50, p95)"):
        assert needed in overview
    variables = {v["name"] for v in json.loads((DASHBOARDS / "grafana" / "llm-cost-overview.json").read_text())
                 ["templating"]["list"]}
    assert {"provider", "model", "job"} <= variables


def test_promtool_checks_rules_config_and_unit_tests():
    assert PROMTOOL, "promtool missing: scripts/setup.sh installs Debian's prometheus package"
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"],
                 ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run([PROMTOOL, *args], cwd=DASHBOARDS / "prometheus", capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_every_alert_has_summary_description_runbook_and_a_unit_test():
    rules = yaml.safe_load((DASHBOARDS / "prometheus" / "alerts.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    tested = {t["alertname"] for case in yaml.safe_load((DASHBOARDS / "prometheus" / "alerts_test.yml").read_text())
              ["tests"] for t in case["alert_rule_test"]}
    assert len(alerts) >= 6
    for alert in alerts:
        assert {"summary", "description", "runbook"} <= set(alert["annotations"]), alert["alert"]
        assert "$value" in alert["annotations"]["description"] or "$value" in alert["annotations"]["summary"]
        assert alert["alert"] in tested


def test_compose_file_pins_images_and_mounts_only_files_in_the_repo():
    compose = yaml.safe_load((ROOT / "docker-compose.observability.yml").read_text())
    services = compose["services"]
    assert set(services) == {"otel-collector", "prometheus", "alertmanager", "grafana", "tempo"}
    host_ports = []
    for name, service in services.items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: image {image!r} is not pinned"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name}: {source} is missing"
        for port in service.get("ports", []):
            host, container = str(port).split(":")
            assert host.isdigit() and container.isdigit()
            host_ports.append(int(host))
    assert len(host_ports) == len(set(host_ports))
    grafana_volumes = " ".join(services["grafana"]["volumes"])
    for dashboard in (DASHBOARDS / "grafana").glob("*.json"):
        assert dashboard.name in grafana_volumes
    collector = yaml.safe_load((DASHBOARDS / "otel-collector" / "config.yaml").read_text())
    assert collector["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlp/tempo"]
    assert "8889" in collector["exporters"]["prometheus"]["endpoint"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_ports(count: int) -> list[int]:
    """`count` different free ports: the kernel may hand the same one out again once it is released."""
    ports: list[int] = []
    while len(ports) < count:
        if (port := _free_port()) not in ports:
            ports.append(port)
    return ports


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _query(base: str, expr: str) -> dict:
    return _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")


def _substitute(expr: str) -> str:
    for variable, value in (("$__rate_interval", "1m"), ("$__range", "5m"), ("$__interval", "15s"),
                            ("$provider", ".*"), ("$model", ".*"), ("$job", ".*"), ("$budget", ".*")):
        expr = expr.replace(variable, value)
    return expr


class _Webhook:
    """A notification receiver on loopback: what Alertmanager POSTs, by path (the receiver's URL)."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.received: list[tuple[str, dict]] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _alertmanager_config(webhook: _Webhook) -> dict:
    """The shipped alertmanager.yml, its routes, matchers and inhibitions as they are; only the receivers'
    URLs point at the test's webhook (keeping their paths), and the waits are seconds, not minutes."""
    config = yaml.safe_load((DASHBOARDS / "alertmanager" / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook.url + urllib.parse.urlsplit(hook["url"]).path
    config["route"].update(group_wait="1s", group_interval="2s")
    return config


def test_real_prometheus_runs_every_panel_query_on_demo_data_and_fires_the_budget_alert(tmp_path):
    """From the app to a notification: the demo's metrics, the shipped dashboards' queries and alert rules
    in a real Prometheus, and the shipped routing in a real Alertmanager that delivers the page."""
    assert PROMETHEUS, "prometheus missing: scripts/setup.sh installs Debian's prometheus package"
    assert ALERTMANAGER, "alertmanager missing: scripts/setup.sh installs Debian's prometheus-alertmanager package"
    webhook = _Webhook()  # bound first: the ports picked next are free and none is the webhook's
    demo_port, prom_port, am_port, am_cluster = _free_ports(4)
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(_alertmanager_config(webhook)))
    alertmanager = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}", f"--storage.path={tmp_path / 'am'}",
         f"--web.listen-address=127.0.0.1:{am_port}", f"--cluster.listen-address=127.0.0.1:{am_cluster}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    demo = subprocess.Popen(
        [sys.executable, "-m", "otel_llm_cost.cli", "demo", "--port", str(demo_port), "--duration", "60",
         "--interval", "1", "--quiet"],
        env={**os.environ, "PYTHONWARNINGS": "ignore"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=tmp_path)
    config = yaml.safe_load((DASHBOARDS / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["scrape_configs"] = [{"job_name": "llm-app",
                                 "static_configs": [{"targets": [f"127.0.0.1:{demo_port}"]}]}]
    config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]}
    shutil.copy(DASHBOARDS / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{prom_port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # wait for enough scrapes for every rate() and deriv()
            try:
                samples = _query(base, "count_over_time(llm_cost_calls_total[1m])")["data"]["result"]
                if samples and min(float(s["value"][1]) for s in samples) >= 12:
                    break
            except OSError:
                pass
            time.sleep(1)
        failures = []
        for dashboard, title, expr in _queries():
            response = _query(base, _substitute(expr))
            if response["status"] != "success" or not response["data"]["result"]:
                failures.append(f"{dashboard} / {title}: {response.get('error') or 'no data'} <- {expr}")
        assert not failures, "\n".join(failures)
        for dashboard, query in _variables():
            metric, label = re.fullmatch(r"label_values\((.*), (\w+)\)", query).groups()
            values = _get(f"{base}/api/v1/label/{label}/values?"
                          f"{urllib.parse.urlencode({'match[]': _substitute(metric)})}")["data"]
            assert values, f"{dashboard}: variable {query} has no values"

        groups = {g["name"]: g for g in _get(f"{base}/api/v1/rules")["data"]["groups"]}
        assert {"llm-cost-recording", "llm-cost-alerts"} <= set(groups)
        assert all(r["health"] == "ok" for g in groups.values() for r in g["rules"])
        firing = {}
        for _ in range(30):
            firing = {(a["labels"]["alertname"], a["labels"].get("llm_cost_budget_name")): a
                      for a in _get(f"{base}/api/v1/alerts")["data"]["alerts"] if a["state"] == "firing"}
            if ("LLMBudgetExhausted", "demo-daily-soft") in firing:
                break
            time.sleep(1)
        exhausted = firing[("LLMBudgetExhausted", "demo-daily-soft")]
        assert exhausted["labels"]["severity"] == "critical"
        assert "demo-daily-soft" in exhausted["annotations"]["summary"]

        page = None
        for _ in range(60):  # Prometheus sends it on, Alertmanager routes it (severity=critical: on-call)
            page = next((alert for path, body in list(webhook.received) if path == "/page"
                         for alert in body["alerts"] if alert["labels"]["alertname"] == "LLMBudgetExhausted"
                         and alert["labels"].get("llm_cost_budget_name") == "demo-daily-soft"), None)
            if page is not None:
                break
            time.sleep(1)
        assert page is not None, [path for path, _ in webhook.received]
        assert page["status"] == "firing" and page["labels"]["severity"] == "critical"
        assert page["annotations"]["summary"] == exhausted["annotations"]["summary"]
        delivered = [body for path, body in webhook.received if path == "/page"]
        assert all(body["receiver"] == "llm-oncall" for body in delivered)
    finally:
        prometheus.terminate()
        demo.terminate()
        alertmanager.terminate()
        prometheus.wait(timeout=30)
        demo.wait(timeout=30)
        alertmanager.wait(timeout=30)
        webhook.close()
