"""The legacy Gemini SDK (`google-generativeai`) and the Vertex AI SDK (`vertexai.generative_models`),
driven for real: over REST against the fake provider (which streams `streamGenerateContent` as one
JSON array when `alt=sse` is not asked, as the API does), and over gRPC, their default transport,
against the fake's gRPC side, which answers with the SDKs' own protobuf messages.

Prices: Gemini 2.0 Flash, $0.10 input / $0.40 output per 1M tokens on the Gemini API and on Vertex AI
(ai.google.dev/pricing, cloud.google.com/vertex-ai/generative-ai/pricing, read 2026-12-03)."""

from __future__ import annotations

import asyncio
import warnings
from decimal import Decimal

import pytest
from conftest import cost_of, our_spans

import otel_llm_cost as llm_cost
from otel_llm_cost.budget import Budget

with warnings.catch_warnings():  # Google ended google-generativeai's support and says so on import
    warnings.simplefilter("ignore")
    grpc = pytest.importorskip("grpc")
    genai = pytest.importorskip("google.generativeai")
    vertexai = pytest.importorskip("vertexai")
    from google.ai import generativelanguage_v1beta as glm  # noqa: E402
    from google.api_core.exceptions import GoogleAPICallError  # noqa: E402
    from google.auth.credentials import AnonymousCredentials  # noqa: E402
    from google.cloud.aiplatform_v1.services import prediction_service  # noqa: E402
    from google.generativeai import client as genai_clients  # noqa: E402
    from vertexai.generative_models import GenerativeModel as VertexModel  # noqa: E402

# Google says on each use that these SDKs are deprecated; apps still run them
pytestmark = pytest.mark.filterwarnings("ignore:This feature is deprecated:UserWarning")

MODEL = "gemini-2.0-flash"
PER_CALL = 1_000 * Decimal("0.10") / 10**6 + 100 * Decimal("0.40") / 10**6


@pytest.fixture
def gemini(fake, instrumented):
    fake.set_model(MODEL, input_tokens=1_000, output_tokens=100)
    yield fake
    genai_clients._client_manager.clients.clear()


def _genai_over_rest(fake):
    genai.configure(api_key="offline", transport="rest", client_options={"api_endpoint": fake.url})
    return genai.GenerativeModel(MODEL)


_TRANSPORTS = glm.services.generative_service.transports


def _genai_over_grpc(fake):
    """The SDK's default transport, on an insecure channel to the fake's gRPC side."""
    genai.configure(api_key="offline")
    genai_clients._client_manager.clients["generative"] = glm.GenerativeServiceClient(
        transport=_TRANSPORTS.GenerativeServiceGrpcTransport(channel=grpc.insecure_channel(fake.grpc_address)))
    return genai.GenerativeModel(MODEL)


def _genai_async_over_grpc(fake):
    """The same for the async client, whose channel belongs to the running event loop."""
    genai_clients._client_manager.clients["generative_async"] = glm.GenerativeServiceAsyncClient(
        transport=_TRANSPORTS.GenerativeServiceGrpcAsyncIOTransport(
            channel=grpc.aio.insecure_channel(fake.grpc_address)))
    return genai.GenerativeModel(MODEL)


def test_google_generativeai_over_rest_plain_and_streamed(gemini, span_exporter):
    model = _genai_over_rest(gemini)
    assert model.generate_content("Hi").text == "Hello from the fake provider."
    chunks = list(model.generate_content("Hi", stream=True))
    assert "".join(c.text for c in chunks) == "Hello from the fake provider." and len(chunks) == 4
    spans = our_spans(span_exporter)
    assert gemini.request_count(f"/v1beta/models/{MODEL}:") == 2
    assert [s.attributes["gen_ai.request.stream"] for s in spans] == [False, True]
    assert {s.attributes["gen_ai.provider.name"] for s in spans} == {"gcp.gemini"}
    assert [cost_of(s) for s in spans] == [PER_CALL] * 2
    assert [s.attributes["gen_ai.response.finish_reasons"] for s in spans] == [("stop",)] * 2
    assert not any(s.attributes.get("llm_cost.usage.estimated") for s in spans)


