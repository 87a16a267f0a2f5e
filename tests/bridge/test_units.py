"""The bridge's small parts on their own: pacing, frame parsing, formats, EMF, task protection."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import numpy as np
import pytest

from callflow_bridge import protocol
from callflow_bridge.audio import AudioFormat, Converter, UnsupportedFormat, rms_dbfs
from callflow_bridge.formats import CallFormats, phone_rate
from callflow_bridge.metrics import BridgeMetrics, CallMetrics, emf_document
from callflow_bridge.pacing import OutboundPacer
from callflow_bridge.protection import TaskProtection
from callflow_bridge.relay import SPEECH_DBFS, is_speech

FRAME = 640


def test_pacer_sends_nothing_before_the_agent_first_speaks() -> None:
    pacer = OutboundPacer(FRAME)
    assert pacer.tick(0.0).frame is None
    assert pacer.frames_sent == 0


def test_pacer_releases_one_frame_per_tick_then_silence() -> None:
    pacer = OutboundPacer(FRAME)
    pacer.push(b"\x01" * (FRAME * 2), now=0.0)
    first, second, third = (pacer.tick(1.0) for _ in range(3))
    assert first.frame == b"\x01" * FRAME and first.audio
    assert second.frame == b"\x01" * FRAME
    assert third.frame == bytes(FRAME) and not third.audio and not third.underrun


def test_pacer_counts_an_underrun_when_the_stream_is_late_mid_utterance() -> None:
    pacer = OutboundPacer(FRAME)
    pacer.push(b"\x01" * FRAME, now=0.0)
    pacer.tick(0.01)
    late = pacer.tick(0.02)  # audio arrived 20 ms ago and the queue is dry
    assert late.underrun and late.frame == bytes(FRAME)
    assert pacer.underruns == 1


def test_pacer_holds_a_partial_frame_while_more_is_coming_and_pads_it_at_the_end() -> None:
    pacer = OutboundPacer(FRAME)
    pacer.push(b"\x02" * (FRAME + 100), now=0.0)
    pacer.tick(0.01)
    held = pacer.tick(0.02)
    assert held.frame == bytes(FRAME) and pacer.queued_bytes == 100
    padded = pacer.tick(0.5)
    assert padded.frame == b"\x02" * 100 + bytes(FRAME - 100) and padded.audio


def test_pacer_clear_drops_everything_queued() -> None:
    pacer = OutboundPacer(FRAME)
    pacer.push(b"\x03" * FRAME * 10, now=0.0)
    assert pacer.clear() == FRAME * 10
    assert pacer.tick(1.0).frame == bytes(FRAME)


def test_pacer_queue_is_bounded() -> None:
    pacer = OutboundPacer(FRAME, bytes_per_second=32000)
    for _ in range(100):
        pacer.push(b"\x04" * 32000, now=0.0)
    assert pacer.queued_bytes == pacer.max_bytes
    assert pacer.dropped_bytes == 100 * 32000 - pacer.max_bytes


def test_pacer_compacts_its_buffer_as_it_plays() -> None:
    pacer = OutboundPacer(FRAME)
    pacer.push(b"\x05" * FRAME * 300, now=0.0)
    for _ in range(299):
        pacer.tick(1.0)
    assert len(pacer._buffer) < FRAME * 300 and pacer.queued_bytes == FRAME


def test_pacer_refuses_an_odd_frame_size() -> None:
    with pytest.raises(ValueError, match="even"):
        OutboundPacer(641)


def test_connected_frame_gives_session_token_and_format() -> None:
    hello = protocol.parse_connected(
        json.dumps(
            {
                "event": "websocket:connected",
                "content-type": "audio/l16;rate=8000",
                "session_id": "s1",
                "bridge_token": "t1",
                "attempt": "2",
            }
        )
    )
    assert (hello.session_id, hello.token, hello.content_type) == (
        "s1",
        "t1",
        "audio/l16;rate=8000",
    )
    assert "bridge_token" not in hello.custom and hello.custom["attempt"] == "2"


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (b"{}", "text"),
        ("[]", "not a websocket:connected"),
        ('{"event":"websocket:connected","bridge_token":"t"}', "session_id"),
        ('{"event":"websocket:connected","session_id":"s"}', "bridge_token"),
        ('{"event":"websocket:connected","session_id":"s","bridge_token":7}', "bridge_token"),
        (
            json.dumps(
                {"event": "websocket:connected", "session_id": "s" * 500, "bridge_token": "t"}
            ),
            "not a session id",
        ),
    ],
)
def test_bad_connected_frames_say_what_is_wrong(frame: str | bytes, why: str) -> None:
    with pytest.raises(protocol.BadFrame, match=why):
        protocol.parse_connected(frame)


@pytest.mark.parametrize(
    ("content_type", "rate"),
    [("audio/l16;rate=8000", 8000), ("audio/L16; rate=32000", 32000), ("", 16000)],
)
def test_phone_rate_comes_from_the_content_type(content_type: str, rate: int) -> None:
    assert phone_rate(content_type, 16000) == rate


@pytest.mark.parametrize("content_type", ["audio/pcmu;rate=8000", "audio/l16;rate=fast"])
def test_phone_content_types_that_cannot_be_served_are_refused(content_type: str) -> None:
    with pytest.raises(UnsupportedFormat):
        phone_rate(content_type, 16000)


def test_negotiation_refuses_unknown_agent_formats() -> None:
    with pytest.raises(UnsupportedFormat, match="mp3_44100"):
        CallFormats.negotiate(16000, "pcm_16000", "mp3_44100")
    with pytest.raises(UnsupportedFormat, match="11025"):
        CallFormats.negotiate(11025, "pcm_16000", "pcm_16000")


def test_identity_conversion_returns_the_same_bytes() -> None:
    formats = CallFormats.negotiate(16000, "pcm_16000", "pcm_16000")
    frame = bytes(range(256)) * 2
    assert formats.to_agent.convert(frame) is frame
    assert not formats.converting


def test_stream_converter_keeps_an_odd_byte_for_the_next_chunk() -> None:
    converter = Converter(AudioFormat("pcm", 16000), AudioFormat("pcm", 16000))
    assert converter.convert(b"\x01\x02\x03") == b"\x01\x02"
    assert converter.convert(b"\x04\x05") == b"\x03\x04"


def test_live_resampling_delay_stays_small() -> None:
    converter = Converter(AudioFormat("pcm", 8000), AudioFormat("pcm", 16000))
    out = sum(len(converter.convert(bytes(320))) for _ in range(25))  # 500 ms in
    assert out / 2 / 16000 >= 0.5 - 0.03


@pytest.mark.parametrize("level", [-60.0, -47.0, -43.0, -20.0])
def test_speech_detection_agrees_with_rms_dbfs(level: float) -> None:
    amplitude = 32768 * 10 ** (level / 20) * math.sqrt(2)
    frame = (amplitude * np.sin(np.arange(320) / 5)).astype("<i2").tobytes()
    assert is_speech(frame) == (rms_dbfs(frame) > SPEECH_DBFS)
    assert not is_speech(bytes(640))


def test_user_audio_chunk_is_the_contract_message() -> None:
    assert json.loads(protocol.user_audio_chunk(b"\x00\x01")) == {"user_audio_chunk": "AAE="}


def test_initiation_keeps_only_scalar_variables_and_adds_overrides() -> None:
    message = protocol.initiation(
        {"name": "Ada", "n": 3, "ok": True},
        {"agent": {"first_message": "Hi"}},
    )
    assert message == {
        "type": "conversation_initiation_client_data",
        "dynamic_variables": {"name": "Ada", "n": 3, "ok": True},
        "conversation_config_override": {"agent": {"first_message": "Hi"}},
    }
    assert "conversation_config_override" not in protocol.initiation({}, {})


def test_emf_document_shape() -> None:
    doc = json.loads(
        emf_document(
            "Callflow", [("TurnLatencyMs", "Milliseconds", [1.0] * 150)], {"service": "x"}, 5
        )
    )
    assert doc["_aws"] == {
        "Timestamp": 5,
        "CloudWatchMetrics": [
            {
                "Namespace": "Callflow",
                "Dimensions": [["service"]],
                "Metrics": [{"Name": "TurnLatencyMs", "Unit": "Milliseconds"}],
            }
        ],
    }
    assert len(doc["TurnLatencyMs"]) == 100  # EMF's per-document limit


def test_call_end_metrics_carry_the_reason_as_a_dimension() -> None:
    lines: list[str] = []
    call = CallMetrics(connect_time_ms=120.0, frames_relayed=50, underruns=1)
    BridgeMetrics("Callflow", lines.append).call_ended(call, "caller_hung_up")
    counts, ends = (json.loads(line) for line in lines)
    assert counts["FramesRelayed"] == 50 and counts["Underruns"] == 1
    assert "TurnLatencyMs" not in counts
    assert ends["reason"] == "caller_hung_up" and ends["CallEnds"] == 1


async def test_task_protection_follows_live_calls() -> None:
    bodies: list[dict[str, object]] = []

    def ecs_agent(request: httpx.Request) -> httpx.Response:
        assert request.method == "PUT"
        assert request.url.path == "/v4/task/task-protection/v1/state"
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"protection": {"ProtectionEnabled": True}})

    client = httpx.AsyncClient(transport=httpx.MockTransport(ecs_agent))
    protection = TaskProtection("http://169.254.170.2/v4/task", client)
    protection.want(True)
    await asyncio.sleep(0.05)
    protection.want(True)  # already protected: no request
    protection.want(False)
    await protection.aclose()
    assert bodies == [
        {"ProtectionEnabled": True, "ExpiresInMinutes": 60},
        {"ProtectionEnabled": False},
    ]


def test_task_protection_is_off_outside_ecs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECS_AGENT_URI", raising=False)
    assert TaskProtection.from_environment() is None
