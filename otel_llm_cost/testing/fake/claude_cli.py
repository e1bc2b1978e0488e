"""A stand-in for the Claude Code CLI that `claude-agent-sdk` runs (`ClaudeAgentOptions(cli_path=...)`):
it speaks the CLI's stream-json protocol on stdin/stdout (the `initialize` control request, then a
user message answered by `system/init`, one `assistant` message per turn, and the `result` with the
run's usage and `total_cost_usd`), and honours `--max-budget-usd` as the CLI does: it stops after the
turn that reaches the cap, with an `error_max_budget_usd` result.

What a run reports comes from the environment variable `FAKE_CLAUDE_CLI` (JSON: `turns`, `model`,
`input_tokens`, `output_tokens` and `cost` per turn); when `FAKE_CLAUDE_CLI_ARGS` names a file, the
command line is appended to it, one JSON list per run. Run as `python -m otel_llm_cost.testing.fake.claude_cli`.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

__all__ = ["main"]


def _write(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def _run(config: dict[str, Any], argv: list[str], session: str) -> None:
    model = _option(argv, "--model") or config.get("model", "claude-sonnet-4-5")
    cap = _option(argv, "--max-budget-usd")
    turns, per_input, per_output = int(config.get("turns", 1)), int(config.get("input_tokens", 100)), \
        int(config.get("output_tokens", 10))
    per_cost = float(config.get("cost", 0.0))
    _write({"type": "system", "subtype": "init", "session_id": session, "model": model, "tools": [],
            "mcp_servers": [], "claude_code_version": "2.1.200", "cwd": os.getcwd(), "uuid": str(uuid.uuid4())})
    done = 0
    spent = 0.0
    subtype = "success"
    while done < turns:
        done += 1
        spent += per_cost
        _write({"type": "assistant", "session_id": session, "parent_tool_use_id": None, "uuid": str(uuid.uuid4()),
                "message": {"id": f"msg_{uuid.uuid4().hex[:12]}", "type": "message", "role": "assistant",
                            "model": model, "content": [{"type": "text", "text": f"turn {done}"}],
                            "stop_reason": "end_turn", "stop_sequence": None,
                            "usage": {"input_tokens": per_input, "output_tokens": per_output}}})
        if cap is not None and spent >= float(cap) and done < turns:
            subtype = "error_max_budget_usd"
            break
    usage = {"input_tokens": per_input * done, "output_tokens": per_output * done,
             "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    _write({"type": "result", "subtype": subtype, "is_error": subtype != "success", "duration_ms": 10,
            "duration_api_ms": 8, "num_turns": done, "session_id": session, "result": f"done after {done} turns",
            "total_cost_usd": round(spent, 10), "usage": usage, "uuid": str(uuid.uuid4()),
            "modelUsage": {model: {"inputTokens": usage["input_tokens"], "outputTokens": usage["output_tokens"],
                                   "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0, "webSearchRequests": 0,
                                   "costUSD": round(spent, 10), "contextWindow": 200_000, "maxOutputTokens": 64_000}}})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    record = os.environ.get("FAKE_CLAUDE_CLI_ARGS")
    if record:
        with open(record, "a", encoding="utf-8") as out:
            out.write(json.dumps(argv) + "\n")
    config = json.loads(os.environ.get("FAKE_CLAUDE_CLI") or "{}")
    session = str(uuid.uuid4())
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if message.get("type") == "control_request":
            request = message.get("request") or {}
            answer: dict[str, Any] = {"commands": [], "output_style": "default", "models": []} \
                if request.get("subtype") == "initialize" else {}
            _write({"type": "control_response", "response": {"subtype": "success",
                                                             "request_id": message.get("request_id"),
                                                             "response": answer}})
        elif message.get("type") == "user":
            _run(config, argv, session)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
