"""Fresh prices at start-up (``OTEL_LLM_COST_PRICES_UPDATE=true``): short timeout, cached on disk.

Being offline is normal for a production app behind an egress proxy: a failed fetch is logged once,
the disk cache (however old) or the bundled snapshot stays in use, and nothing raises.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from genai_prices import data_snapshot
from genai_prices.update_prices import DEFAULT_UPDATE_URL

from otel_llm_cost._log import warn_once
from otel_llm_cost.pricing import PriceBook

_logger = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS: Final = 3.0
CACHE_MAX_AGE_SECONDS: Final = 24 * 3600
CACHE_FILE_NAME: Final = "genai-prices.json"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "otel-llm-cost"


def _snapshot_from_payload(payload: object) -> data_snapshot.DataSnapshot:
    from genai_prices.types import _providers_from_raw  # the parser genai-prices uses for its own fetches

    if not isinstance(payload, list):
        raise ValueError("expected a JSON array of providers")
    return data_snapshot.DataSnapshot(_providers_from_raw(payload), from_auto_update=True)


def _download(url: str, timeout: float) -> bytes:
    if url.startswith("file://"):
        return Path(url.removeprefix("file://")).read_bytes()
    import httpx2  # genai-prices' own HTTP client

    response = httpx2.get(url, timeout=timeout, follow_redirects=True)
    response.raise_for_status()
    return response.content


def refresh_prices(
    book: PriceBook,
    *,
    url: str | None = None,
    cache_dir: Path | None = None,
    timeout: float = FETCH_TIMEOUT_SECONDS,
) -> bool:
    """Load fetched prices into `book`. Returns True when fetched or cached prices are in use."""
    cache_file = (cache_dir or default_cache_dir()) / CACHE_FILE_NAME
    cached_age = _age(cache_file)
    if cached_age is not None and cached_age < CACHE_MAX_AGE_SECONDS and _load_cache(book, cache_file):
        return True
    try:
        raw = _download(url or DEFAULT_UPDATE_URL, timeout)
        snapshot = _snapshot_from_payload(json.loads(raw))
    except Exception as exc:
        book.note_fetch_error(f"{type(exc).__name__}: {exc}")
        warn_once(
            _logger,
            "prices-fetch",
            "otel-llm-cost: could not fetch fresh prices (%s: %s); using %s prices",
            type(exc).__name__,
            exc,
            "cached" if cached_age is not None else "bundled",
        )
        return cached_age is not None and _load_cache(book, cache_file)
    book.use_fetched(snapshot, datetime.now(UTC))
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_bytes(raw)
        tmp.replace(cache_file)
    except OSError as exc:
        warn_once(_logger, "prices-cache-write", "otel-llm-cost: cannot cache prices at %s: %s", cache_file, exc)
    return True


def _age(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return None


def _load_cache(book: PriceBook, cache_file: Path) -> bool:
    try:
        snapshot = _snapshot_from_payload(json.loads(cache_file.read_bytes()))
        fetched_at = datetime.fromtimestamp(cache_file.stat().st_mtime, UTC)
    except Exception as exc:
        warn_once(_logger, "prices-cache-read", "otel-llm-cost: ignoring unreadable price cache %s: %s", cache_file, exc)
        return False
    book.use_fetched(snapshot, fetched_at)
    return True
