"""The `otel-llm-cost` command: look up prices, estimate a prompt's cost, run the demo.

Errors are one clear line on stderr and a non-zero exit, never a traceback. Output piped into a
command that stops reading (`| head -1`) ends quietly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from otel_llm_cost._cli_error import CliError
from otel_llm_cost._money import usd
from otel_llm_cost.config import DEFAULT_OUTPUT_TOKENS, ConfigError, Settings, prepare_price_book
from otel_llm_cost.estimate import estimate_cost
from otel_llm_cost.pricing import PriceBook, PricingError, Rates, normalize_provider

_POPULAR_MODELS: tuple[tuple[str, str], ...] = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-5"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-opus-4-1"),
    ("gcp.gemini", "gemini-2.5-pro"),
    ("gcp.gemini", "gemini-2.5-flash"),
    ("aws.bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0"),
    ("aws.bedrock", "amazon.nova-pro-v1:0"),
    ("mistral_ai", "mistral-small-2603"),
    ("cohere", "command-a-03-2025"),
)


def _price_value(price: Any) -> str | dict[str, Any] | None:
    """A flat price as a decimal string; a tiered one as its base and the steps above thresholds."""
    if price is None:
        return None
    if isinstance(price, Decimal):
        return usd(price)
    return {"base": usd(price.base),
            "tiers": [{"above_input_tokens": t.start, "price": usd(t.price)} for t in price.tiers]}


def _rates_row(provider: str | None, model: str, rates: Rates | None) -> dict[str, Any]:
    if rates is None:
        return {"provider": provider, "model": model, "source": "unknown"}
    row: dict[str, Any] = {"provider": provider, "model": model, "source": rates.source, "price_entry": rates.model}
    for name in ("input", "output", "cache_read", "cache_write", "cache_write_1h", "input_audio", "output_audio",
                 "input_image"):
        value = _price_value(getattr(rates, name))
        if value is not None:
            row[f"{name}_per_mtok"] = value
    for name in _UNIT_PRICES:
        if getattr(rates, name) is not None:
            row[name] = usd(getattr(rates, name))
    if rates.per_image:
        row["per_image"] = {kind: usd(price) for kind, price in rates.per_image}
    return row


_UNIT_PRICES = {"web_search_per_k": "per 1,000 web searches", "audio_per_hour": "per hour of audio",
                "input_per_mchar": "per 1M characters", "rerank_per_k_searches": "per 1,000 rerank searches"}


def _unit_prices_line(row: dict[str, Any]) -> str | None:
    """Prices in units other than tokens, for the table: "$0.36 per hour of audio"."""
    parts = [f"${row[name]} {unit}" for name, unit in _UNIT_PRICES.items() if name in row]
    if "per_image" in row:
        parts.append("per image " + ", ".join(f"{kind} ${price}" for kind, price in row["per_image"].items()))
    return "  + " + "; ".join(parts) if parts else None


def _cell(value: str | dict[str, Any] | None) -> str:
    """A table cell: the base price, starred when a higher rate applies above a prompt size."""
    if value is None:
        return "-"
    return f"{value['base']}*" if isinstance(value, dict) else value


def _cmd_prices(args: argparse.Namespace, book: PriceBook) -> int:
    if args.provider is not None and not book.knows_provider(args.provider):
        raise CliError(f"no provider {args.provider!r} in the price data; e.g. openai, anthropic, gcp.gemini, "
                       "aws.bedrock, mistral_ai, cohere, groq, deepseek")
    if args.models:
        wanted = [(args.provider, m) for m in args.models]
    else:
        wanted = [(p, m) for p, m in _POPULAR_MODELS if args.provider is None or normalize_provider(p) == normalize_provider(args.provider)]
    rows = [_rates_row(p, m, book.rates(p, m)) for p, m in wanted]
    status = book.status().to_dict()
    if args.json:
        print(json.dumps({"status": status, "prices": rows}, indent=2))
    else:
        age = status["age_seconds"]
        print(f"price source: {status['source']} (genai-prices {status['genai_prices_version']}"
              + (f", {age / 3600:.1f} h old" if age is not None else "") + ")")
        width = max([32, *(len(row["model"]) for row in rows)])
        print(f"{'model':{width}} {'source':8} {'input':>10} {'output':>10} {'cache read':>10} {'cache write':>11}"
              "  USD per 1M tokens")
        for row in rows:
            cells = [_cell(row.get(k)) for k in ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok",
                                                 "cache_write_per_mtok")]
            print(f"{row['model']:{width}} {row['source']:8} {cells[0]:>10} {cells[1]:>10} {cells[2]:>10} {cells[3]:>11}")
            if (units := _unit_prices_line(row)) is not None:
                print(units)
        if any(isinstance(v, dict) for row in rows for k, v in row.items() if k.endswith("_per_mtok")):
            print("* tiered: a higher rate applies above a prompt-size threshold (see --json)")
    unknown = [row["model"] for row in rows if row["source"] == "unknown"]
    if unknown:
        hints = [f"{model} (did you mean {close}?)" if (close := book.closest_model(model, args.provider)) else model
                 for model in unknown]
        print(f"otel-llm-cost: no price known for {', '.join(hints)}", file=sys.stderr)
        return 1
    return 0


def _batch_prompts(path: str) -> list[Any]:
    """One prompt per line: a JSON string, a messages list, or an object with `messages` or `prompt`."""
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read --batch {path!r}: {exc}") from None
    prompts = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise CliError(f"--batch {path!r} line {number} is not JSON") from None
        if isinstance(item, dict):
            item = item.get("messages", item.get("prompt"))
        if not isinstance(item, (str, list)) or not item:
            raise CliError(f"--batch {path!r} line {number}: expected a prompt string, a messages list, or an "
                           "object with 'messages' or 'prompt'")
        prompts.append(item)
    if not prompts:
        raise CliError(f"--batch {path!r} holds no prompts")
    return prompts


def _print_estimate(args: argparse.Namespace, estimate: Any, prompts: int | None = None) -> int:
    """One estimate (`prompts` None) or a batch's, as JSON or a line, and the output tokens assumed."""
    result: dict[str, Any] = {"model": args.model}
    if prompts is not None:
        result["prompts"] = prompts
    result.update({
        "input_tokens_upper_bound": estimate.input_tokens,
        "output_tokens": estimate.output_tokens,
        "output_tokens_assumed": args.max_tokens is None,
        "cost_usd": usd(estimate.cost.total) if estimate.cost else None,
        "price_source": estimate.cost.source if estimate.cost else "unknown",
    })
    count = "" if prompts is None else f"{prompts:,} prompts, "
    tokens = f"{estimate.input_tokens:,} input + {estimate.output_tokens:,} output tokens"
    if args.json:
        print(json.dumps(result, indent=2))
    elif estimate.cost is None:
        print(f"{args.model}: {count}~{tokens}; price unknown")
    else:
        print(f"{args.model}: {count}at most ${usd(estimate.cost.total)} ({tokens}, {estimate.cost.source} prices)")
    if args.max_tokens is None and not args.json:
        assumed = (f"{estimate.output_tokens:,} output tokens were" if prompts is None else
                   f"{estimate.output_tokens // prompts:,} output tokens a prompt were")
        print(f"note: no --max-tokens, so {assumed} assumed (set --max-tokens, or {DEFAULT_OUTPUT_TOKENS})",
              file=sys.stderr)
    return 0 if estimate.cost is not None else 1