def test_google_generativeai_over_grpc_sync_async_and_streams(gemini, span_exporter):
    model = _genai_over_grpc(gemini)
    model.generate_content("Hi")
    assert len(list(model.generate_content("Hi", stream=True))) == 4

    async def run_async():
        amodel = _genai_async_over_grpc(gemini)
        await amodel.generate_content_async("Hi")
        stream = await amodel.generate_content_async("Hi", stream=True)
        return [chunk.text async for chunk in stream]

    assert "".join(asyncio.run(run_async())) == "Hello from the fake provider."
    spans = our_spans(span_exporter)
    assert gemini.request_count("GenerativeService/") == 4
    assert [s.attributes["gen_ai.request.stream"] for s in spans] == [False, True, False, True]
    assert [cost_of(s) for s in spans] == [PER_CALL] * 4
    assert {s.attributes["gen_ai.request.model"] for s in spans} == {MODEL}


def test_a_chat_session_is_one_span_per_request(gemini, span_exporter):
    chat = _genai_over_rest(gemini).start_chat()
    chat.send_message("Hi")
    chat.send_message("And again")
    assert len(our_spans(span_exporter)) == 2 == gemini.request_count(":generateContent")


def test_a_stream_cut_midway_keeps_the_prompt_count_and_is_estimated(gemini, span_exporter):
    from otel_llm_cost.testing.fake import Fault

    gemini.inject(Fault(cut_after_chunks=2))
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises for a cut stream is the app's
        list(_genai_over_rest(gemini).generate_content("Hi", stream=True))
    span = our_spans(span_exporter)[0]
    assert span.attributes["gen_ai.usage.input_tokens"] == 1_000
    assert span.attributes["llm_cost.usage.estimated"] is True


def test_vertex_ai_over_rest_and_grpc(gemini, span_exporter):
    vertexai.init(project="p", location="us-central1", credentials=AnonymousCredentials(), api_endpoint=gemini.url,
                  api_transport="rest")
    model = VertexModel(MODEL)
    assert model.generate_content("Hi").text == "Hello from the fake provider."
    assert len(list(model.generate_content("Hi", stream=True))) == 4
    async def run_async():
        # the async client is gRPC only: on an insecure channel to the fake's gRPC side
        model._prediction_async_client = prediction_service.PredictionServiceAsyncClient(
            transport=prediction_service.transports.PredictionServiceGrpcAsyncIOTransport(
                channel=grpc.aio.insecure_channel(gemini.grpc_address)))
        await model.generate_content_async("Hi")
        stream = await model.generate_content_async("Hi", stream=True)
        return [chunk async for chunk in stream]

    assert len(asyncio.run(run_async())) == 4
    spans = our_spans(span_exporter)
    assert gemini.request_count("/publishers/google/models/") == 2 and gemini.request_count("PredictionService/") == 2
    assert {s.attributes["gen_ai.provider.name"] for s in spans} == {"gcp.vertex_ai"}
    assert {s.attributes["gen_ai.request.model"] for s in spans} == {MODEL}
    assert [cost_of(s) for s in spans] == [PER_CALL] * 4


def test_a_refusal_is_a_google_api_error_or_the_models_answer_and_sends_nothing(gemini, guard):
    model = _genai_over_rest(gemini)
    guard.set(Budget.create(0, name="zero"))
    with pytest.raises(GoogleAPICallError) as raised:
        model.generate_content("Hi")
    assert isinstance(raised.value, llm_cost.BudgetExceededError)
    guard.set(Budget.create(0, name="zero", on_exceed="respond"))
    assert "budget" in model.generate_content("Hi").text.lower()
    assert "budget" in "".join(c.text for c in model.generate_content("Hi", stream=True)).lower()
    assert gemini.request_count("") == 0
