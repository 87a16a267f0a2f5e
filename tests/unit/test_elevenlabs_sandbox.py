"""The ElevenLabs client against the ElevenLabs stand-in on real loopback sockets: signed URLs,
the agent socket's admission rules, the conversation lifecycle and the post-call webhook."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from callflow.config import Settings
from callflow.providers.elevenlabs.client import (
    AgentSummary,
    AsyncElevenLabsClient,
    Conversation,
    ElevenLabsClient,
    ElevenLabsConfigError,
    parse_post_call,
    verify_webhook,
)
from callflow.providers.errors import ProviderAuthError, ProviderRejected, RetryableProviderError
from callflow_dev.local.servers import AsgiServer
from callflow_dev.sandbox.agent import AgentConfig, AgentLine, DialogueStep
from callflow_dev.sandbox.elevenlabs import ConversationState, ElevenLabsSandbox, SignatureBook

API_KEY = "xi_test_key_123"
WEBHOOK_SECRET = "wsec_sandbox_secret"
FRAME = 640  # 20 ms of 16-bit PCM at 16 kHz


def quick_agent(**changes: Any) -> AgentConfig:
    """One question, one answer, then end_call: a whole conversation in about a second."""
    options: dict[str, Any] = {
        "steps": (
            DialogueStep(
                caller_text="Yes, about a hundred and fifty a month.",
                reply=AgentLine("Thanks {{first_name}}, goodbye!", "agent_closing"),
                collects={"interested": True, "monthly_bill": 150},
                ends_call=True,
            ),
        ),
        "clip_max_ms": 300,
        "end_of_turn_silence_ms": 200,
        "response_delay_ms": 0,
        "client_events": ("audio", "agent_response", "user_transcript", "agent_tool_response"),
    }
    options.update(changes)
    return AgentConfig(**options)


@dataclass
class Stack:
    sandbox: ElevenLabsSandbox
    server: AsgiServer
    client: ElevenLabsClient
    settings: Settings


@dataclass
class Receiver:
    """The project's side of the post-call webhook: keeps the raw body and headers."""

    hits: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhooks/elevenlabs")
        async def receive(request: Request) -> dict[str, str]:
            self.hits.append((await request.body(), dict(request.headers)))
            self.arrived.set()
            return {"result": "stored"}

        return app


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, AsgiServer]]:
    hook = Receiver()
    server = AsgiServer(hook.app(), name="hook").start()
    yield hook, server
    server.stop()


def start_stack(agent: AgentConfig | None = None, **options: Any) -> Stack:
    sandbox = ElevenLabsSandbox(API_KEY, agent or quick_agent(), **options)
    server = AsgiServer(sandbox.app, name="elevenlabs").start()
    settings = Settings(
        elevenlabs_base_url=server.url,
        elevenlabs_api_key=SecretStr(API_KEY),
        elevenlabs_agent_id=sandbox.agent_id,
    )
    return Stack(sandbox, server, ElevenLabsClient(settings), settings)


@pytest.fixture
def stack() -> Iterator[Stack]:
    running = start_stack(processing_seconds=0.3)
    yield running
    running.client.close()
    running.server.stop()


def tone(ms: int, amplitude: float = 0.4) -> bytes:
    samples = 16 * ms
    return b"".join(
        struct.pack("<h", int(amplitude * 32767 * math.sin(2 * math.pi * 440 * i / 16000)))
        for i in range(samples)
    )


async def send_pcm(ws: ClientConnection, pcm: bytes) -> None:
    for offset in range(0, len(pcm), FRAME):
        chunk = base64.b64encode(pcm[offset : offset + FRAME]).decode()
        await ws.send(json.dumps({"user_audio_chunk": chunk}))


async def open_conversation(url: str, variables: dict[str, Any]) -> tuple[ClientConnection, str]:
    ws = await connect(url)
    await ws.send(
        json.dumps({"type": "conversation_initiation_client_data", "dynamic_variables": variables})
    )
    first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert first["type"] == "conversation_initiation_metadata", first
    return ws, first["conversation_initiation_metadata_event"]["conversation_id"]


async def answer_and_wait_for_end(ws: ClientConnection) -> list[dict[str, Any]]:
    """Let the greeting play, say one thing, stay quiet; collect frames until the agent closes."""
    frames: list[dict[str, Any]] = []

    async def collect() -> None:
        try:
            async for raw in ws:
                frames.append(json.loads(raw))
        except ConnectionClosed:
            pass

    reader = asyncio.create_task(collect())
    await asyncio.sleep(0.45)  # the 300 ms greeting is "playing" until then
    await send_pcm(ws, tone(400) + bytes(16 * 2 * 400))
    await asyncio.wait_for(reader, 5)
    return frames


