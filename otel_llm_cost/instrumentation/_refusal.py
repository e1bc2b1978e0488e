"""What the app gets when a budget refuses its call, instead of a crash.

The policy is decided in `budget/`; this module delivers it for every SDK alike:

- `raise`: the `BudgetExceededError` is also an instance of the SDK's own base error class
  (`openai.OpenAIError`, `anthropic.AnthropicError`...), so the app's existing `except` catches it. The
  class is made once per SDK; it never derives from a class that SDKs or apps retry (rate limits,
  timeouts, 5xx).
- `respond`: the request is never sent, and the app gets an ordinary answer from the "model". Each SDK
  file says what that answer is, as its API would send it (`Wire`: a body in the provider's wire
  format) or as the SDK returns it (`Direct`). A `Wire` answer is served by the transport the SDK sends
  through (`_attempts`), in place of the network: the SDK then parses it into its own types itself, so
  plain calls, streams, `with_raw_response`, `.stream()` helpers and `parse()` all get exactly the
  objects they get from the provider, with zero usage and an id starting `llm_cost-refused-`.
"""

from __future__ import annotations

import base64
import functools
import importlib
import json
import struct
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from otel_llm_cost import _state
from otel_llm_cost._money import usd
from otel_llm_cost.budget import BudgetExceededError

__all__ = ["Wire", "Direct", "Resend", "Answer", "refusal_text", "refusal_id", "json_body", "sse", "ndjson", "aws_event_stream",
           "sdk_error", "ErrorBase", "generated_client_error"]


@dataclass(frozen=True, slots=True)
class Wire:
    """The provider's answer as it comes over HTTP: served by the SDK's transport instead of the network."""

    body: bytes
    content_type: str = "application/json"
    status: int = 200


@dataclass(frozen=True, slots=True)
class Direct:
    """The answer as the SDK returns it, for SDKs whose answer is not parsed from a body we can serve."""

    value: Any


@dataclass(frozen=True, slots=True)
class Resend:
    """Call the SDK with these arguments changed, which makes it answer without sending (LiteLLM's
    `mock_response`): for answers only the SDK itself can build, such as its stream wrapper."""

    changes: dict[str, Any]


Answer = Wire | Direct | Resend
AnswerBuilder = Callable[[Any, str], "Answer | None"]
"""An SDK file's refused answer: given the `Request` and the refusal text; None when the operation has
no message to answer with (it is then refused as `raise`)."""


def refusal_text(refusal: BudgetExceededError) -> str:
    """OTEL_LLM_COST_REFUSAL_MESSAGE, filled in for this refusal."""
    return _state.settings().refusal_message.format(
        budget=refusal.budget, limit=usd(refusal.limit), spent=usd(refusal.spent), window=refusal.window)


def refusal_id() -> str:
    return f"llm_cost-refused-{uuid.uuid4().hex[:24]}"


def json_body(payload: Any) -> Wire:
    return Wire(json.dumps(payload, separators=(",", ":")).encode())