def _cmd_estimate(args: argparse.Namespace, book: PriceBook) -> int:
    if args.max_tokens is not None and args.max_tokens <= 0:
        raise CliError(f"--max-tokens={args.max_tokens} must be greater than zero")
    if args.batch:
        from otel_llm_cost.jobs import estimate_batch

        prompts = _batch_prompts(args.batch)
        return _print_estimate(args, estimate_batch(
            args.model, prompts, args.max_tokens, provider=args.provider,
            default_output_tokens=args.settings.default_output_tokens, price_book=book), len(prompts))
    if args.file:
        try:
            prompt = Path(args.file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read --file {args.file!r}: {exc}") from None
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError("give the prompt on stdin or with --file")
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise CliError(f"the prompt {'in ' + repr(args.file) if args.file else 'on stdin'} is empty")
    return _print_estimate(args, estimate_cost(
        args.model, prompt, args.max_tokens, provider=args.provider,
        default_output_tokens=args.settings.default_output_tokens, price_book=book))


def _ledger_arguments(command: argparse.ArgumentParser, raw: bool = True) -> None:
    command.add_argument("--ledger", metavar="URL", help="sqlite:///path/usage.db or postgresql://... "
                         "(default: OTEL_LLM_COST_LEDGER)")
    command.add_argument("--since", metavar="WHEN", help="ISO date or time (UTC), or relative: 30m, 24h, 7d")
    command.add_argument("--until", metavar="WHEN", help="ISO date or time (UTC), or relative: 30m, 24h, 7d")
    if not raw:
        return
    command.add_argument("--raw", action="store_true", help="csv: do not prefix cells that a spreadsheet would "
                         "run as a formula (=, +, -, @, TAB, CR) with '")


def _ledger_url(args: argparse.Namespace) -> str:
    url = args.ledger or args.settings.ledger
    if not url:
        raise CliError("no ledger: give --ledger sqlite:///path/usage.db (or postgresql://...), "
                       "or set OTEL_LLM_COST_LEDGER")
    if "://" not in str(url):  # a plain path, as people type it: a SQLite file
        return "sqlite:///" + str(url)
    return str(url)


def _open_ledger(url: str, *, create: bool = False) -> Any:
    """Reading never creates a ledger: a file that is not there is an error, not an empty report."""
    from otel_llm_cost.ledger import LedgerOpenError, open_backend

    try:
        return open_backend(url, create=create)
    except LedgerOpenError as error:
        raise CliError(f"--ledger {_shown(url)!r} cannot be used: {error}") from None
    except ValueError as error:  # a URL that does not parse (postgresql://u@[::1:5432/db)
        raise CliError(f"--ledger {_shown(url)!r} is not a ledger URL: {error}") from None


def _shown(url: str) -> str:
    """The URL without its password, or, when it does not even parse, as given up to any '@'."""
    from otel_llm_cost.ledger import redacted

    try:
        return str(redacted(url))
    except ValueError:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://...@{rest.rpartition('@')[2]}" if "@" in rest else url


def _report_error(error: Exception) -> CliError:
    """A report argument error in the CLI's words: `since=...` becomes `--since=...`."""
    return CliError(f"--{error}" if str(error).split("=", 1)[0] in ("since", "until", "by", "format") else str(error))


@contextlib.contextmanager
def _reading_ledger(args: argparse.Namespace) -> Iterator[Any]:
    """The ledger `report` and `export` read, closed afterwards. A bad time range is reported before the
    ledger is opened; a report argument error is one line in the CLI's words."""
    from otel_llm_cost.ledger.report import ReportError, parse_range

    try:
        parse_range(args.since, args.until)
    except ReportError as error:
        raise _report_error(error) from None
    backend = _open_ledger(_ledger_url(args))
    try:
        yield backend
    except ReportError as error:
        raise _report_error(error) from None
    finally:
        backend.close()


def _cmd_report(args: argparse.Namespace, book: PriceBook) -> int:
    import dataclasses

    from otel_llm_cost.ledger.report import usage_report
    from otel_llm_cost.ledger.whatif import what_if

    with _reading_ledger(args) as backend:
        report = usage_report(args.since, args.until, by=args.by, ledger=backend)
        if args.as_model or args.as_tier:
            report = dataclasses.replace(report, what_if=what_if(
                backend.rows(report.since, report.until), report.by, book, as_model=args.as_model,
                as_tier=args.as_tier))
        if args.format == "html":
            from otel_llm_cost.ledger.html import render_html

            text = render_html(report, usage_report(args.since, args.until, by="day", ledger=backend))
        else:
            text = report.format(args.format, raw=args.raw)
    if args.output:
        try:
            Path(args.output).write_text(text if text.endswith("\n") else text + "\n", "utf-8")
        except OSError as error:
            raise CliError(f"cannot write --output {args.output!r}: {error.strerror or error}") from None
        print(f"wrote {args.output}", file=sys.stderr)
        return 0
    sys.stdout.write(text if args.format == "csv" else text + "\n")
    return 0


def _cmd_export(args: argparse.Namespace, book: PriceBook) -> int:
    from otel_llm_cost.ledger.focus import FOCUS_COLUMNS, FocusExport, focus_rows
    from otel_llm_cost.ledger.report import csv_line, export_rows, format_rows

    focus = FocusExport()
    with _reading_ledger(args) as backend, _output(args.output) as out:
        rows = export_rows(args.since, args.until, ledger=backend)
        if args.format == "focus":
            lines = (csv_line(values, args.raw) for values in [list(FOCUS_COLUMNS), *focus_rows(rows, focus)])
        else:
            lines = format_rows(rows, args.format, raw=args.raw)
        for line in lines:
            out.write(line)
    if focus.unknown_cost_calls:
        print(f"otel-llm-cost: {focus.unknown_cost_calls:,} call(s) of unknown cost are not in the FOCUS export "
              "(no price was known; `otel-llm-cost ledger reprice` prices them once one is)", file=sys.stderr)
    if args.output:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[Any]:
    """Standard output, or the file `--output` names (written whole or not at all)."""
    if path is None:
        yield sys.stdout
        return
    target = Path(path)
    temporary = target.with_name(f".{target.name}.partial")
    try:
        with open(temporary, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise CliError(f"cannot write --output {path!r}: {error.strerror or error}") from None


def _cmd_ledger_replay(args: argparse.Namespace, book: PriceBook) -> int:
    """Write the rows that processes spooled while the ledger was down."""
    from otel_llm_cost.ledger import Ledger, redacted

    url = _ledger_url(args)
    spool = args.spool or args.settings.ledger_spool
    if args.spool and not Path(args.spool).is_dir():
        raise CliError(f"--spool {args.spool!r} is not a directory")
    ledger = Ledger(_open_ledger(url, create=True), spool_dir=Path(spool) if spool else None, exit_timeout=0)
    try:
        waiting = ledger.spool.files()
        if not waiting:
            print(f"nothing to replay: no spool files for {redacted(url)} in {ledger.spool.directory}")
            return 0
        ledger.replay_now()
        left = ledger.spool.files()
    finally:
        ledger.shutdown(timeout=0)
    if left:
        raise CliError(f"{ledger.replayed:,} rows written; {len(left)} spool file(s) are left in "
                       f"{ledger.spool.directory}: the ledger is unreachable (see the log above)")
    done = len(waiting) - len(ledger.unreadable)
    print(f"{ledger.replayed:,} spooled rows written to {redacted(url)} from {done} file(s)"
          + (f"; {ledger.dropped:,} rows the database refused were dropped" if ledger.dropped else ""))
    if ledger.unreadable:
        raise CliError(f"{len(ledger.unreadable)} spool file(s) could not be read whole and are set aside "
                       "(their good rows were written): "
                       + "; ".join(f"{aside.path} ({aside.reason}; {aside.rows} rows read)" for aside in ledger.unreadable))
    return 0


def _cmd_ledger_reprice(args: argparse.Namespace, book: PriceBook) -> int:
    """Price again the rows of unknown cost (or all), and say what changed."""
    from otel_llm_cost.ledger.reprice import reprice
    from otel_llm_cost.ledger.report import ReportError, parse_range

    try:
        since, until = parse_range(args.since, args.until)
    except ReportError as error:
        raise _report_error(error) from None
    backend = _open_ledger(_ledger_url(args))
    try:
        found = reprice(backend, since, until, book, every=args.every, dry_run=args.dry_run)
    finally:
        backend.close()
    verb = "would change" if args.dry_run else "changed"
    print(f"{len(found.changes):,} of {found.looked_at:,} rows {verb}; total ${usd(found.before)} -> "
          f"${usd(found.after)}" + (f"; {found.still_unknown:,} rows still of unknown cost" if found.still_unknown else ""))
    if args.dry_run:
        print("dry run: nothing was written")
    else:
        print("budgets are not changed: the past is repriced, not enforced again")
    return 0


def _parser() -> argparse.ArgumentParser:
    from otel_llm_cost import __version__

    parser = argparse.ArgumentParser(prog="otel-llm-cost", description="Exact cost and budgets for LLM calls.")
    parser.add_argument("--version", action="version", version=f"otel-llm-cost {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    prices = commands.add_parser("prices", help="show resolved prices and their source")
    prices.add_argument("models", nargs="*", metavar="MODEL",
                        help="model ids as the API spells them (default: a list of popular ones)")
    prices.add_argument("--provider", help="provider, e.g. openai, anthropic, gcp.gemini, aws.bedrock "
                        "(default: found from the model)")
    prices.add_argument("--json", action="store_true", help="print JSON, with tiered prices in full")
    prices.set_defaults(handler=_cmd_prices)

    estimate = commands.add_parser("estimate", help="worst-case cost of a prompt (stdin or --file)")
    estimate.add_argument("--model", required=True, help="the model the prompt is for, e.g. gpt-4o")
    estimate.add_argument("--provider", help="provider, when the model id alone is ambiguous (default: found "
                          "from the model)")
    estimate.add_argument("--max-tokens", type=int, metavar="N", help="the request's max_tokens: the output "
                          f"tokens to assume (default: {DEFAULT_OUTPUT_TOKENS}, else 1024)")
    estimate.add_argument("--file", help="read the prompt from this file instead of stdin")
    estimate.add_argument("--batch", metavar="FILE.jsonl",
                          help="one prompt per line (a string, a messages list, or {\"messages\": ...}): the whole batch")
    estimate.add_argument("--json", action="store_true", help="print JSON")
    estimate.set_defaults(handler=_cmd_estimate)

    report = commands.add_parser("report", help="what was spent, from the usage ledger, grouped")
    _ledger_arguments(report)
    report.add_argument("--by", default="model", metavar="KEY",
                        help="model, provider, session, user, service, job, day or tag:<key> (default: model)")
    report.add_argument("--format", default="table", choices=("table", "json", "csv", "html"),
                        help="table for people, json or csv (RFC 4180) for programs, html for one self-contained "
                             "page with a chart (default: table)")
    report.add_argument("--output", metavar="FILE", help="write the report to FILE instead of stdout")
    report.add_argument("--as-model", metavar="MODEL", help="also say what the same usage would have cost on MODEL "
                        "(what-if, and the difference), e.g. gpt-4o-mini")
    report.add_argument("--as-tier", choices=("batch", "flex", "priority"),
                        help="also say what the same usage would have cost at this service tier (what-if)")
    report.set_defaults(handler=_cmd_report)

    export = commands.add_parser("export", help="the usage ledger's rows, one per call")
    _ledger_arguments(export)
    export.add_argument("--format", default="jsonl", choices=("jsonl", "csv", "focus"),
                        help="jsonl: one JSON object per row; csv: RFC 4180; focus: FinOps FOCUS 1.0 CSV, one "
                             "charge row per day, provider, model, service, user and tags (default: jsonl)")
    export.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")
    export.set_defaults(handler=_cmd_export)

    ledger = commands.add_parser("ledger", help="look after the usage ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True, metavar="{replay,reprice}")
    replay = ledger_commands.add_parser("replay", help="write the rows that processes spooled to files while the "
                                        "ledger was down at their exit")
    replay.add_argument("--ledger", metavar="URL", help="sqlite:///path/usage.db or postgresql://... "
                        "(default: OTEL_LLM_COST_LEDGER)")
    replay.add_argument("--spool", metavar="DIR", help="where the spool files are (default: "
                        "OTEL_LLM_COST_LEDGER_SPOOL, else beside a SQLite ledger or in the user cache directory)")
    replay.set_defaults(handler=_cmd_ledger_replay)
    reprice = ledger_commands.add_parser(
        "reprice", help="price again the rows whose cost was unknown (or every row) with the prices known now",
        description="Prices again, from their stored usage, the rows whose cost was unknown (with --all, every "
                    "row), with the prices known now: genai-prices' data and OTEL_LLM_COST_PRICING_FILE. Each row "
                    "gets its price's source; the rollup is rebuilt, so reports agree. Budgets are not changed: "
                    "the past is repriced, not enforced again.")
    _ledger_arguments(reprice, raw=False)
    reprice.add_argument("--all", action="store_true", dest="every", help="every row, not only those of unknown cost")
    reprice.add_argument("--dry-run", action="store_true", help="say what would change, and change nothing")
    reprice.set_defaults(handler=_cmd_ledger_reprice)

    fake = commands.add_parser("fake-provider", help="serve the built-in fake provider (every wire format) on "
                               "loopback, to try your own app offline", description="Serves until Ctrl-C or SIGTERM; "
                               "prints the base URL to give each SDK.")
    from otel_llm_cost.testing.fake import add_arguments

    add_arguments(fake)
    fake.set_defaults(handler=_cmd_fake_provider)

    _add_demo(commands)
    return parser


def _cmd_fake_provider(args: argparse.Namespace, book: PriceBook) -> int:
    from otel_llm_cost.testing.fake import serve

    return serve(args)


def _add_demo(commands: Any) -> None:
    try:
        from otel_llm_cost.demo import add_demo_command
    except ImportError:
        return
    add_demo_command(commands)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command that was given (`report --ledgr`), with its own usage line
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        args.settings = Settings.from_env()
        book = prepare_price_book(args.settings, PriceBook())
        status = int(args.handler(args, book))
        sys.stdout.flush()
        return status
    except (ConfigError, PricingError, CliError) as exc:
        print(f"otel-llm-cost: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`| head -1`): what it read is all it wanted; stop quietly, and keep
        # Python from failing again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost sub-command's parser of `args` (`ledger replay`'s, `report`'s), else `parser`."""
    for dest in ("command", "ledger_command"):
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, dest, None)
        if not actions or name not in actions[0].choices:
            break
        parser = actions[0].choices[name]
    return parser


if __name__ == "__main__":
    # run the imported module, not `__main__`, so its exception classes are the ones other modules raise
    from otel_llm_cost.cli import main as cli_main

    raise SystemExit(cli_main())