async def refusal(url: str) -> tuple[dict[str, Any], int | None]:
    """The first frame and close code of a socket the stand-in turns down."""
    async with connect(url) as ws:
        error = json.loads(await asyncio.wait_for(ws.recv(), 5))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return error, ws.close_code


async def poll(client: ElevenLabsClient, conversation_id: str, status: str) -> Conversation:
    deadline = time.monotonic() + 5
    while True:
        conversation = await asyncio.to_thread(client.get_conversation, conversation_id)
        if conversation.status == status or time.monotonic() > deadline:
            return conversation
        await asyncio.sleep(0.05)


# --- signed URLs ---------------------------------------------------------------------------


def test_signed_url_points_at_the_conversation_socket_with_a_fresh_signature(
    stack: Stack,
) -> None:
    first = stack.client.get_signed_url()
    second = stack.client.get_signed_url(stack.sandbox.agent_id)
    prefix = f"ws://127.0.0.1:{stack.server.port}/v1/convai/conversation?agent_id=agent_sandbox"
    assert first.startswith(prefix + "&conversation_signature=")
    assert first != second
    request = stack.sandbox.requests[-1]
    assert (request.path, request.params) == (
        "/v1/convai/conversation/get-signed-url",
        {"agent_id": "agent_sandbox"},
    )
    assert "xi-api-key" in request.header_names


def test_unknown_agent_is_rejected_for_good(stack: Stack) -> None:
    with pytest.raises(ProviderRejected) as caught:
        stack.client.get_signed_url("agent_nobody")
    assert (caught.value.status, caught.value.code) == (404, "agent_not_found")
    assert not caught.value.retryable
    assert not isinstance(caught.value, ProviderAuthError)


def test_wrong_api_key_is_an_auth_error(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"elevenlabs_api_key": SecretStr("xi_wrong")})
    with pytest.raises(ProviderAuthError) as caught:
        ElevenLabsClient(settings).get_signed_url()
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")


def test_missing_api_key_or_agent_is_a_configuration_error() -> None:
    with pytest.raises(ElevenLabsConfigError, match="API_KEY"):
        ElevenLabsClient(Settings(elevenlabs_agent_id="a")).get_signed_url()
    with pytest.raises(ElevenLabsConfigError, match="agent id"):
        ElevenLabsClient(Settings(elevenlabs_api_key=SecretStr("k"))).get_signed_url()


def test_path_ids_that_could_change_the_url_are_refused(stack: Stack) -> None:
    with pytest.raises(ValueError, match="conversation id"):
        stack.client.get_conversation("../agents/agent_sandbox")


def test_unreachable_service_is_retryable() -> None:
    settings = Settings(
        elevenlabs_base_url="http://127.0.0.1:9",
        elevenlabs_api_key=SecretStr("k"),
        elevenlabs_agent_id="a",
    )
    with pytest.raises(RetryableProviderError, match="ConnectError"):
        ElevenLabsClient(settings).get_signed_url()


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (503, True), (422, False)])
def test_throttling_and_server_errors_are_retryable(status: int, retryable: bool) -> None:
    # ElevenLabs' error bodies; the stand-in never throttles, so a transport plays the service.
    def reply(request: httpx.Request) -> httpx.Response:
        if status == 422:
            body: dict[str, Any] = {
                "detail": [{"loc": ["query", "agent_id"], "msg": "Field required", "type": "x"}]
            }
        else:
            body = {"detail": {"status": "too_many_concurrent_requests", "message": "busy"}}
        return httpx.Response(status, json=body)

    settings = Settings(elevenlabs_api_key=SecretStr("k"), elevenlabs_agent_id="a")
    client = ElevenLabsClient(settings, httpx.Client(transport=httpx.MockTransport(reply)))
    with pytest.raises(ProviderRejected if status == 422 else RetryableProviderError) as caught:
        client.get_conversation("conv_1")
    assert caught.value.retryable is retryable
    assert caught.value.status == status
    if status == 422:
        assert "query.agent_id: Field required" in caught.value.message


async def test_async_client_gets_a_signed_url(stack: Stack) -> None:
    client = AsyncElevenLabsClient(stack.settings)
    try:
        url = await client.get_signed_url()
    finally:
        await client.aclose()
    assert "conversation_signature=" in url


def test_signature_is_single_use_and_expires_after_15_minutes() -> None:
    now = [1000.0]
    book = SignatureBook(clock=lambda: now[0])
    used, stale, other = book.issue("a"), book.issue("a"), book.issue("a")
    assert book.consume("a", used)
    assert not book.consume("a", used)
    now[0] += 15 * 60 + 1
    assert not book.consume("a", stale)
    assert not book.consume("b", other)


