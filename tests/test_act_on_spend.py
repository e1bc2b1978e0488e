"""Spend people act on: the FOCUS export FinOps tools ingest, re-pricing past rows once a price is known,
and what the same usage would have cost on another model or tier. Each reads a ledger written by a real
app (OpenAI and Anthropic calls through the fake provider, two users, a model with no price), on SQLite
and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

from otel_llm_cost.ledger import open_backend
from otel_llm_cost.ledger.report import usage_report

ROOT = Path(__file__).resolve().parent.parent
FOCUS_VENV = ROOT / ".venv-focus"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}

_APP = r"""
import sys
import anthropic, openai
import otel_llm_cost as llm_cost

llm_cost.configure(ledger=sys.argv[1])
oai = openai.OpenAI(base_url=sys.argv[2], api_key="k", max_retries=0)
claude = anthropic.Anthropic(base_url=sys.argv[3], api_key="k", max_retries=0)
messages = [{"role": "user", "content": "Hi"}]
for user in ("alice", "bob"):
    with llm_cost.session(f"s-{user}", user_id=user, feature="chat"):
        oai.chat.completions.create(model="gpt-4o", messages=messages)
        oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
        claude.messages.create(model="claude-haiku-4-5", max_tokens=200, messages=messages)
        oai.chat.completions.create(model="acme-house-model", messages=messages)  # no price anywhere
