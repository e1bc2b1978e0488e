"""The HTTP plumbing every wire format shares: sending JSON, SSE, chunked and AWS event-stream bodies,
faults mid-body, and the token counts a request gets."""

from __future__ import annotations

import json
import re
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any
import socket
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from otel_llm_cost.testing.fake._model import Fault, ModelBehaviour, _CutStream, _error_body, _prompt_tokens, _State

__all__ = ["Wire"]


class Wire(BaseHTTPRequestHandler):
    """What every wire format's handler shares: the HTTP plumbing, faults, and the counts to report."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    state: _State

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # --- plumbing ---
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        with self.state.lock:
            self.state.requests[path] += 1
            found = self.state.downloads.get(path)
        if found is None:
            return self._send_json(404, {"error": {"message": f"no route for GET {path}", "type": "not_found"}})
        self._send_bytes(200, found[0], found[1])

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:  # a multipart upload: its simple form fields, and an uploaded WAV's length
            body = {name.decode(): value.decode(errors="replace") for name, value in
                    re.findall(rb'name="([^"]+)"\r\n\r\n([^\r]*)\r\n', raw)}
            body["audio_seconds"] = _wav_seconds(raw)
        with self.state.lock:
            self.state.requests[path] += 1
            if self.state.keep_bodies:
                self.state.bodies.append({"path": path, "body": body})
            fault = self._take_fault()
        delay = self.state.delay + (fault.delay if fault else 0.0)
        if delay:
            time.sleep(delay)
        if fault and fault.status:
            return self._send_json(fault.status, _error_body(fault.status))
        if fault and fault.body is not None:
            return self._send_json(200, fault.body)
        if fault and fault.malformed:
            return self._send_bytes(200, b'{"id": "broken", "choices": [', "application/json")
        if fault and fault.html:
            return self._send_bytes(200, b"<html><body><h1>Sign in to continue</h1></body></html>", "text/html")
        if self.state.reject_stream_options and "stream_options" in body:
            return self._invalid_request("Unrecognized request argument supplied: stream_options")
        if fault and fault.reset_mid_body:
            return self._reset_mid_body()
        try:
            self._route(path, body, fault)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (an app that stopped reading)
        except _CutStream:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _reset_mid_body(self) -> None:
        """Promise a JSON body, send half of it, then drop the connection (a reset mid-response)."""
        data = json.dumps({"id": "chatcmpl-reset", "object": "chat.completion", "choices": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _take_fault(self) -> Fault | None:
        if not self.state.faults:
            return None
        fault = self.state.faults[0]
        fault.times -= 1
        if fault.times <= 0:
            self.state.faults.pop(0)
        return fault

    def _behaviour(self, model: str) -> ModelBehaviour:
        return self.state.behaviours.get(model) or self.state.behaviours.get("*") or ModelBehaviour()

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self._send_request_ids()
        self.end_headers()
        self.wfile.write(data)

    def _send_request_ids(self) -> None:
        """Each provider's request-id header (OpenAI, Anthropic, AWS), as the real APIs send them."""
        request_id = f"req_{uuid.uuid4().hex[:12]}"
        for name in ("x-request-id", "request-id", "x-amzn-RequestId"):
            self.send_header(name, request_id)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _invalid_request(self, message: str, param: str | None = None, code: str | None = None) -> None:
        """OpenAI's 400 for a request it refuses: nothing is billed."""
        self._send_json(400, {"error": {"message": message, "type": "invalid_request_error", "param": param,
                                        "code": code}})

    def _send_sse(self, events: Iterator[tuple[str | None, Any]], fault: Fault | None) -> None:
        def frames() -> Iterator[bytes]:
            for event, data in events:
                text = "" if event is None else f"event: {event}\n"
                text += f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
                yield text.encode()

        self._send_chunked(frames(), fault, "text/event-stream")

    def _send_eventstream(self, events: Iterator[tuple[str, Any]], fault: Fault | None) -> None:
        """AWS's binary event stream (Bedrock `converse-stream`), one message per event."""
        self._send_chunked((_eventstream_message(kind, payload) for kind, payload in events), fault,
                           "application/vnd.amazon.eventstream")

    def _send_chunked(self, frames: Iterator[bytes], fault: Fault | None, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self._send_request_ids()
        self.end_headers()
        for index, frame in enumerate(frames):
            if fault and fault.cut_after_chunks is not None and index >= fault.cut_after_chunks:
                self.wfile.flush()
                raise _CutStream()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _counts(self, body: dict[str, Any]) -> tuple[ModelBehaviour, int, int]:
        model = str(body.get("model", ""))
        behaviour = self._behaviour(model)
        input_tokens = behaviour.input_tokens if behaviour.input_tokens is not None else _prompt_tokens(body)
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or body.get("max_output_tokens")
        output = behaviour.output_tokens
        if isinstance(limit, int) and limit > 0:
            output = min(output, limit)
        return behaviour, input_tokens, output


def _eventstream_message(event_type: str, payload: Any) -> bytes:
    """One message of AWS's event-stream encoding: prelude (lengths + CRC), string headers, JSON
    payload, message CRC. botocore's own decoder reads it on the client side."""
    headers = b""
    for name, value in ((":event-type", event_type), (":content-type", "application/json"),
                        (":message-type", "event")):
        name_bytes, value_bytes = name.encode(), value.encode()
        headers += bytes([len(name_bytes)]) + name_bytes + b"\x07" + struct.pack(">H", len(value_bytes)) + value_bytes
    data = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(data) + 4, len(headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + data
    return message + struct.pack(">I", zlib.crc32(message))


def _wav_seconds(raw: bytes) -> float | None:
    """The length of a WAV file inside a multipart upload, as the real API measures what it bills."""
    import io
    import wave

    start = raw.find(b"RIFF")
    if start < 0:
        return None
    try:
        with wave.open(io.BytesIO(raw[start:])) as audio:
            return audio.getnframes() / audio.getframerate()
    except Exception:  # wave raises RuntimeError, struct.error, EOFError... on arbitrary bytes
        return None
