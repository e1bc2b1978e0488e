"""Fresh prices: fetched over HTTP with a short timeout, cached on disk, offline is not an error."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from decimal import Decimal

import pytest
from otel_llm_cost.pricing import PriceBook
from otel_llm_cost.pricing_fetch import CACHE_FILE_NAME, refresh_prices
from otel_llm_cost.usage import Usage


def _payload_with_gpt4o_input(price: str) -> bytes:
    """A minimal price document in the format genai-prices publishes (prices/new_data/v2/data.json)."""
    return json.dumps([{
        "id": "openai",
        "name": "OpenAI",
        "api_pattern": "https://api\\.openai\\.com",
        "models": [{"id": "gpt-4o", "match": {"equals": "gpt-4o"}, "prices": {"input_mtok": price, "output_mtok": 10}}],
    }]).encode()


@pytest.fixture
def price_server():
    state = {"body": _payload_with_gpt4o_input("7"), "hits": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            state["hits"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state["body"])))
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/data.json", state
    server.shutdown()


def test_fetched_prices_are_used_and_cached_on_disk(price_server, tmp_path):
    url, state = price_server
    book = PriceBook()
    assert refresh_prices(book, url=url, cache_dir=tmp_path)
    assert book.compute_cost("openai", "gpt-4o", Usage(input_tokens=1_000_000)).total == Decimal(7)
    assert book.compute_cost("openai", "gpt-4o", Usage(input_tokens=1)).source == "fetched"
    assert book.status().source == "fetched" and book.status().age_seconds < 60
    assert (tmp_path / CACHE_FILE_NAME).exists()

    second = PriceBook()
    assert refresh_prices(second, url=url, cache_dir=tmp_path)
    assert state["hits"] == 1  # served from the disk cache
    assert second.status().source == "fetched"


def test_offline_is_logged_once_and_bundled_prices_stay(tmp_path, caplog):
    book = PriceBook()
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert not refresh_prices(book, url="http://127.0.0.1:9/unreachable", cache_dir=tmp_path, timeout=0.5)
    assert sum("could not fetch fresh prices" in r.getMessage() for r in caplog.records) == 1
    assert book.status().source == "bundled"
    assert book.status().fetch_error is not None
    assert book.compute_cost("openai", "gpt-4o", Usage(input_tokens=1_000_000)).total == Decimal("2.5")


def test_garbage_payload_keeps_bundled_prices(price_server, tmp_path):
    url, state = price_server
    state["body"] = b'{"not": "a list"}'
    book = PriceBook()
    assert not refresh_prices(book, url=url, cache_dir=tmp_path)
    assert book.status().source == "bundled"