llm_cost.usage_report()  # written before exit
"""


@pytest.fixture
def ledger(ledger_url, fake):
    fake.set_model("gpt-4o", input_tokens=1_200, output_tokens=300, cache_read_tokens=200)
    fake.set_model("gpt-4o-mini", input_tokens=900, output_tokens=100)
    fake.set_model("claude-haiku-4-5", input_tokens=2_000, output_tokens=150)
    fake.set_model("acme-house-model", input_tokens=5_000, output_tokens=500)
    done = subprocess.run([sys.executable, "-c", _APP, ledger_url, fake.openai_url, fake.anthropic_url], env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return ledger_url


def _cli(*args: str, env: dict[str, str] = ENV) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_focus_export_passes_the_finops_foundations_validator_and_adds_up_to_the_report(ledger, tmp_path):
    """FOCUS 1.0 as `focus-validator` 1.0.0 checks it. One rule is overridden: `SkuPriceId_Nullable` reads
    `ChargeType`, a FOCUS 1.0-preview column that 1.0 renamed, so it fails on every conformant 1.0 file."""
    out = tmp_path / "focus.csv"
    done = _cli("export", "--ledger", ledger, "--format", "focus", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "2 call(s) of unknown cost are not in the FOCUS export" in done.stderr
    charges = list(csv.DictReader(io.StringIO(out.read_text())))
    total = usage_report(by="model", ledger=ledger).total.cost
    assert sum(D(c["BilledCost"]) for c in charges) == total
    assert all(c["BilledCost"] == c["EffectiveCost"] == c["ListCost"] == c["ContractedCost"] for c in charges)
    assert {c["ResourceID"] for c in charges} == {"gpt-4o", "gpt-4o-mini", "claude-haiku-4-5"}
    assert {json.loads(c["Tags"])["user"] for c in charges} == {"alice", "bob"}
    assert {(c["ChargeCategory"], c["BillingCurrency"], c["ServiceCategory"]) for c in charges} == {
        ("Usage", "USD", "AI and Machine Learning")}

    assert (FOCUS_VENV / "bin" / "focus-validator").exists(), "scripts/setup.sh test installs .venv-focus"
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("overrides:\n  - SkuPriceId_Nullable\n")
    site = next((FOCUS_VENV / "lib").glob("python3*/site-packages"))
    checked = subprocess.run([str(FOCUS_VENV / "bin" / "focus-validator"), "--data-file", str(out),
                              "--validate-version", "1.0", "--override-file", str(overrides)],
                             cwd=site, capture_output=True, text=True, timeout=300)  # it reads files relative to cwd
    assert "Validation succeeded." in checked.stdout + checked.stderr, checked.stdout + checked.stderr


def _house_prices(tmp_path: Path) -> dict[str, str]:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."acme-house-model"]\ninput_per_mtok = 1.5\noutput_per_mtok = 4\n')
    return {"OTEL_LLM_COST_PRICING_FILE": str(prices)}


def test_reprice_gives_past_calls_of_unknown_cost_the_price_known_now(ledger, tmp_path):
    """A model priced after its calls: `--dry-run` changes nothing; then the total becomes exactly the old
    total plus its tokens at that price, no call is left unpriced, and each row says where its price came from."""
    before = usage_report(by="model", ledger=ledger)
    assert before.total.unpriced_calls == 2
    env = {**ENV, **_house_prices(tmp_path)}
    dry = _cli("ledger", "reprice", "--ledger", ledger, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("2 of 8 rows would change") and "dry run: nothing was written" in dry.stdout
    assert usage_report(by="model", ledger=ledger).total.cost == before.total.cost

    done = _cli("ledger", "reprice", "--ledger", ledger, env=env)
    assert done.returncode == 0, done.stderr
    added = 2 * (5_000 * D("1.5") + 500 * D(4)) / 10**6
    assert f"-> ${(before.total.cost + added).normalize():f}" in done.stdout and "budgets are not changed" in done.stdout
    after = usage_report(by="model", ledger=ledger)
    assert after.total.cost == before.total.cost + added and after.total.unpriced_calls == 0
    assert dict(after.groups)["acme-house-model"].cost == added  # the rollup, rebuilt, agrees
    house = [row for row in open_backend(ledger).rows(None, None) if row.request_model == "acme-house-model"]
    assert {(row.pricing_source, row.cost_source) for row in house} == {("custom", "repriced")}
    again = _cli("ledger", "reprice", "--ledger", ledger, env=env)
    assert again.stdout.startswith("0 of 8 rows changed")  # nothing left to price


def _genai_prices_cost(model: str, row) -> D:
    """A row's usage at `model`'s price, computed by genai-prices itself (not through our price book)."""
    import genai_prices

    usage = genai_prices.Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                               cache_read_tokens=row.cache_read_tokens or None)
    return D(str(genai_prices.calc_price(usage, model_ref=model, provider_id="openai").total_price))


def test_what_if_prices_the_same_usage_on_another_model_and_says_the_difference(ledger):
    from otel_llm_cost.ledger.rows import stored_cost

    done = _cli("report", "--ledger", ledger, "--by", "user", "--as-model", "gpt-4o-mini", "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    rows = [row for row in open_backend(ledger).rows(None, None) if row.outcome != "blocked"]
    for group in data["groups"]:
        mine = [row for row in rows if row.user_id == group["key"]]
        expected = sum((stored_cost(_genai_prices_cost("gpt-4o-mini", row)) for row in mine), D(0))
        assert D(group["what_if_cost_usd"]) == expected  # every call, the house model's too, at gpt-4o-mini
        assert group["what_if_difference_usd"] is None  # the actual cost is unknown: a call had no price
    assert D(data["total"]["what_if_cost_usd"]) == sum(D(g["what_if_cost_usd"]) for g in data["groups"])
    assert data["what_if"]["as"] == "gpt-4o-mini"

    by_model = json.loads(_cli("report", "--ledger", ledger, "--as-model", "gpt-4o-mini", "--format", "json").stdout)
    for group in by_model["groups"]:
        if group["unpriced_calls"] == 0:
            assert D(group["what_if_difference_usd"]) == D(group["what_if_cost_usd"]) - D(group["cost_usd"])


def test_what_if_at_the_batch_tier_halves_what_openai_and_anthropic_charge(ledger):
    data = json.loads(_cli("report", "--ledger", ledger, "--as-tier", "batch", "--format", "json").stdout)
    groups = {group["key"]: group for group in data["groups"]}
    for model in ("gpt-4o-mini", "claude-haiku-4-5"):  # no cache reads: exactly the Batch APIs' 50% off
        assert D(groups[model]["what_if_cost_usd"]) == D(groups[model]["cost_usd"]) / 2
    gpt_4o = groups["gpt-4o"]  # its cached input already costs the batch input rate: not halved again
    assert D(gpt_4o["cost_usd"]) / 2 < D(gpt_4o["what_if_cost_usd"]) < D(gpt_4o["cost_usd"])
    assert groups["acme-house-model"]["what_if_cost_usd"] is None  # no price, batch or not
    assert data["total"]["what_if_cost_usd"] is None
    table = _cli("report", "--ledger", ledger, "--as-tier", "batch").stdout
    assert "what-if USD" in table and "what-if: the same usage as batch tier" in table
