"""Small readers for SDK request and response shapes, shared by the SDK modules."""

from __future__ import annotations

import contextlib
import io
import os
import wave
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, BinaryIO

from otel_llm_cost._shapes import field


def given(value: Any) -> Any:
    """None for an SDK's "not given" sentinels (`NOT_GIVEN`, `omit`), else the value."""
    if value is None or type(value).__name__ in ("NotGiven", "Omit"):
        return None
    return value


def given_str(value: Any) -> str | None:
    value = given(value)
    return value if isinstance(value, str) else None


def given_int(*values: Any) -> int | None:
    for value in values:
        value = given(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def count(obj: Any, name: str) -> int | None:
    """A count a response reports (`obj.name`): a non-negative int, else None (missing, null, a bool,
    a negative or fractional number)."""
    value = field(obj, name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def text(obj: Any, name: str) -> str | None:
    value = field(obj, name)
    return value if isinstance(value, str) else None


def choice_finish_reasons(response: Any) -> tuple[str, ...]:
    """The finish reasons of an OpenAI-style response's (or chunk's) `choices`."""
    choices = field(response, "choices")
    if type(choices) is not list:
        return ()
    return tuple(r for c in choices if type(r := field(c, "finish_reason")) is str)


def as_dict(obj: Any) -> dict[str, Any]:
    """A usage object as a plain dict without None values (SDK pydantic model or mapping)."""
    if isinstance(obj, Mapping):
        return {k: v for k, v in obj.items() if v is not None}
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            dumped = dump(exclude_none=True)
            return dumped if isinstance(dumped, dict) else {}
        except Exception:
            return {}
    return {}


def is_raw_response(result: Any, stream: bool, names: tuple[str, ...] = ("LegacyAPIResponse", "APIResponse")) -> bool:
    """A raw response of the Stainless-built SDKs (openai, anthropic) that `parse()` reads without I/O:
    a `with_raw_response` result (`LegacyAPIResponse`, or anthropic's `APIResponse` once its body is
    read), or any raw response of a stream (parsing only builds the lazy stream object). An unread
    `with_streaming_response` body is the app's to read: we leave it alone."""
    name = type(result).__name__
    if name not in names or not callable(getattr(result, "parse", None)):
        return False
    if name == "LegacyAPIResponse" or stream:
        return True
    http_response = getattr(result, "http_response", None)
    return getattr(http_response, "is_closed", False) is True


def is_async_raw_response(result: Any, stream: bool) -> bool:
    """`is_raw_response` for anthropic's async client, whose `parse()` is a coroutine (no I/O either)."""
    return is_raw_response(result, stream, names=("AsyncAPIResponse",))


def parsed_raw_response(raw: Any) -> Any:
    """The SDK object behind a raw response. Its body is already read and `parse()` caches what it
    returns, so the app's own `parse()` later gets this very object: reading it changes nothing."""
    return raw.parse()


def replace_parsed_raw_response(raw: Any, value: Any) -> None:
    """Make the app's `raw.parse()` return `value` (our stream proxy) instead of the SDK's stream."""
    raw._parsed_by_type[raw._cast_to] = value


def asking_stream_usage(kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The kwargs of a Chat Completions stream with `stream_options.include_usage` added, or None when
    the app already asks for usage. The caller then hides the extra usage chunk from the app."""
    options = given(kwargs.get("stream_options"))
    if isinstance(options, Mapping) and options.get("include_usage"):
        return None
    return {**kwargs, "stream_options": {**(options if isinstance(options, Mapping) else {}), "include_usage": True}}


_MILLISECOND = Decimal("0.001")


@contextlib.contextmanager
def upload_handle(upload: Any, *, app_files: bool = False) -> Iterator[BinaryIO | None]:
    """A binary handle on a file an SDK uploads: bytes, a `(name, content, ...)` tuple or a path; with
    `app_files`, also the app's own seekable file, put back where it was. None for anything else (a
    stream we could only consume). Opening a path may raise `OSError`."""
    if isinstance(upload, tuple) and len(upload) >= 2:
        upload = upload[1]
    if isinstance(upload, (bytes, bytearray)):
        yield io.BytesIO(upload)
    elif isinstance(upload, os.PathLike):
        with open(upload, "rb") as handle:
            yield handle
    elif app_files and callable(getattr(upload, "seekable", None)) and upload.seekable():
        position = upload.tell()
        try:
            yield upload
        finally:
            upload.seek(position)
    else:
        yield None


def wav_seconds(upload: Any) -> Decimal | None:
    """The length of an audio upload that is a WAV file (any `upload_handle`, the app's seekable file
    included), read from its header alone; None for any other format."""
    try:
        with upload_handle(upload, app_files=True) as handle:
            return _wav_length(handle) if handle is not None else None
    except Exception:  # on bytes that are not quite WAV, `wave` raises RuntimeError, struct.error, EOFError...
        return None


def _wav_length(handle: BinaryIO) -> Decimal | None:
    with wave.open(handle) as audio:
        rate = audio.getframerate()
        return (Decimal(audio.getnframes()) / rate).quantize(_MILLISECOND) if rate else None
