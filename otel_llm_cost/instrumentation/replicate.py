"""Replicate (`replicate`): each prediction created, however the app creates it (`replicate.run`,
`replicate.stream`, `predictions.create` by version, model or deployment), sync and async.

Knows replicate's shapes and nothing else. A prediction is a call: reserved before it is created, and
ended when this process sees it end, since creating one may return it still running (`starting`,
`processing`). The app then gets the prediction behind a proxy that ends the call when `wait()`,
`reload()` or the output iterator find it finished (or when it is dropped unfinished: no usage, so no
cost). Language models report their token counts in `metrics` (`input_token_count`,
`output_token_count`). genai-prices has no Replicate prices: a call's cost is *unknown* unless the app
sets one (`set_pricing(model, ..., provider="replicate")`).
"""

from __future__ import annotations

import sys
from typing import Any

import wrapt

from otel_llm_cost.instrumentation._call import Endpoint, Outcome, Request
from otel_llm_cost.instrumentation._instrumentor import LLMInstrumentor, Target
from otel_llm_cost.instrumentation._read import count, field, given_int
from otel_llm_cost.instrumentation._refusal import ErrorBase
from otel_llm_cost.usage import Usage

__all__ = ["ReplicateInstrumentor"]

_ENDED = frozenset({"succeeded", "failed", "canceled"})


def _model_of(kwargs: dict[str, Any], args: tuple[Any, ...], instance: Any) -> str | None:
    """`owner/name` of the model, version or deployment the prediction runs."""
    for key in ("model", "deployment"):
        target = kwargs.get(key)
        if isinstance(target, str):
            return target.split(":", 1)[0]
        if isinstance(target, tuple):
            return "/".join(target)
        if target is not None:
            return f"{field(target, 'owner')}/{field(target, 'name')}"
    deployment = getattr(instance, "_deployment", None)  # `deployment.predictions.create(...)`
    if deployment is not None:
        return f"{field(deployment, 'owner')}/{field(deployment, 'name')}"
    version = kwargs.get("version", args[0] if args and not isinstance(args[0], dict) else None)
    return version if isinstance(version, str) else field(version, "id")


def _read_request(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    payload = kwargs.get("input")
    if payload is None:
        payload = next((a for a in args if isinstance(a, dict)), None)
    payload = payload if isinstance(payload, dict) else {}
    return Request(
        operation="chat",
        provider="replicate",
        api="openai.chat",
        model=_model_of(kwargs, args, instance),
        kwargs=kwargs,
        max_tokens=given_int(payload.get("max_tokens"), payload.get("max_new_tokens")),
        stream=bool(kwargs.get("stream")),
        prompt=payload.get("prompt") or payload.get("messages") or "",
        system=payload.get("system_prompt"),
        model_key=None,  # a version id or deployment, not a model name to swap
    )


def _read_prediction(prediction: Any) -> Outcome:
    """The counts in `metrics`, which come once the prediction has ended. Without them (a prediction
    `replicate.run` returned while `processing`, never reloaded) the output is counted, one token per
    item of a language model's output list, and the input estimated: marked estimated."""
    metrics = field(prediction, "metrics")
    input_tokens, output_tokens = count(metrics, "input_token_count"), count(metrics, "output_token_count")
    status = field(prediction, "status")
    if input_tokens is None and output_tokens is None:
        output = field(prediction, "output")
        usage = Usage(output_tokens=len(output)) if isinstance(output, list) else None
        estimated = True
    else:
        usage, estimated = Usage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0), False
    return Outcome(
        usage=usage,
        estimate_unreported=estimated,
        response_model=field(prediction, "model") or None,
        response_id=field(prediction, "id") or None,
        finish_reasons=(status,) if isinstance(status, str) and status in _ENDED else (),
    )


class _Running(wrapt.ObjectProxy):  # type: ignore[misc]
    """A prediction created still running: the call ends when the prediction is seen ended."""

    def __init__(self, prediction: Any, call: Any) -> None:
        super().__init__(prediction)
        self._self_call = call

    def _self_check(self) -> None:
        call = self._self_call
        if call is not None and field(self.__wrapped__, "status") in _ENDED:
            self._self_call = None
            call.finish(_read_prediction(self.__wrapped__))

    def wait(self) -> None:
        self.__wrapped__.wait()
        self._self_check()

    def reload(self) -> None:
        self.__wrapped__.reload()
        self._self_check()

    async def async_wait(self) -> None:
        await self.__wrapped__.async_wait()
        self._self_check()

    async def async_reload(self) -> None:
        await self.__wrapped__.async_reload()
        self._self_check()

    def output_iterator(self) -> Any:
        try:
            yield from self.__wrapped__.output_iterator()
        finally:
            self._self_check()

    async def async_output_iterator(self) -> Any:
        try:
            async for item in self.__wrapped__.async_output_iterator():
                yield item
        finally:
            self._self_check()

    def __del__(self) -> None:
        # dropped unfinished (a fire-and-forget prediction, a webhook reads it): end with what is known
        call = self._self_call
        if call is not None and not sys.is_finalizing():
            self._self_call = None
            try:
                call.finish(_read_prediction(self.__wrapped__))
            except Exception:
                pass


def _until_done(prediction: Any, call: Any) -> Any:
    return None if field(prediction, "status") in _ENDED else _Running(prediction, call)


CREATE = Endpoint(_read_request, _read_prediction, until_done=_until_done)

_TARGETS = (("replicate.prediction", "Predictions"), ("replicate.model", "ModelsPredictions"),
            ("replicate.deployment", "DeploymentsPredictions"), ("replicate.deployment", "DeploymentPredictions"))


class ReplicateInstrumentor(LLMInstrumentor):
    """A span per Replicate prediction, ended when the prediction is seen to end."""

    dependencies = ("replicate >= 0.25",)
    error_base = ErrorBase("replicate.exceptions:ReplicateException")
    targets = tuple(target for module, cls in _TARGETS for target in (
        Target(module, f"{cls}.create", CREATE), Target(module, f"{cls}.async_create", CREATE, is_async=True)))
