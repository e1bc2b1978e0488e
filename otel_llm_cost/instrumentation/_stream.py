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
from typing import Any

import wrapt

from otel_llm_cost._log import exception_once
from otel_llm_cost.instrumentation._call import LLMCall, Outcome, StreamAccumulator

_logger = logging.getLogger(__name__)


class StreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    def __init__(self, stream: Any, call: LLMCall, accumulator: StreamAccumulator) -> None:
        super().__init__(stream)
        self._self_call = call
        self._self_accumulator = accumulator
        self._self_iterator: Any = None
        self._self_done = False

    # --- shared by sync and async ---
    def _self_keep(self, item: Any) -> bool:
        try:
            return self._self_accumulator.observe(item)
        except Exception:
            exception_once(_logger, "stream-observe", "otel-llm-cost: could not read a stream item")
            return True

    def _self_finish(self, error: BaseException | None = None, complete: bool = True) -> None:
        if self._self_done:
            return
        self._self_done = True
        try:
            outcome = self._self_accumulator.outcome(complete and error is None)
        except Exception:
            exception_once(_logger, "stream-outcome", "otel-llm-cost: could not read a stream's usage")
            outcome = Outcome()
        if error is None:
            self._self_call.finish(outcome)
        else:
            self._self_call.fail(error, outcome)

    # --- sync ---
    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        if self._self_iterator is None:
            self._self_iterator = iter(self.__wrapped__)
        while True:
            try:
                item = next(self._self_iterator)
            except StopIteration:
                self._self_finish()
                raise
            except BaseException as error:
                self._self_finish(error)
                raise
            if self._self_keep(item):
                return item

    def __enter__(self) -> StreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_finish(complete=False)  # an error in the app's block is not the call's error

    def close(self) -> Any:
        """`Stream.close()` is sync, `AsyncStream.close()` a coroutine: finish after either."""
        result = self.__wrapped__.close()
        if inspect.isawaitable(result):
            return self._self_close_async(result)
        self._self_finish(complete=False)
        return result

    async def _self_close_async(self, pending: Any) -> Any:
        try:
            return await pending
        finally:
            self._self_finish(complete=False)

    # --- async ---
    def __aiter__(self) -> StreamProxy:
        return self

    async def __anext__(self) -> Any:
        if self._self_iterator is None:
            self._self_iterator = self.__wrapped__.__aiter__()
        while True:
            try:
                item = await self._self_iterator.__anext__()
            except StopAsyncIteration:
                self._self_finish()
                raise
            except BaseException as error:
                self._self_finish(error)
                raise
            if self._self_keep(item):
                return item

    async def __aenter__(self) -> StreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_finish(complete=False)

    def __del__(self) -> None:
        # an abandoned stream (early `break`, never closed): end the span with what we saw
        if not self._self_done:
            try:
                self._self_finish(complete=False)
            except Exception:
                pass
