"""The scripted ElevenLabs agent against a small client on loopback.

Clips are shortened (``clip_max_ms``) and the turn-taking silences are short, so a whole dialogue
takes a few seconds of real time; the audio the client "says" is still real recorded speech.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import date
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callflow_bridge.audio import AudioFormat, Converter, ulaw_decode
from callflow_dev.sandbox.agent import (
    AgentConfig,
    AgentServer,
    ClientTool,
    ConversationRecord,
    next_tuesday,
    serve_agent,
)
from callflow_dev.sandbox.asyncapi import validate_server_message
from callflow_dev.sandbox.clips import CLIP_RATE, load_clip, truncate_pcm

FAST = AgentConfig(
    clip_max_ms=400,
    end_of_turn_silence_ms=300,
    response_delay_ms=50,
    chunk_ms=100,
    lead_ms=100,
    ping_interval_s=0.5,
    pong_timeout_s=0.4,
)
VARIABLES = {"first_name": "Maria", "record_id": "123", "monthly_bill_hint": 150, "vip": False}
PCM_16K = AudioFormat("pcm", 16000)


def initiation(**extra: Any) -> dict[str, Any]:
    return {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": VARIABLES,
        **extra,
    }


def speech(clip: str, ms: int) -> bytes:
    return truncate_pcm(load_clip(clip), CLIP_RATE, ms)


class Client:
    """Plays the bridge: streams caller audio at real time (silence included), answers pings,
    and keeps every server message after checking it against the contract."""

    def __init__(self, ws: ClientConnection, config: AgentConfig, auto_pong: bool = True) -> None:
        self.ws = ws
        self.to_input = Converter(
            PCM_16K, AudioFormat.parse(config.user_input_audio_format), quality="HQ"
        )
        output = AudioFormat.parse(config.agent_output_audio_format)
        self.output_bytes_per_s = output.rate * output.bytes_per_sample
        self.auto_pong = auto_pong
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.invalid: list[str] = []
        self.queue = bytearray()
        self.closed = asyncio.Event()
        self.streaming = False

    @property
    def types(self) -> list[str]:
        return [message["type"] for _, message in self.messages]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for _, message in self.messages if message["type"] == kind]

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                self.invalid.extend(validate_server_message(message))
                self.messages.append((loop.time(), message))
                if message["type"] == "ping" and self.auto_pong:
                    event_id = message["ping_event"]["event_id"]
                    await self.ws.send(json.dumps({"type": "pong", "event_id": event_id}))
        except ConnectionClosed:
            pass
        self.closed.set()

    async def stream(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        with_silence = bytes(640)
        try:
            while True:
                frame = bytes(self.queue[:640]) or with_silence
                del self.queue[:640]
                frame = frame.ljust(640, b"\0")
                chunk = self.to_input.convert(frame)
                await self.ws.send(
                    json.dumps({"user_audio_chunk": base64.b64encode(chunk).decode()})
                )
                tick += 1
                await asyncio.sleep(max(0.0, start + tick * 0.02 - loop.time()))
        except ConnectionClosed:
            pass

    def say(self, pcm: bytes) -> None:
        self.queue.extend(pcm)

    async def until(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        for _ in range(int(timeout_s / 0.01)):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"not reached; got {self.types}")

    async def agent_done_speaking(self, count: int, timeout_s: float = 5.0) -> None:
        """Wait until the ``count``-th agent response has been sent and has finished *playing*
        (its first audio chunk plus its duration; the agent sends ahead of real time)."""
        await self.until(lambda: len(self.of_type("agent_response")) >= count)
        event_id = self.of_type("agent_response")[count - 1]["agent_response_event"]["event_id"]
        loop = asyncio.get_running_loop()
        for _ in range(int(timeout_s / 0.02)):
            audio = [
                (at, m)
                for at, m in self.messages
                if m["type"] == "audio" and m["audio_event"]["event_id"] == event_id
            ]
            if audio:
                size = sum(
                    len(base64.b64decode(m["audio_event"]["audio_base_64"])) for _, m in audio
                )
                end = audio[0][0] + size / self.output_bytes_per_s
                now = loop.time()
                if now >= end + 0.05 and now - audio[-1][0] > 0.15:
                    return
            await asyncio.sleep(0.02)
        raise AssertionError(f"agent turn {count} did not finish; got {self.types}")


@asynccontextmanager
async def conversation(
    config: AgentConfig,
    first: dict[str, Any] | None = None,
    *,
    stream: bool = True,
    auto_pong: bool = True,
) -> AsyncIterator[tuple[Client, AgentServer]]:
    async with serve_agent("127.0.0.1", 0, config) as server:
        async with connect(server.url + "?agent_id=agent_sandbox") as ws:
            client = Client(ws, config, auto_pong)
            await ws.send(json.dumps(first if first is not None else initiation()))
            reader = asyncio.create_task(client.read())
            streamer = asyncio.create_task(client.stream()) if stream else None
            try:
                yield client, server
            finally:
                if streamer is not None:
                    streamer.cancel()
                await ws.close()
                await reader
        for _ in range(200):
            if server.records:
                break
            await asyncio.sleep(0.01)


def only_record(server: AgentServer) -> ConversationRecord:
    assert len(server.records) == 1
    return server.records[0]


async def test_initiation_is_answered_with_metadata_in_the_agents_formats() -> None:
    config = replace(
        FAST, user_input_audio_format="pcm_8000", agent_output_audio_format="ulaw_8000"
    )
    async with conversation(config) as (client, _):
        await client.until(lambda: "agent_response" in client.types)
    first = client.messages[0][1]
    assert first["type"] == "conversation_initiation_metadata"
    event = first["conversation_initiation_metadata_event"]
    assert event["user_input_audio_format"] == "pcm_8000"
    assert event["agent_output_audio_format"] == "ulaw_8000"
    assert event["conversation_id"].startswith("conv_")
    greeting = client.of_type("agent_response")[0]["agent_response_event"]["agent_response"]
    assert greeting.startswith("Hi Maria, this is Sam from Acme Solar")
    assert client.invalid == []


async def test_first_message_other_than_initiation_closes_1008() -> None:
    async with conversation(FAST, {"user_audio_chunk": "AAAA"}, stream=False) as (client, server):
        await client.closed.wait()
    (error,) = client.of_type("error")
    assert error["error_event"]["error_type"] == "invalid_message"
    assert client.ws.close_code == 1008
    record = only_record(server)
    assert record.close_code == 1008
    assert "first message" in record.violations[0]


async def test_message_off_the_contract_mid_call_closes_1008() -> None:
    async with conversation(FAST) as (client, server):
        await client.until(lambda: "agent_response" in client.types)
        await client.ws.send(json.dumps({"type": "pong", "event_id": "seven"}))
        await client.closed.wait()
    assert client.ws.close_code == 1008
    assert client.of_type("error")[0]["error_event"]["code"] == 1008
    assert any("event_id" in violation for violation in only_record(server).violations)


async def test_missing_required_dynamic_variable_closes_1008() -> None:
    first = {"type": "conversation_initiation_client_data", "dynamic_variables": {"x": "1"}}
    async with conversation(FAST, first, stream=False) as (client, server):
        await client.closed.wait()
    assert client.types == ["error"]
    assert client.of_type("error")[0]["error_event"]["error_type"] == "missing_dynamic_variable"
    assert client.ws.close_code == 1008
    assert "first_name" in (client.ws.close_reason or "")
    assert only_record(server).termination_reason == "missing dynamic variable"


async def test_override_not_enabled_on_the_agent_closes_1008() -> None:
    first = initiation(conversation_config_override={"tts": {"voice_id": "abc"}})
    async with conversation(FAST, first, stream=False) as (client, _):
        await client.closed.wait()
    assert client.of_type("error")[0]["error_event"]["error_type"] == "override_error"
    assert client.ws.close_code == 1008


async def test_enabled_override_is_accepted() -> None:
    config = replace(FAST, allowed_overrides=frozenset({"tts"}))
    first = initiation(conversation_config_override={"tts": {"voice_id": "abc"}})
    async with conversation(config, first) as (client, server):
        await client.until(lambda: "agent_response" in client.types)
    assert "error" not in client.types
    assert only_record(server).overrides == {"tts": {"voice_id": "abc"}}


async def test_pings_are_sent_and_pong_delays_recorded() -> None:
    async with conversation(FAST) as (client, server):
        await client.until(lambda: len(client.of_type("ping")) >= 2, timeout_s=3)
        await asyncio.sleep(0.1)
    pings = client.of_type("ping")
    assert pings[1]["ping_event"]["event_id"] > pings[0]["ping_event"]["event_id"]
    assert pings[1]["ping_event"]["ping_ms"] is not None
    record = only_record(server)
    assert len(record.pong_delays_ms) >= 2
    assert not any("pong" in violation for violation in record.violations)


async def test_missing_pong_is_a_violation() -> None:
    async with conversation(FAST, auto_pong=False) as (client, server):
        await client.until(lambda: len(client.of_type("ping")) >= 2, timeout_s=3)
    assert any("no pong for ping" in violation for violation in only_record(server).violations)


async def test_whole_dialogue_turn_by_turn_ends_with_end_call_and_1000() -> None:
    async with conversation(FAST) as (client, server):
        for turn, clip in enumerate(("person_confirm", "person_bill", "person_visit"), start=1):
            await client.agent_done_speaking(turn)
            client.say(speech(clip, 500))
        await asyncio.wait_for(client.closed.wait(), timeout=6)
    responses = [
        m["agent_response_event"]["agent_response"] for m in client.of_type("agent_response")
    ]
    assert len(responses) == 4
    assert "electricity bill" in responses[1]
    assert "Thanks Maria" in responses[3]
    transcripts = [
        m["user_transcription_event"]["user_transcript"] for m in client.of_type("user_transcript")
    ]
    assert transcripts == [
        "Yes, speaking. Sure, I have a minute.",
        "It's about a hundred and fifty dollars a month.",
        "Tuesday works for me.",
    ]
    (tool,) = client.of_type("agent_tool_response")
    assert tool["agent_tool_response"]["tool_name"] == "end_call"
    last_audio_index = max(i for i, t in enumerate(client.types) if t == "audio")
    assert client.types.index("agent_tool_response") < last_audio_index
    assert client.ws.close_code == 1000
    assert client.invalid == []
    record = only_record(server)
    assert record.collected == {
        "interested": True,
        "monthly_bill": 150,
        "visit_date": next_tuesday().isoformat(),
        "lead_status": "Qualified",
    }
    assert record.termination_reason == "end_call tool was called."
    assert record.call_successful
    assert [entry.role for entry in record.transcript] == ["agent", "user"] * 3 + ["agent"]
    assert len(record.turn_latencies_s) == 3
    # the turn ends after 300 ms of quiet; then 50 ms of "thinking"
    assert all(0.25 <= latency <= 1.2 for latency in record.turn_latencies_s)
    assert record.violations == []


async def test_event_ids_only_grow_and_audio_carries_its_turns_id() -> None:
    async with conversation(FAST) as (client, _):
        await client.agent_done_speaking(1)
        client.say(speech("person_confirm", 500))
        await client.agent_done_speaking(2)
    ids = [m["agent_response_event"]["event_id"] for m in client.of_type("agent_response")]
    assert ids[0] < ids[1]
    audio_ids = {m["audio_event"]["event_id"] for m in client.of_type("audio")}
    assert audio_ids == set(ids)


async def test_silence_alone_is_not_a_caller_turn() -> None:
    async with conversation(FAST) as (client, server):
        await client.agent_done_speaking(1)
        await asyncio.sleep(0.6)
    assert "user_transcript" not in client.types
    assert only_record(server).caller_turns == []


async def test_talking_over_the_agent_interrupts_it_and_it_repeats() -> None:
    config = replace(FAST, clip_max_ms=2000, greeting_interruptible=True)
    async with conversation(config) as (client, server):
        await client.until(lambda: "audio" in client.types)
        await asyncio.sleep(0.4)
        client.say(speech("person_interrupt", 500))
        await client.until(lambda: len(client.of_type("agent_response")) >= 2, timeout_s=4)
    (interruption,) = client.of_type("interruption")
    greeting_id = client.of_type("agent_response")[0]["agent_response_event"]["event_id"]
    assert interruption["interruption_event"]["event_id"] == greeting_id
    cut = client.types.index("interruption")
    later_greeting_audio = [
        m
        for _, m in client.messages[cut:]
        if m["type"] == "audio" and m["audio_event"]["event_id"] <= greeting_id
    ]
    assert later_greeting_audio == []
    repeat = client.of_type("agent_response")[1]["agent_response_event"]["agent_response"]
    assert repeat == config.repeat.text
    record = only_record(server)
    assert record.interruptions == 1
    assert record.sent_turns[0].interrupted
    assert len(record.sent_turns[0].audio) < len(speech("agent_greeting", 2000))
    assert record.caller_turns[0].outcome == "interrupted"
    assert record.collected == {}


async def test_without_interruption_client_event_the_agent_talks_on() -> None:
    events = ("audio", "agent_response", "user_transcript", "conversation_initiation_metadata")
    config = replace(FAST, clip_max_ms=1500, greeting_interruptible=True, client_events=events)
    async with conversation(config) as (client, server):
        await client.until(lambda: "audio" in client.types)
        await asyncio.sleep(0.2)
        client.say(speech("person_hello", 300))
        await client.until(lambda: "user_transcript" in client.types, timeout_s=3)
    assert "interruption" not in client.types
    assert "ping" not in client.types
    record = only_record(server)
    assert record.caller_turns[0].outcome == "overlap"
    assert not record.sent_turns[0].interrupted
    assert len(client.of_type("agent_response")) == 1


async def test_hello_over_the_greeting_neither_interrupts_nor_answers() -> None:
    config = replace(FAST, clip_max_ms=1500)
    async with conversation(config) as (client, server):
        client.say(speech("person_hello", 400))
        await client.until(lambda: "user_transcript" in client.types, timeout_s=3)
    assert "interruption" not in client.types
    transcript = client.of_type("user_transcript")[0]["user_transcription_event"]
    assert transcript["user_transcript"] == "Hello?"
    assert len(client.of_type("agent_response")) == 1
    assert only_record(server).caller_turns[0].outcome == "overlap"


async def test_ulaw_8000_output_decodes_to_the_clip() -> None:
    config = replace(FAST, agent_output_audio_format="ulaw_8000", clip_max_ms=600)
    async with conversation(config) as (client, _):
        await client.agent_done_speaking(1)
    audio = b"".join(
        base64.b64decode(m["audio_event"]["audio_base_64"]) for m in client.of_type("audio")
    )
    decoded = np.frombuffer(ulaw_decode(audio), dtype="<i2").astype(np.float64)
    reference_pcm = Converter(PCM_16K, AudioFormat("pcm", 8000), quality="HQ").convert(
        speech("agent_greeting", 600), last=True
    )
    reference = np.frombuffer(reference_pcm, dtype="<i2").astype(np.float64)
    assert len(audio) == len(reference) == 8000 * 600 // 1000
    correlation = float(
        np.dot(decoded, reference)
        / math.sqrt(np.dot(decoded, decoded) * np.dot(reference, reference))
    )
    assert correlation > 0.99


async def test_received_audio_is_kept_as_16k_pcm_whatever_the_input_format() -> None:
    config = replace(FAST, user_input_audio_format="ulaw_8000")
    async with conversation(config) as (client, server):
        await client.agent_done_speaking(1)
        client.say(speech("person_confirm", 500))
        await client.until(lambda: "user_transcript" in client.types, timeout_s=3)
    record = only_record(server)
    assert record.caller_turns[0].outcome == "answered"
    received = np.frombuffer(record.received_audio, dtype="<i2")
    assert len(received) > 16000 * 0.5
    assert np.abs(received).max() > 3000


async def test_no_user_audio_for_the_input_timeout_closes_1002() -> None:
    config = replace(FAST, input_timeout_s=0.3)
    async with conversation(config, stream=False) as (client, server):
        await asyncio.wait_for(client.closed.wait(), timeout=3)
    assert client.ws.close_code == 1002
    assert client.of_type("error")[0]["error_event"]["error_type"] == "transport_receive_timeout"
    assert only_record(server).termination_reason == "input timeout"


@pytest.mark.parametrize("code", [1008, 1011])
async def test_refusing_agent_sends_error_and_closes_right_after_initiation(code: int) -> None:
    async with conversation(replace(FAST, refuse_with=code), stream=False) as (client, _):
        await client.closed.wait()
    assert client.types == ["error"]
    assert client.ws.close_code == code


async def test_drop_after_closes_1011_mid_call() -> None:
    async with conversation(replace(FAST, drop_after_s=0.3)) as (client, server):
        await asyncio.wait_for(client.closed.wait(), timeout=3)
    assert "agent_response" in client.types
    assert client.ws.close_code == 1011
    assert only_record(server).closed_by == "agent"


async def test_client_tool_call_expects_a_result() -> None:
    config = replace(FAST, client_tool=ClientTool("lookup_slot", {"day": "tuesday"}, timeout_s=0.3))
    async with conversation(config) as (client, server):
        await client.until(lambda: "client_tool_call" in client.types)
        call = client.of_type("client_tool_call")[0]["client_tool_call"]
        await client.ws.send(
            json.dumps(
                {
                    "type": "client_tool_result",
                    "tool_call_id": call["tool_call_id"],
                    "result": "10:00",
                    "is_error": False,
                }
            )
        )
        await asyncio.sleep(0.4)
    record = only_record(server)
    assert call["parameters"] == {"day": "tuesday"}
    assert record.tool_results[0]["result"] == "10:00"
    assert record.violations == []


async def test_unanswered_client_tool_call_is_a_violation() -> None:
    config = replace(FAST, client_tool=ClientTool("lookup_slot", timeout_s=0.2))
    async with conversation(config) as (client, server):
        await client.until(lambda: "client_tool_call" in client.types)
        await asyncio.sleep(0.4)
    assert any("client_tool_result" in v for v in only_record(server).violations)


async def test_contextual_updates_and_user_messages_are_recorded() -> None:
    async with conversation(FAST) as (client, server):
        await client.until(lambda: "agent_response" in client.types)
        await client.ws.send(
            json.dumps({"type": "contextual_update", "text": "DTMF key pressed: 3"})
        )
        await client.ws.send(json.dumps({"type": "user_message", "text": "call me later"}))
        await asyncio.sleep(0.1)
    record = only_record(server)
    assert record.dtmf_updates == ["DTMF key pressed: 3"]
    assert record.user_messages == ["call me later"]


async def test_server_refuses_a_bad_conversation_signature_and_reports_ended_conversations() -> (
    None
):
    ended: list[ConversationRecord] = []

    def check(signature: str | None, agent_id: str | None) -> bool:
        return signature == "good" and agent_id == "agent_sandbox"

    async with serve_agent(
        "127.0.0.1", 0, FAST, check_signature=check, on_conversation_end=ended.append
    ) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.url + "?agent_id=agent_sandbox&conversation_signature=bad"):
                pass
        assert refused.value.response.status_code == 403
        async with connect(
            server.url + "?agent_id=agent_sandbox&conversation_signature=good"
        ) as ws:
            await ws.send(json.dumps(initiation()))
            metadata = json.loads(await ws.recv())
        assert metadata["type"] == "conversation_initiation_metadata"
        for _ in range(100):
            if ended:
                break
            await asyncio.sleep(0.01)
    assert [record.conversation_id for record in ended] == [
        metadata["conversation_initiation_metadata_event"]["conversation_id"]
    ]
    assert ended[0].closed_by == "client"


def test_next_tuesday_is_strictly_after_today() -> None:
    assert next_tuesday(date(2026, 11, 21)) == date(2026, 11, 24)  # a Saturday
    assert next_tuesday(date(2026, 11, 24)) == date(2026, 12, 1)  # a Tuesday


def test_config_refuses_an_unknown_audio_format() -> None:
    with pytest.raises(ValueError, match="pcm_11025"):
        AgentConfig(agent_output_audio_format="pcm_11025")
