"""The `BaseInstrumentor` every SDK shares: wrap its targets with wrapt, unwrap them exactly."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from otel_llm_cost import _state
from otel_llm_cost.instrumentation import _attempts
from otel_llm_cost.instrumentation._call import SCOPE_NAME, CallContext, Endpoint, wrap_endpoint


@dataclass(frozen=True, slots=True)
class Target:
    """One SDK method to wrap: `module`, `Class.method`, and the endpoint (or a custom wrapper factory)."""

    module: str
    name: str
    endpoint: Endpoint | None = None
    is_async: bool = False
    wrapper_factory: Callable[[CallContext], Callable[..., Any]] | None = None

    def wrapper(self, ctx: CallContext) -> Callable[..., Any]:
        if self.wrapper_factory is not None:
            return self.wrapper_factory(ctx)
        assert self.endpoint is not None
        return wrap_endpoint(ctx, self.endpoint, is_async=self.is_async)


class LLMInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Subclasses name their SDK's package (`dependencies`) and methods (`targets`)."""

    dependencies: Collection[str] = ()
    targets: Sequence[Target] = ()

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.dependencies

    def _instrument(self, **kwargs: Any) -> None:
        settings = _state.settings()  # a bad OTEL_LLM_COST_* value fails here, at start-up
        if not settings.enabled:
            return
        from otel_llm_cost import __version__

        _attempts.install()  # which requests of a call left the client: what a failed call is charged
        tracer = trace.get_tracer(SCOPE_NAME, __version__, tracer_provider=kwargs.get("tracer_provider"))
        self._ctx = CallContext(tracer=tracer)
        self._wrappers: list[tuple[Any, str, Callable[..., Any]]] = []
        for target in self.targets:
            owner = _resolve(target)
            if owner is not None:
                wrapper = target.wrapper(self._ctx)
                wrap_function_wrapper(target.module, target.name, wrapper)
                self._wrappers.append((owner, target.name.rsplit(".", 1)[-1], wrapper))
        if self._wrappers:
            _state.instrumented_sdks.add(type(self).__name__)

    def _uninstrument(self, **kwargs: Any) -> None:
        """Restore each method exactly. If another instrumentation wrapped it after us, its wrapper must
        stay: ours is then switched to pass-through instead of being torn out from under it."""
        ctx = getattr(self, "_ctx", None)
        if ctx is not None:
            ctx.active = False
        _state.instrumented_sdks.discard(type(self).__name__)
        for owner, method, wrapper in getattr(self, "_wrappers", ()):
            current = owner.__dict__.get(method)
            if getattr(current, "_self_wrapper", None) is wrapper:
                unwrap(owner, method)
        self._wrappers = []


def _resolve(target: Target) -> Any:
    """The class that owns the method, or None if this SDK version does not have it."""
    try:
        owner: Any = importlib.import_module(target.module)
    except ImportError:
        return None
    *path, method = target.name.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return owner if hasattr(owner, method) else None
