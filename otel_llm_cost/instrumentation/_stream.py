"""One stream proxy for every SDK, for sync and async iteration and for stream context managers.

The app keeps using the SDK's stream object (attributes pass through `wrapt.ObjectProxy`); the proxy
only watches the items go by and finishes the call's span exactly once: when the stream is
exhausted, raises, is closed, leaves its `with` block, or is garbage collected after an early
`break`. An item the accumulator asks to hide (the usage chunk we requested for an app that did not)
is skipped, so the app sees exactly the items it would have seen without us.
"""

from __future__ import annotations

import inspect
import logging
import sys
from typing import Any, Protocol

import wrapt

from otel_llm_cost._log import exception_once
from otel_llm_cost.instrumentation._outcome import Outcome, StreamAccumulator


class Call(Protocol):
    """The call a stream belongs to, as the proxy needs it: ended once, with what the stream showed."""

    def finish(self, outcome: Outcome) -> None: ...

    def fail(self, error: BaseException, outcome: Outcome | None = None) -> None: ...

_logger = logging.getLogger(__name__)


class _StreamState:
    """What the proxy knows about its stream, in a plain object: every attribute read on a wrapt proxy
    costs several times a plain one, and the per-item path reads several (about 1 µs an item)."""

    __slots__ = ("call", "accumulator", "iterator", "done")

    def __init__(self, call: Call, accumulator: StreamAccumulator) -> None:
        self.call = call
        self.accumulator = accumulator
        self.iterator: Any = None
        self.done = False

    def keep(self, item: Any) -> bool:
        try:
            return self.accumulator.observe(item)
        except Exception:
            exception_once(_logger, "stream-observe", "otel-llm-cost: could not read a stream item")
            return True

    def next_item(self) -> Any:
        iterator = self.iterator
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                self.finish()
                raise
            except BaseException as error:
                self.finish(error)
                raise
            if self.keep(item):
                return item

    def finish(self, error: BaseException | None = None, complete: bool = True) -> None:
        if self.done:
            return
        self.done = True
        try:
            outcome = self.accumulator.outcome(complete and error is None)
        except Exception:
            exception_once(_logger, "stream-outcome", "otel-llm-cost: could not read a stream's usage")
            outcome = Outcome()
        if error is None:
            self.call.finish(outcome)
        else:
            self.call.fail(error, outcome)


class StreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, stream: Any, call: Call, accumulator: StreamAccumulator) -> None:
        super().__init__(stream)
        self._self_state = _StreamState(call, accumulator)

    # --- sync ---
    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        state = self._self_state
        if state.iterator is None:
            state.iterator = iter(self.__wrapped__)
        return state.next_item()

    def __enter__(self) -> StreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_state.finish(complete=False)  # an error in the app's block is not the call's error

    def close(self) -> Any:
        """`Stream.close()` is sync, `AsyncStream.close()` a coroutine: finish after either."""
        result = self.__wrapped__.close()
        if inspect.isawaitable(result):
            return self._self_close_async(result)
        self._self_state.finish(complete=False)
        return result

    async def _self_close_async(self, pending: Any) -> Any:
        try:
            return await pending
        finally:
            self._self_state.finish(complete=False)

    # --- async: the same steps, only the item is awaited ---
    def __aiter__(self) -> StreamProxy:
        return self

    async def __anext__(self) -> Any:
        state = self._self_state
        if state.iterator is None:
            state.iterator = self.__wrapped__.__aiter__()
        while True:
            try:
                item = await state.iterator.__anext__()
            except StopAsyncIteration:
                state.finish()
                raise
            except BaseException as error:
                state.finish(error)
                raise
            if state.keep(item):
                return item

    async def __aenter__(self) -> StreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_state.finish(complete=False)

    def __del__(self) -> None:
        # an abandoned stream (early `break`, never closed): end the span with what we saw. Not while the
        # interpreter shuts down: modules are being torn down, and exporters are already flushed.
        if sys.is_finalizing():
            return
        try:
            self._self_state.finish(complete=False)
        except Exception:
            pass