# --- agent settings ------------------------------------------------------------------------


def test_agent_settings_report_formats_events_collection_and_overrides() -> None:
    agent = quick_agent(
        user_input_audio_format="ulaw_8000",
        agent_output_audio_format="pcm_24000",
        allowed_overrides=frozenset({"agent.first_message"}),
    )
    running = start_stack(agent)
    try:
        summary = AgentSummary.from_agent(running.client.get_agent())
    finally:
        running.server.stop()
    assert (summary.input_format, summary.output_format) == ("ulaw_8000", "pcm_24000")
    assert "interruption" not in summary.client_events
    assert summary.data_collection == ("interested", "monthly_bill", "visit_date", "lead_status")
    assert summary.overrides["agent.first_message"] is True
    assert summary.overrides["tts.voice_id"] is False


def test_default_agent_sends_interruptions(stack: Stack) -> None:
    sandbox = ElevenLabsSandbox(API_KEY, AgentConfig())
    assert (
        "interruption"
        in sandbox.agent_body()["conversation_config"]["conversation"]["client_events"]
    )


def test_unknown_conversation_is_rejected(stack: Stack) -> None:
    with pytest.raises(ProviderRejected) as caught:
        stack.client.get_conversation("conv_missing")
    assert (caught.value.status, caught.value.code) == (404, "conversation_not_found")


# --- the conversation ----------------------------------------------------------------------


async def test_conversation_goes_in_progress_processing_done_with_results(stack: Stack) -> None:
    url = await asyncio.to_thread(stack.client.get_signed_url)
    ws, conversation_id = await open_conversation(url, {"first_name": "Maria", "score": 7})
    live = await asyncio.to_thread(stack.client.get_conversation, conversation_id)
    assert (live.status, live.is_final) == ("in-progress", False)
    assert live.dynamic_variables == {"first_name": "Maria", "score": 7}

    frames = await answer_and_wait_for_end(ws)
    assert ws.close_code == 1000
    assert any(f.get("type") == "agent_tool_response" for f in frames)

    processing = await asyncio.to_thread(stack.client.get_conversation, conversation_id)
    assert processing.status == "processing"
    assert processing.analysis is None
    done = await poll(stack.client, conversation_id, "done")
    assert done.is_final
    results = done.results()
    assert results["status"] == "done"
    assert results["data_collection"] == {
        "interested": True,
        "monthly_bill": 150,
        "visit_date": None,
        "lead_status": None,
    }
    assert results["call_successful"] == "failure"  # two items were never asked for
    assert "Maria" in results["summary"] and "monthly_bill = 150" in results["summary"]
    assert results["termination_reason"] == "end_call tool was called."
    assert [t["role"] for t in results["transcript"]] == ["agent", "user", "agent"]
    assert results["transcript"][-1]["message"] == "Thanks Maria, goodbye!"


async def test_a_signed_url_starts_only_one_conversation(stack: Stack) -> None:
    url = await asyncio.to_thread(stack.client.get_signed_url)
    ws, _ = await open_conversation(url, {"first_name": "Ann"})
    try:
        error, code = await refusal(url)
    finally:
        await ws.close()
    assert code == 1008
    assert error["type"] == "error"
    assert error["error_event"]["code"] == 1008
    assert "signature" in error["error_event"]["message"]


async def test_forged_signature_is_refused(stack: Stack) -> None:
    url = f"ws://127.0.0.1:{stack.server.port}/v1/convai/conversation?agent_id=agent_sandbox"
    _, code = await refusal(url + "&conversation_signature=forged")
    assert code == 1008
    assert stack.sandbox.refused == [(1008, "Invalid or expired conversation signature")]


async def test_conversations_over_the_concurrency_cap_are_refused() -> None:
    running = start_stack(max_concurrent_conversations=1)
    try:
        first = await asyncio.to_thread(running.client.get_signed_url)
        second = await asyncio.to_thread(running.client.get_signed_url)
        ws, _ = await open_conversation(first, {"first_name": "Ann"})
        error, code = await refusal(second)
        await ws.close()
        await asyncio.sleep(0.1)
        third = await asyncio.to_thread(running.client.get_signed_url)
        again, _ = await open_conversation(third, {"first_name": "Ann"})
        await again.close()
    finally:
        running.server.stop()
    assert code == 1008
    assert "Concurrency limit of 1" in error["error_event"]["message"]


