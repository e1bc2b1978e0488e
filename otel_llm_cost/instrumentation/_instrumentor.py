"""The `BaseInstrumentor` every SDK shares: wrap its targets with wrapt, unwrap them exactly."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from wrapt import register_post_import_hook, wrap_function_wrapper

from otel_llm_cost import _state
from otel_llm_cost.instrumentation import _attempts
from otel_llm_cost.instrumentation._call import SCOPE_NAME, CallContext, Endpoint, wrap_endpoint
from otel_llm_cost.instrumentation._refusal import ErrorBase


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
    error_base: ErrorBase | None = None
    """The SDK's base error class: a budget refusal raised into the app is an instance of it too."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.dependencies

    def _instrument(self, **kwargs: Any) -> None:
        settings = _state.settings()  # a bad OTEL_LLM_COST_* value fails here, at start-up
        if not settings.enabled:
            return
        from otel_llm_cost import __version__

        _attempts.install()  # which requests of a call left the client: what a failed call is charged
        tracer = trace.get_tracer(SCOPE_NAME, __version__, tracer_provider=kwargs.get("tracer_provider"))
        ctx = self._ctx = CallContext(tracer=tracer, error_base=self.error_base)
        self._wrappers: list[tuple[Any, str, Callable[..., Any]]] = []
        # Patch each SDK module when the app first imports it (at once if it already has): instrumenting
        # imports no SDK, so an app pays only for the SDKs it uses (LiteLLM alone takes seconds to import).
        for module in dict.fromkeys(target.module for target in self.targets):
            register_post_import_hook(functools.partial(self._patch, ctx), module)
        _state.instrumented_sdks.add(type(self).__name__)

    def _patch(self, ctx: CallContext, module: Any) -> None:
        """Wrap this module's targets, unless uninstrumented (or instrumented anew) since the hook was set."""
        if not ctx.active or ctx is not getattr(self, "_ctx", None):
            return
        for target in self.targets:
            if target.module != module.__name__:
                continue
            owner = _resolve(target, module)
            if owner is not None:
                wrapper = target.wrapper(ctx)
                wrap_function_wrapper(module, target.name, wrapper)
                self._wrappers.append((owner, target.name.rsplit(".", 1)[-1], wrapper))

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


def _resolve(target: Target, module: Any = None) -> Any:
    """The class (or module) that owns the method, or None if this SDK version does not have it.
    Without `module`, imports it (for checks; instrumenting itself never imports an SDK)."""
    if module is None:
        try:
            module = importlib.import_module(target.module)
        except ImportError:
            return None
    owner: Any = module
    *path, method = target.name.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            return None
    return owner if hasattr(owner, method) else None
