"""Which attempts of an LLM call left the client, and what each was answered.

Whether a failed call was billed depends on facts only the transport knows: a request refused at
connect, or answered 4xx/5xx, bills nothing; a request that went out and was never answered (a read
timeout, a cancelled task, a connection reset mid-response) may have been fully processed, and is
charged. SDK retries are separate attempts, each billed on its own.

So the transports the SDKs send through are watched, once, lazily (a post-import hook, so nothing is
imported early): `Client.send` / `AsyncClient.send` of httpx and of its fork httpx2, which recent
openai, anthropic and mistralai releases send through (google-genai, cohere, groq, ollama use httpx),
and botocore's `Endpoint._send` (Bedrock; aiobotocore's `AioEndpoint._send`). Only while an LLM call is current
(`watch()`) does a send record an `Attempt`; any other request passes straight through. For httpx the
request's `trace` extension says exactly when request headers start going out, so a call cancelled
while still connecting costs nothing.
"""

from __future__ import annotations

import functools

import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

import wrapt

__all__ = ["Attempt", "watch", "unwatch", "install"]


class Attempt:
    """One request of a call, as sent by the SDK (a retry is a new attempt)."""

    __slots__ = ("sent", "status", "traced", "headers")

    def __init__(self) -> None:
        self.sent = False
        self.status: int | None = None
        self.headers: Any = None
        """The response's headers (a reference, read only when a gateway reports cost in one)."""
        self.traced = False
        """The transport reports when the request goes out: `sent` is then a fact, not a guess."""

    @property
    def billable(self) -> bool:
        """Sent and not refused: it may have been processed. An error status bills nothing."""
        return self.sent and (self.status is None or self.status < 400)


_current: ContextVar[list[Attempt] | None] = ContextVar("otel_llm_cost_attempts", default=None)
_canned: ContextVar[Any] = ContextVar("otel_llm_cost_canned_answer", default=None)
"""A refused call's answer (`_refusal.Wire`): while set, a send returns it and nothing leaves the process."""


def watch(attempts: list[Attempt]) -> Token[list[Attempt] | None]:
    """Record the sends made in this context (the SDK call of one LLM call) into `attempts`."""
    return _current.set(attempts)


def unwatch(token: Token[list[Attempt] | None]) -> None:
    _current.reset(token)


def serve(answer: Any) -> Token[Any]:
    """Answer the sends made in this context with `answer` (a `_refusal.Wire`) instead of sending them."""
    return _canned.set(answer)


def unserve(token: Token[Any]) -> None:
    _canned.reset(token)


# --- recording, shared by every transport ---


def _begin() -> Attempt | None:
    attempts = _current.get()
    if attempts is None:
        return None
    attempt = Attempt()
    attempts.append(attempt)
    return attempt


def _answered(attempt: Attempt, response: Any) -> None:
    attempt.sent = True
    status = getattr(response, "status_code", None)
    if type(status) is int:
        attempt.status = status
    attempt.headers = getattr(response, "headers", None)


def _failed(attempt: Attempt, error: BaseException, never_sent: Callable[[BaseException], bool]) -> None:
    """Without a trace (a custom transport), judge by the error: only a connect failure proves nothing left."""
    if not attempt.traced:
        attempt.sent = not never_sent(error)


Prepare = Callable[[Attempt, Any, tuple[Any, ...], bool], None]
Canned = Callable[[Any, Any], Any]
"""Builds the transport's response object from a `Wire` answer and the request being sent."""


def _is_lookup(request: Any) -> bool:
    """A GET or HEAD is never a generation, whatever the SDK sends it for inside a call (huggingface_hub
    looks up a model's providers on the Hub first): not an attempt to charge, nor one to answer."""
    return getattr(request, "method", None) in ("GET", "HEAD")


