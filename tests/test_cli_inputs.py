"""Whatever a user types gets one line and exit status 2, never a traceback; `fake-provider` always
stops on SIGTERM; settings that only make sense together fail at start-up."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_llm_cost.cli import main
from otel_llm_cost.config import ConfigError, Settings


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "otel_llm_cost.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=tempfile.mkdtemp(prefix="otel-llm-cost-cli-"),
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize(("args", "line"), [
    (["report", "--ledger", "postgresql://u@[::1:5432/db"], "otel-llm-cost: --ledger 'postgresql://...@[::1:5432/db'"),
    (["ledger", "replay", "--ledger", "usage.db", "--spool", "/nonexistent"],
     "otel-llm-cost: --spool '/nonexistent' is not a directory"),
    (["report", "--ledger", "missing.db"], "otel-llm-cost: --ledger 'sqlite:///missing.db' cannot be used: "
                                           "'missing.db' does not exist (no call has been recorded there)"),
    (["report", "--ledgr", "x"], "otel-llm-cost report: error: unrecognized arguments: --ledgr x"),
    (["ledger"], "otel-llm-cost ledger: error: the following arguments are required: {replay,reprice}"),
    (["fake-provider", "--port", "99999"], "otel-llm-cost: --port 99999 is not a port (0 to 65535)"),
    (["fake-provider", "--model", "gpt-4o"], "otel-llm-cost: --model 'gpt-4o' is not NAME=field=value,..."),
    (["fake-provider", "--model", "gpt-4o=output_tokens=many"],
     "otel-llm-cost: --model 'gpt-4o=output_tokens=many': output_tokens='many' is not a valid output_tokens"),
    (["fake-provider", "--model", "gpt-4o=colour=blue"], "otel-llm-cost: --model 'gpt-4o=colour=blue': unknown field"),
])
def test_a_bad_input_is_one_line_and_exit_2(args, line):
    done = _run(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(line)


def test_a_plain_path_is_a_sqlite_ledger(tmp_path):
    import sqlite3

    path = tmp_path / "usage.db"
    sqlite3.connect(path).close()
    done = _run("ledger", "replay", "--ledger", str(path))
    assert done.returncode == 0 and "nothing to replay" in done.stdout


def test_fallback_without_fallback_models_is_a_start_up_error():
    with pytest.raises(ConfigError, match="OTEL_LLM_COST_ON_EXCEED=fallback needs OTEL_LLM_COST_FALLBACK_MODELS"):
        Settings.from_env({"OTEL_LLM_COST_ON_EXCEED": "fallback"})
    assert Settings.from_env({"OTEL_LLM_COST_ON_EXCEED": "fallback",
                              "OTEL_LLM_COST_FALLBACK_MODELS": "gpt-4o=gpt-4o-mini"}).on_exceed == "fallback"


def test_fake_provider_always_stops_on_sigterm_under_load():
    """50 starts and SIGTERMs in a row while both cores are busy: each ends within 2 s."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        for _ in range(50):
            fake = subprocess.Popen([sys.executable, "-m", "otel_llm_cost.testing.fake", "--port", "0"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert fake.stdout is not None and fake.stdout.readline().startswith("http://127.0.0.1:")
            fake.send_signal(signal.SIGTERM)
            started = time.monotonic()
            fake.communicate(timeout=10)
            assert time.monotonic() - started < 2.0 and fake.returncode == 0
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


_WORDS = st.sampled_from(["report", "export", "ledger", "replay", "prices", "estimate", "--ledger", "--since",
                          "--until", "--by", "--format", "--spool", "--model", "--port", "--provider", "--max-tokens",
                          "--file", "--raw", "--json", "--output", "-h", "user", "json", "csv", "7d", "-1", "0",
                          "gpt-4o", "postgresql://[::1", "sqlite:///", "sqlite:///nowhere/x.db", "redis://x", "",
                          "\x00", "é", "99999999999999999999"])


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=6))
def test_no_cli_input_gets_a_traceback(argv):
    """Any argument list for the commands that read input (not the long-running servers): the CLI ends
    with a status, and anything it says on failure is a usage error or one `otel-llm-cost:` line. A
    traceback would escape `main` as an exception, and fail here with the arguments that caused it."""
    if any(word in argv for word in ("demo", "fake-provider", "-h", "--help")):
        return
    stderr, stdout = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp(prefix="otel-llm-cost-cli-"))
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            try:
                status = main(argv)
            except SystemExit as exit:
                status = exit.code
    finally:
        os.chdir(cwd)
    # 1: a well-formed question with a negative answer (`prices some-unknown-model`), said in one line
    assert status in (0, 1, 2, None), (argv, stderr.getvalue())
    if status in (1, 2):
        last = stderr.getvalue().strip().split("\n")[-1]  # a line as a terminal shows it: \x1e is no break
        assert last.startswith(("otel-llm-cost: ", "otel-llm-cost ")), (argv, last)
