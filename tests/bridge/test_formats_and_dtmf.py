"""Format pairs the bridge converts between, and key presses reaching the agent."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from callflow_bridge.audio import AudioFormat, ulaw_decode, ulaw_encode

from .conftest import MakeSession, StartBridge
from .peers import AgentCall, AgentPeer, PhoneLeg, sine

RESAMPLER_DELAY_S = 0.06


def _pcm(audio: bytes, fmt: AudioFormat) -> np.ndarray:
    data = ulaw_decode(audio) if fmt.codec == "ulaw" else audio
    return np.frombuffer(data, dtype="<i2").astype(np.float64)


def _dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


@pytest.mark.parametrize(
    ("phone_rate", "agent_in", "agent_out"),
    [
        (8000, "pcm_16000", "pcm_16000"),
        (8000, "ulaw_8000", "ulaw_8000"),
        (16000, "ulaw_8000", "pcm_24000"),
        (24000, "pcm_16000", "pcm_44100"),
        (32000, "pcm_48000", "pcm_22050"),
    ],
)
async def test_each_format_pair_is_converted_both_ways(
    start_bridge: StartBridge,
    make_session: MakeSession,
    phone_rate: int,
    agent_in: str,
    agent_out: str,
) -> None:
    in_fmt, out_fmt = AudioFormat.parse(agent_in), AudioFormat.parse(agent_out)
    reply = sine(out_fmt.rate, 300, hz=600)
    if out_fmt.codec == "ulaw":
        reply = ulaw_encode(reply)
    said = sine(phone_rate, 400, hz=440)

    async def agent(call: AgentCall) -> None:
        await call.send_audio(reply, event_id=1)
        await call.ws.wait_closed()

    session = make_session()
    async with AgentPeer(agent, input_format=agent_in, output_format=agent_out) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom, rate=phone_rate)
        await leg.play(said)
        await leg.silence(300)
        await leg.hang_up()
        await bridge.settled()

    heard = _pcm(bytes(peer.calls[0].audio), in_fmt)
    speech = heard[: in_fmt.rate * 400 // 1000]
    # All of it arrives, less at most the resampler's streaming delay (tens of ms).
    assert 0.7 - RESAMPLER_DELAY_S <= len(heard) / in_fmt.rate <= 0.7
    assert _dominant_hz(speech[in_fmt.rate // 20 :], in_fmt.rate) == pytest.approx(440, abs=15)

    frames = leg.audio_frames()
    assert {len(frame) for frame in frames} == {phone_rate * 2 // 50}
    played = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float64)
    voiced = played[np.abs(played) > 500]
    assert 0.3 - RESAMPLER_DELAY_S <= len(voiced) / phone_rate <= 0.3
    assert _dominant_hz(played[: phone_rate * 300 // 1000], phone_rate) == pytest.approx(
        600, abs=15
    )
    stored = bridge.session(session.session_id).bridge
    assert stored["formats"] == {
        "phone": f"pcm_{phone_rate}",
        "agent_input": agent_in,
        "agent_output": agent_out,
        "converting": True,
    }
    assert stored["metrics"]["conversions"] > 0
    assert peer.calls[0].contract_errors == []


async def test_agent_format_that_cannot_be_served_ends_the_call(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with AgentPeer(output_format="opus_48000") as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(400, until_closed=True)
        await leg.closed()
        await bridge.settled()

    stored = bridge.session(session.session_id)
    assert stored.bridge["end_reason"] == "unsupported_format"
    assert "opus_48000" in stored.bridge["end_detail"]
    assert stored.conversation_id == "conv_test_1"
    assert len(bridge.hangups) == 1


async def test_matching_formats_are_relayed_without_conversion(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    said = sine(8000, 200)

    async def agent(call: AgentCall) -> None:
        await call.wait_for(lambda: len(call.audio) >= len(said))
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent, input_format="pcm_8000", output_format="pcm_8000") as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom, rate=8000)
        await leg.play(said)
        await leg.silence(300, until_closed=True)
        await leg.closed()
        await bridge.settled()

    assert bytes(peer.calls[0].audio[: len(said)]) == said
    assert bridge.session(session.session_id).bridge["metrics"]["conversions"] == 0


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("contextual_update", {"type": "contextual_update"}),
        ("user_message", {"type": "user_message", "text": "7"}),
    ],
)
async def test_dtmf_reaches_the_agent(
    start_bridge: StartBridge,
    make_session: MakeSession,
    mode: str,
    expected: dict[str, str],
) -> None:
    async def agent(call: AgentCall) -> None:
        await call.wait_for(lambda: bool(call.of_type(expected["type"])))
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent, metadata_delay_s=0.15) as peer:
        bridge = await start_bridge(peer.url, bridge_dtmf_mode=mode)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        # Pressed while the agent is still connecting: kept and sent once it is ready.
        await leg.ws.send(json.dumps({"event": "websocket:dtmf", "digit": "7", "duration": 250}))
        await leg.silence(500, until_closed=True)
        await leg.closed()
        await bridge.settled()

    call = peer.calls[0]
    (message,) = call.of_type(expected["type"])
    assert expected.items() <= message.items()
    assert "7" in message["text"]
    assert call.contract_errors == []


async def test_dtmf_is_not_forwarded_when_ignored(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url, bridge_dtmf_mode="ignore")
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(100)
        await leg.ws.send(json.dumps({"event": "websocket:dtmf", "digit": "1", "duration": 250}))
        await leg.silence(200)
        await asyncio.sleep(0.05)
        await leg.hang_up()
        await bridge.settled()

    assert [m for m in peer.calls[0].messages if "user_audio_chunk" not in m] == []