async def test_agent_refusing_the_call_leaves_a_failed_conversation() -> None:
    running = start_stack(quick_agent(refuse_with=1011), processing_seconds=0.1)
    try:
        url = await asyncio.to_thread(running.client.get_signed_url)
        async with connect(url) as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "conversation_initiation_client_data",
                        "dynamic_variables": {"first_name": "Ann"},
                    }
                )
            )
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
        (conversation_id,) = running.sandbox.conversations
        failed = await poll(running.client, conversation_id, "failed")
    finally:
        running.server.stop()
    assert ws.close_code == 1011
    assert failed.is_final and failed.status == "failed"


# --- the post-call webhook -----------------------------------------------------------------


async def test_done_conversation_is_posted_signed_and_verifies(
    receiver: tuple[Receiver, AsgiServer],
) -> None:
    hook, hook_server = receiver
    running = start_stack(
        webhook_url=f"{hook_server.url}/webhooks/elevenlabs",
        webhook_secret=WEBHOOK_SECRET,
        processing_seconds=0.1,
    )
    try:
        url = await asyncio.to_thread(running.client.get_signed_url)
        ws, conversation_id = await open_conversation(url, {"first_name": "Maria"})
        await answer_and_wait_for_end(ws)
        polled = await poll(running.client, conversation_id, "done")
        await asyncio.to_thread(hook.arrived.wait, 5)
    finally:
        running.server.stop()
    ((raw, headers),) = hook.hits
    payload = verify_webhook(raw, headers.get("elevenlabs-signature"), WEBHOOK_SECRET)
    event = parse_post_call(payload)
    assert (event.type, event.conversation_id) == ("post_call_transcription", conversation_id)
    assert event.conversation.results() == polled.results()
    assert event.conversation.dynamic_variables == {"first_name": "Maria"}
    assert running.sandbox.webhooks[0].status_code == 200


async def test_dropped_webhook_leaves_polling_as_the_only_way(
    receiver: tuple[Receiver, AsgiServer],
) -> None:
    hook, hook_server = receiver
    running = start_stack(
        webhook_url=f"{hook_server.url}/webhooks/elevenlabs",
        webhook_secret=WEBHOOK_SECRET,
        processing_seconds=0.1,
        drop_webhooks=True,
    )
    try:
        url = await asyncio.to_thread(running.client.get_signed_url)
        ws, conversation_id = await open_conversation(url, {"first_name": "Maria"})
        await answer_and_wait_for_end(ws)
        polled = await poll(running.client, conversation_id, "done")
        await asyncio.sleep(0.2)
    finally:
        running.server.stop()
    assert polled.status == "done"
    assert hook.hits == []
    assert running.sandbox.webhooks == []


async def test_delayed_webhook_arrives_after_the_conversation_is_done(
    receiver: tuple[Receiver, AsgiServer],
) -> None:
    hook, hook_server = receiver
    running = start_stack(
        webhook_url=f"{hook_server.url}/webhooks/elevenlabs",
        webhook_secret=WEBHOOK_SECRET,
        processing_seconds=0.1,
        delay_webhook_s=0.5,
    )
    try:
        url = await asyncio.to_thread(running.client.get_signed_url)
        ws, conversation_id = await open_conversation(url, {"first_name": "Maria"})
        await answer_and_wait_for_end(ws)
        await poll(running.client, conversation_id, "done")
        early = list(hook.hits)
        arrived = await asyncio.to_thread(hook.arrived.wait, 3)
    finally:
        running.server.stop()
    assert early == []
    assert arrived


async def test_unreachable_webhook_is_recorded_not_fatal() -> None:
    running = start_stack(webhook_url="http://127.0.0.1:9/hook", webhook_secret=WEBHOOK_SECRET)
    try:
        delivery = await running.sandbox.send_webhook(
            ConversationState("conv_x", "agent_sandbox", started_at=time.time(), status="done")
        )
    finally:
        running.server.stop()
    assert delivery.status_code is None
    assert "ConnectError" in delivery.error
    assert running.sandbox.webhooks == [delivery]


def test_a_second_agent_has_its_own_settings_and_signed_urls_and_others_stay_unknown() -> None:
    other = quick_agent(agent_id="agent_second", allowed_overrides=frozenset({"agent.language"}))
    running = start_stack(quick_agent(), other_agents=[other])
    try:
        first = AgentSummary.from_agent(running.client.get_agent())
        second = AgentSummary.from_agent(running.client.get_agent("agent_second"))
        url = running.client.get_signed_url("agent_second")
        with pytest.raises(ProviderRejected) as caught:
            running.client.get_agent("agent_nobody")
    finally:
        running.client.close()
        running.server.stop()
    assert (first.agent_id, second.agent_id) == ("agent_sandbox", "agent_second")
    assert second.overrides["agent.language"] is True
    assert first.overrides["agent.language"] is False
    assert "agent_id=agent_second&conversation_signature=" in url
    assert caught.value.status == 404
