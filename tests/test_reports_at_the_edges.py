"""Reports and exports at the edges (ARCHITECTURE.md section 9, "Reports"): bad time ranges are one-line
errors, a missing ledger is never created, CSV follows RFC 4180 and is safe to open in a spreadsheet,
the table never lets a terminal act on an id, and `tag:<key>` works for any key on both backends."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from otel_llm_cost import cli
from otel_llm_cost.ledger import Row, open_backend, uuid7
from otel_llm_cost.ledger.report import ReportError, usage_report

D = Decimal
NOW = datetime.now(UTC) - timedelta(minutes=5)


def _row(**overrides) -> Row:
    values = dict(id=uuid7(), ts=NOW, trace_id=None, span_id=None, service_name="svc", provider="openai",
                  operation="chat", request_model="gpt-4o", response_model="gpt-4o", response_id="r",
                  session_id="s1", conversation_id=None, user_id="alice", tags={}, input_tokens=1_000,
                  output_tokens=100, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0,
                  cost_usd=D("0.0035"), cost_source="local", pricing_source="bundled", estimated=False, outcome="ok",
                  service_tier=None, batch=False, job=None, duration_s=0.1)
    values.update(overrides)
    return Row(**values)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'usage.db'}"


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("when", ["99999999999d", "10000000000000000000000w", "0001-01-01T00:00:00+01:00",
                                  "9999-12-31T23:59:59-01:00", "1" * 400 + "s"])
@pytest.mark.parametrize("command", ["report", "export"])
def test_a_time_out_of_range_is_one_line(capsys, sqlite_url, command, when):
    open_backend(sqlite_url).close()
    status, out, err = run(capsys, command, "--ledger", sqlite_url, "--since", when)
    assert status == 2 and out == ""
    assert err.startswith("otel-llm-cost: --since=") and err.count("\n") == 1 and len(err) < 200
    assert "outside the years 1 to 9999" in err or "reaches back before the year 1" in err


def test_since_after_until_is_refused(capsys, sqlite_url):
    open_backend(sqlite_url).close()
    status, _, err = run(capsys, "report", "--ledger", sqlite_url, "--since", "1h", "--until", "2h")
    assert status == 2 and "is after until=" in err and err.count("\n") == 1
    with pytest.raises(ReportError, match="^since=.* is after until="):
        usage_report(since="2026-11-20", until="2026-11-19", ledger=sqlite_url)


@pytest.mark.parametrize("command", ["report", "export"])
def test_reading_a_missing_ledger_is_an_error_and_creates_nothing(capsys, tmp_path, command):
    path = tmp_path / "typo.db"
    status, out, err = run(capsys, command, "--ledger", f"sqlite:///{path}")
    assert status == 2 and out == "" and not path.exists()
    assert err == f"otel-llm-cost: --ledger 'sqlite:///{path}' cannot be used: '{path}' does not exist (no call " \
                  "has been recorded there)\n"
    with pytest.raises(ReportError, match="does not exist"):
        usage_report(ledger=f"sqlite:///{path}")
    assert not path.exists()


HOSTILE = ["line\nbreak", "carriage\rreturn", "crlf\r\nend", 'quote"d', "comma,separated", "=HYPERLINK(\"http://x\")",
           "+1+1", "-2+3", "@SUM(A1)", "\ttab", "\rlead", "plain"]


def test_csv_export_is_rfc_4180_and_spreadsheet_safe(capsys, sqlite_url):
    backend = open_backend(sqlite_url)
    backend.write([_row(user_id=text, session_id=f"s{i}", tags={"note": text}) for i, text in enumerate(HOSTILE)])
    backend.close()
    status, out, _ = run(capsys, "export", "--ledger", sqlite_url, "--format", "csv")
    assert status == 0
    records = list(csv.reader(io.StringIO(out, newline="")))
    assert len(records) == 1 + len(HOSTILE) and all(len(r) == len(records[0]) for r in records)
    assert out.count("\r\n") >= len(records) and out.endswith("\r\n")
    users = [dict(zip(records[0], r))["user_id"] for r in records[1:]]
    expected = ["'" + t if t[0] in "=+-@\t\r" else t for t in HOSTILE]
    assert sorted(users) == sorted(expected)

    status, raw, _ = run(capsys, "export", "--ledger", sqlite_url, "--format", "csv", "--raw")
    raw_users = [dict(zip(records[0], r))["user_id"] for r in list(csv.reader(io.StringIO(raw, newline="")))[1:]]
    assert sorted(raw_users) == sorted(HOSTILE)


def test_csv_report_keys_survive_cr_and_lf(capsys, sqlite_url):
    backend = open_backend(sqlite_url)
    backend.write([_row(user_id=text) for text in HOSTILE])
    backend.close()
    status, out, _ = run(capsys, "report", "--ledger", sqlite_url, "--by", "user", "--format", "csv")
    records = list(csv.reader(io.StringIO(out, newline="")))
    assert status == 0 and len(records) == 1 + len(HOSTILE)
    assert {r[0] for r in records[1:]} == {"'" + t if t[0] in "=+-@\t\r" else t for t in HOSTILE}
    assert [r[1] for r in records[1:]] == ["1"] * len(HOSTILE)


def test_the_table_prints_control_characters_escaped(capsys, sqlite_url):
    backend = open_backend(sqlite_url)
    backend.write([_row(user_id="\x1b[31mred\x1b[0m"), _row(user_id="two\nlines"), _row(user_id="back\rwards"),
                   _row(user_id="\u202eevil")])
    backend.close()
    status, out, _ = run(capsys, "report", "--ledger", sqlite_url, "--by", "user")
    assert status == 0 and "\x1b" not in out and "\r" not in out and "\u202e" not in out
    lines = out.splitlines()
    assert len(lines) == 3 + 4 + 2  # title, header, rule; four users; rule, total
    assert {line.split()[0] for line in lines[3:7]} == {"\\x1b[31mred\\x1b[0m", "two\\x0alines", "back\\x0dwards",
                                                         "\\u202eevil"}


@pytest.mark.parametrize("key", ['k"q', "a.b", "$.x", "it's", "a[0]", "with space", "ключ"])
def test_any_tag_key_groups_on_every_backend(ledger_url, key):
    backend = open_backend(ledger_url)
    backend.write([_row(tags={key: "v1"}), _row(tags={key: "v1"}), _row(tags={key: "v2", "other": "x"}),
                   _row(tags={"other": "y"})])
    report = usage_report(by=f"tag:{key}", ledger=backend)
    backend.close()
    assert [(k, s.calls) for k, s in report.groups] == [("v1", 2), ("v2", 1), (None, 1)]


def test_report_and_export_from_a_shell(sqlite_url):
    """The same, as a user runs it: the installed module, pipes and exit codes."""
    backend = open_backend(sqlite_url)
    backend.write([_row(user_id="=cmd|' /C calc'!A0")])
    backend.close()
    done = subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", "report", "--ledger", sqlite_url, "--by", "user",
                           "--format", "json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["groups"][0]["key"] == "=cmd|' /C calc'!A0"
    done = subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", "export", "--ledger", sqlite_url, "--format",
                           "csv"], capture_output=True, timeout=60)
    assert done.returncode == 0 and b"'=cmd|' /C calc'!A0" in done.stdout and done.stdout.endswith(b"\r\n")


def _chromium(*args: str) -> subprocess.CompletedProcess:
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium missing: scripts/setup.sh installs Debian's chromium package"
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--hide-scrollbars", "--window-size=900,1300", *args], capture_output=True, timeout=120)


def test_the_html_report_renders_in_a_real_browser_with_its_chart_and_table(capsys, tmp_path, sqlite_url):
    """`report --format html --output FILE`: one self-contained page; Chromium renders it, and the DOM it
    builds has a bar for each day, the top groups and the table, and no script from the ledger's text."""
    backend = open_backend(sqlite_url)
    rows = [_row(ts=NOW - timedelta(days=day), user_id=user, cost_usd=D(cost) * (day + 1))
            for day in range(10) for user, cost in (("alice", "0.0035"), ("bob", "0.012"),
                                                     ("<script>document.title='x'</script>", "0.001"))]
    backend.write(rows)
    backend.close()
    page = tmp_path / "spend.html"
    status, _, err = run(capsys, "report", "--ledger", sqlite_url, "--by", "user", "--since", "30d", "--format",
                         "html", "--output", str(page))
    assert status == 0 and err == f"wrote {page}\n"
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org", "") and "<link" not in text and "<script" not in text

    dom = _chromium("--dump-dom", page.as_uri()).stdout.decode()
    assert dom.count('class="bar" data-day=') == 10  # one bar a day, in the DOM the browser built
    assert dom.count("<script") == 0 and "<title>LLM spend by user</title>" in dom
    assert '<span class="total" id="total">$0.9075</span>' in dom
    table = dom[dom.index('<table id="groups">'):dom.index("</table>")]
    assert table.count("<tr>") == 1 + 3 + 1  # header, three users, total
    assert "&lt;script&gt;document.title='x'&lt;/script&gt;" in table
    shot = tmp_path / "spend.png"
    _chromium(f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # a drawn page, not blank