def sse(events: Iterable[tuple[str | None, Any]], done: bool = False) -> Wire:
    """A server-sent-events body: `event:` lines where the API names its events, `data: [DONE]` where the
    API ends its streams with it."""
    frames = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        frames.append(f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n")
    if done:
        frames.append("data: [DONE]\n\n")
    return Wire("".join(frames).encode(), "text/event-stream")


def ndjson(lines: Iterable[Any]) -> Wire:
    """A JSON-lines stream body (Ollama)."""
    return Wire("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode(),
                "application/x-ndjson")


def aws_event_stream(events: Iterable[tuple[str, Any]], *, wrap_in_bytes: bool = False) -> Wire:
    """An `application/vnd.amazon.eventstream` body (Bedrock's streams): one binary message per event,
    with its `:event-type` header and CRCs, as botocore decodes them. `wrap_in_bytes`: each payload is
    `{"bytes": base64(json)}`, as InvokeModelWithResponseStream sends a model's own events."""
    out = bytearray()
    for event_type, payload in events:
        data = json.dumps(payload, separators=(",", ":")).encode()
        if wrap_in_bytes:
            data = json.dumps({"bytes": base64.b64encode(data).decode()}).encode()
        headers = b"".join(_string_header(name, value) for name, value in (
            (":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")))
        prelude = struct.pack(">II", 16 + len(headers) + len(data), len(headers))
        message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + data
        out += message + struct.pack(">I", zlib.crc32(message))
    return Wire(bytes(out), "application/vnd.amazon.eventstream")


def _string_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", 7, len(raw_value)) + raw_value


@dataclass(frozen=True, slots=True)
class ErrorBase:
    """An SDK's error class for refusals as `module:Class` (alternatives for other SDK versions after `|`),
    so nothing is imported until a call is refused, and the attributes its handlers read
    (`status_code`, botocore's `response`).

    For the generated clients (openai, anthropic, groq...) it is `APIError`, the class apps' handlers
    name, never a subclass that SDKs and retry helpers retry (`APIStatusError`, `APIConnectionError`);
    `api_error` fills in what an `APIError` carries: its message, the request that was not sent, no body."""

    path: str
    fields: Callable[[BudgetExceededError], dict[str, Any]] | None = None
    api_error: bool = False


def generated_client_error(sdk: str) -> ErrorBase:
    """The refusal class of a generated (Stainless) client: `sdk.APIError`, else its base error."""
    return ErrorBase(f"{sdk}:APIError|{sdk}:{_BASE_ERRORS.get(sdk, 'OpenAIError')}", api_error=True)


_BASE_ERRORS = {"anthropic": "AnthropicError", "groq": "GroqError", "together": "TogetherError",
                "cerebras.cloud.sdk": "CerebrasError", "fireworks": "FireworksError"}


def sdk_error(refusal: BudgetExceededError, base: ErrorBase | None, request: Any = None) -> BudgetExceededError:
    """`refusal` as an instance of both its own class (`BudgetExceededError` or
    `BudgetStoreUnavailableError`) and the SDK's error class. `request`: ours, for the address of the
    request that was not sent."""
    if base is None or type(refusal) not in _REFUSALS:
        return refusal
    cls = _error_class(type(refusal), base.path)
    if cls is None:
        return refusal
    error = cls.__new__(cls)
    error.__dict__.update(refusal.__dict__)
    error.args = refusal.args
    if base.api_error:
        error.__dict__.update(message=str(refusal), body=None, code=None, param=None, type=None,
                              request=_unsent_request(cls, request))
    if base.fields is not None:
        error.__dict__.update(base.fields(refusal))
    return error


def _unsent_request(cls: type, request: Any) -> Any:
    """An HTTP request to the API's address, of the HTTP library the SDK's errors carry, never sent."""
    package = next(c for c in cls.__mro__ if c.__name__ == "APIError").__module__
    http = None
    for name in (package, f"{package}._exceptions"):  # generated clients re-export their errors at the top
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        http = getattr(module, "httpx2", None) or getattr(module, "httpx", None)
        if http is not None:
            break
    if http is None:
        return None
    host = getattr(request, "server_address", None) or "localhost"
    port = getattr(request, "server_port", None)
    scheme = "http" if host in ("localhost", "127.0.0.1", "::1") or port not in (None, 443) else "https"
    netloc = f"[{host}]" if ":" in host else host
    try:
        return http.Request("POST", f"{scheme}://{netloc}{'' if port in (None, 443, 80) else f':{port}'}/")
    except Exception:  # noqa: BLE001 - an address the library will not parse: the error still carries the rest
        return None


def _refusal_classes() -> tuple[type[BudgetExceededError], ...]:
    from otel_llm_cost.budget import BudgetStoreUnavailableError

    return BudgetExceededError, BudgetStoreUnavailableError


_REFUSALS = _refusal_classes()


@functools.lru_cache(maxsize=None)
def _error_class(ours: type[BudgetExceededError], path: str) -> type[BudgetExceededError] | None:
    for candidate in path.split("|"):
        module, _, name = candidate.partition(":")
        try:
            sdk_base = getattr(importlib.import_module(module), name)
            break
        except (ImportError, AttributeError):
            continue
    else:
        return None
    return type(ours.__name__, (ours, sdk_base), {
        "__module__": ours.__module__,
        "__qualname__": ours.__qualname__,
        "__doc__": f"{ours.__doc__}\n\nAlso a `{module}.{name}`, so the app's handler of that SDK's "
                   "errors catches it.",
        "__init__": ours.__init__,
        "__str__": BudgetExceededError.__str__,
    })