def _recording(never_sent: Callable[[BaseException], bool], prepare: Prepare, is_async: bool,
               canned: Canned) -> Callable[..., Any]:
    """A wrapt wrapper for one transport's send: an `Attempt` per send while a call is watched, and the
    canned answer of a refused call instead of the network."""

    def sync_send(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        request = args[0] if args else kwargs.get("request")
        if _is_lookup(request):
            return wrapped(*args, **kwargs)
        answer = _canned.get()
        if answer is not None:
            return canned(answer, request)
        attempt = _begin()
        if attempt is None:
            return wrapped(*args, **kwargs)
        prepare(attempt, instance, args, False)
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as error:
            _failed(attempt, error, never_sent)
            raise
        _answered(attempt, response)
        return response

    async def async_send(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
        request = args[0] if args else kwargs.get("request")
        if _is_lookup(request):
            return await wrapped(*args, **kwargs)
        answer = _canned.get()
        if answer is not None:
            return canned(answer, request)
        attempt = _begin()
        if attempt is None:
            return await wrapped(*args, **kwargs)
        prepare(attempt, instance, args, True)
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as error:
            _failed(attempt, error, never_sent)
            raise
        _answered(attempt, response)
        return response

    return async_send if is_async else sync_send


# --- httpx: the trace extension tells when the request went out ---


_HEADERS_SENT = frozenset({"http11.send_request_headers.started", "http2.send_request_headers.started"})
_HEADERS_RECEIVED = frozenset({"http11.receive_response_headers.complete", "http2.receive_response_headers.complete"})


def _note(attempt: Attempt, name: str, info: dict[str, Any]) -> None:
    """One of the ten or so trace events of a request: only two of them matter."""
    attempt.traced = True
    if name in _HEADERS_SENT:
        attempt.sent = True
    elif name in _HEADERS_RECEIVED:
        value = info.get("return_value")
        if isinstance(value, tuple) and value:
            status = value[1] if len(value) >= 4 else value[0]  # HTTP/1.1 (version, status, ...); HTTP/2 (status, ...)
            if type(status) is int:
                attempt.status = status


async def _anote(attempt: Attempt, name: str, info: dict[str, Any]) -> None:
    _note(attempt, name, info)


def _httpx_preparer(own_transports: tuple[type, ...]) -> Prepare:
    """Install a trace callback on each request. The library's own transports (httpcore) trace every
    request they send, so for them an attempt without a send event sent nothing; a custom transport
    may not trace at all, and its errors are judged instead."""

    def prepare(attempt: Attempt, client: Any, args: tuple[Any, ...], is_async: bool) -> None:
        request = args[0] if args else None
        extensions = getattr(request, "extensions", None)
        if not isinstance(extensions, dict):
            return
        try:
            attempt.traced = isinstance(client._transport_for_url(request.url), own_transports)
        except Exception:
            attempt.traced = False
        previous = extensions.get("trace")
        if previous is None:  # the common case: only ours
            extensions["trace"] = functools.partial(_anote if is_async else _note, attempt)
        elif is_async:
            async def atrace(name: str, info: dict[str, Any]) -> None:
                _note(attempt, name, info)
                await previous(name, info)

            extensions["trace"] = atrace
        else:
            def trace(name: str, info: dict[str, Any]) -> None:
                _note(attempt, name, info)
                previous(name, info)

            extensions["trace"] = trace

    return prepare


def _patch_httpx(module: Any) -> None:
    """httpx and httpx2 alike: the same API, each with its own exception classes."""
    refused = tuple(getattr(module, name) for name in (
        "ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol", "ProxyError") if hasattr(module, name))

    def never_sent(error: BaseException) -> bool:
        return isinstance(error, refused)

    def canned(answer: Any, request: Any) -> Any:
        return module.Response(answer.status, headers={"content-type": answer.content_type}, content=answer.body,
                               request=request)

    prepare = _httpx_preparer((module.HTTPTransport, module.AsyncHTTPTransport))
    wrapt.wrap_function_wrapper(module, "Client.send", _recording(never_sent, prepare, False, canned))
    wrapt.wrap_function_wrapper(module, "AsyncClient.send", _recording(never_sent, prepare, True, canned))


# --- botocore: one `_send` per attempt, retries included ---


def _botocore_never_sent(error: BaseException) -> bool:
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ProxyConnectionError

    return isinstance(error, (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError))


def _no_trace(attempt: Attempt, client: Any, args: tuple[Any, ...], is_async: bool) -> None:
    return None


class _Body:
    """The raw body botocore reads a response from (`stream()`), for a canned answer."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs: Any) -> Any:
        yield self._data

    def read(self, *args: Any) -> bytes:
        return self._data


def _botocore_canned(answer: Any, request: Any) -> Any:
    from botocore.awsrequest import AWSResponse

    return AWSResponse(getattr(request, "url", ""), answer.status, {"content-type": answer.content_type},
                       _Body(answer.body))


def _patch_botocore(module: Any) -> None:
    wrapt.wrap_function_wrapper(module, "Endpoint._send", _recording(_botocore_never_sent, _no_trace, False,
                                                                     _botocore_canned))


def _aiobotocore_canned(answer: Any, request: Any) -> Any:
    """Never reached: the async Bedrock endpoints answer a refusal by raising (see bedrock.py)."""
    raise RuntimeError("otel-llm-cost: a refused call is not answered through aiobotocore")


def _patch_aiobotocore(module: Any) -> None:
    """aiobotocore's endpoint sends through aiohttp and raises botocore's exceptions."""
    wrapt.wrap_function_wrapper(module, "AioEndpoint._send", _recording(_botocore_never_sent, _no_trace, True,
                                                                        _aiobotocore_canned))


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Watch the transports when (if ever) they are imported. Idempotent; never imports them itself."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
    wrapt.register_post_import_hook(_patch_httpx, "httpx")
    wrapt.register_post_import_hook(_patch_httpx, "httpx2")
    wrapt.register_post_import_hook(_patch_botocore, "botocore.endpoint")
    wrapt.register_post_import_hook(_patch_aiobotocore, "aiobotocore.endpoint")
