"""Whole calls through the bridge on loopback sockets: audio both ways, the agent's protocol,
and every way a call ends."""

from __future__ import annotations

import asyncio
import json
import time

from callflow.models import SessionStatus

from .conftest import MakeSession, StartBridge
from .peers import AgentCall, AgentPeer, PhoneLeg, tone


async def test_happy_path_relays_both_ways_and_records_the_call(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    caller_audio = tone(16000, 400, 1200)
    greeting = tone(16000, 200, 2500)

    async def agent(call: AgentCall) -> None:
        await call.send_audio(greeting, event_id=1)
        await call.send(
            {
                "type": "agent_response",
                "agent_response_event": {"agent_response": "Hello Ada", "event_id": 1},
            }
        )
        await call.wait_for(lambda: len(call.audio) >= len(caller_audio))
        await call.send(
            {
                "type": "user_transcript",
                "user_transcription_event": {"user_transcript": "hi there", "event_id": 2},
            }
        )
        await asyncio.sleep(0.05)
        await call.ws.close(1000, "conversation ended")

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.play(caller_audio)
        await leg.silence(600, until_closed=True)
        await leg.closed()
        await bridge.settled()

    call = peer.calls[0]
    assert call.contract_errors == []
    assert call.initiation["dynamic_variables"] == {
        "First_Name": "Ada",
        "Company": "Analytical Engines",
        "score": 7,
    }
    assert bytes(call.audio[: len(caller_audio)]) == caller_audio
    played = b"".join(leg.audio_frames())
    assert played[: len(greeting)] == greeting
    assert [call_id for _, call_id in bridge.hangups] == ["infobip-call-1"]
    stored = bridge.session(session.session_id)
    assert stored.conversation_id == "conv_test_1"
    assert stored.bridge["end_reason"] == "agent_ended"
    assert stored.bridge["formats"]["converting"] is False
    assert stored.bridge["hangup"] == "hung up"
    assert [(t["role"], t["text"]) for t in stored.transcript] == [
        ("agent", "Hello Ada"),
        ("user", "hi there"),
    ]
    events = [entry.event for entry in stored.timeline]
    assert "agent connected" in events and events[-1] == "bridge ended"
    assert stored.status is SessionStatus.IN_CALL  # the bridge records, the workflow advances


async def test_caller_audio_before_the_agent_is_ready_is_kept(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    first_words = b"".join(tone(16000, 20, 1000 + i) for i in range(20))  # 400 ms, each distinct

    async def agent(call: AgentCall) -> None:
        await call.wait_for(lambda: len(call.audio) >= len(first_words))
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent, metadata_delay_s=0.3) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.play(first_words)
        await leg.silence(400, until_closed=True)
        await leg.closed()
        await bridge.settled()

    assert bytes(peer.calls[0].audio[: len(first_words)]) == first_words


async def test_early_audio_is_bounded(start_bridge: StartBridge, make_session: MakeSession) -> None:
    frames = [tone(16000, 20, 1000 + i) for i in range(20)]

    async def agent(call: AgentCall) -> None:
        await call.wait_for(lambda: len(call.audio) >= 5 * 640)
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent, metadata_delay_s=0.45) as peer:
        bridge = await start_bridge(peer.url, bridge_max_early_audio_ms=100)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.play(b"".join(frames))
        await leg.silence(300, until_closed=True)
        await leg.closed()
        await bridge.settled()

    received = bytes(peer.calls[0].audio)
    # Only the newest 100 ms of what was said before the agent was ready survive.
    assert received[:640] != frames[0]
    assert bridge.session(session.session_id).bridge["early_frames_dropped"] > 0


async def test_agent_audio_is_paced_one_frame_out_per_frame_in(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    speech = tone(16000, 300, 3000)  # 15 frames, sent to the bridge in one burst

    async def agent(call: AgentCall) -> None:
        await call.send_audio(speech, event_id=1)
        await call.ws.wait_closed()

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await asyncio.sleep(0.1)  # the agent's burst is queued before the caller's clock runs
        await leg.silence(800)
        await asyncio.sleep(0.1)
        await leg.hang_up()
        await bridge.settled()

    frames = leg.audio_frames()
    assert all(len(frame) == 640 for frame in frames)
    # The agent's first frame goes out at once (it starts Infobip's playback, before any caller
    # frame); after it, one out for each frame in: never more than that one frame ahead.
    times = [t for t, m in leg.received if isinstance(m, bytes)]
    assert times[0] < min(leg.sent_at)
    for index, at in enumerate(times):
        assert index <= sum(1 for sent in leg.sent_at if sent <= at)
    assert leg.sent_frames - 1 <= len(frames) <= leg.sent_frames + 1
    assert b"".join(frames[:15]) == speech
    assert all(frame == bytes(640) for frame in frames[15:])  # silence, not gaps
    assert len(frames[15:]) >= 20
    # 15 frames of speech took 15 caller frames, i.e. about real time, not a burst.
    assert times[14] - times[0] >= 0.25


async def test_barge_in_clears_queue_and_drops_stale_audio(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    long_turn = tone(16000, 2000, 3000)
    stale = tone(16000, 200, 3333)
    answer = tone(16000, 200, 4444)

    async def agent(call: AgentCall) -> None:
        await call.send_audio(long_turn, event_id=5)
        await asyncio.sleep(0.2)
        await call.send({"type": "interruption", "interruption_event": {"event_id": 5}})
        await call.send_audio(stale, event_id=5)
        await call.send_audio(answer, event_id=6)
        await call.ws.wait_closed()

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(800)
        await leg.hang_up()
        await bridge.settled()

    kinds = []
    for _, message in leg.received:
        if isinstance(message, str):
            kinds.append(json.loads(message)["action"])
        elif message == tone(16000, 20, 3000):
            kinds.append("turn")
        elif message == tone(16000, 20, 3333):
            kinds.append("stale")
        elif message == tone(16000, 20, 4444):
            kinds.append("answer")
    assert kinds.count("clear") == 1
    assert "stale" not in kinds
    cleared = kinds.index("clear")
    assert 0 < kinds.count("turn") < 100 and "turn" not in kinds[cleared:]
    assert kinds[cleared + 1 :] == ["answer"] * 10
    assert bridge.session(session.session_id).bridge["clears"] == 1


async def test_ping_is_answered_with_pong_at_once(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    answered: list[float] = []

    async def agent(call: AgentCall) -> None:
        sent = time.monotonic()
        await call.send({"type": "ping", "ping_event": {"event_id": 7, "ping_ms": 40}})
        await call.wait_for(lambda: bool(call.of_type("pong")))
        answered.append(time.monotonic() - sent)
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(400, until_closed=True)
        await leg.closed()
        await bridge.settled()

    call = peer.calls[0]
    assert call.of_type("pong") == [{"type": "pong", "event_id": 7}]
    assert call.contract_errors == []
    assert answered[0] < 0.1


async def test_unknown_agent_messages_are_ignored_and_tool_calls_get_an_error(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def agent(call: AgentCall) -> None:
        await call.send({"type": "vad_score", "vad_score_event": {"vad_score": 0.4}})
        await call.send({"type": "something_new", "payload": [1, 2]})
        await call.ws.send("not json at all")
        await call.send(
            {
                "type": "client_tool_call",
                "client_tool_call": {
                    "tool_name": "open_calendar",
                    "tool_call_id": "tc_1",
                    "parameters": {"day": "monday"},
                    "event_id": 3,
                },
            }
        )
        await call.wait_for(lambda: bool(call.of_type("client_tool_result")))
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(400, until_closed=True)
        await leg.closed()
        await bridge.settled()

    call = peer.calls[0]
    (result,) = call.of_type("client_tool_result")
    assert result["tool_call_id"] == "tc_1" and result["is_error"] is True
    assert "open_calendar" in result["result"]
    assert call.contract_errors == []
    assert bridge.session(session.session_id).bridge["end_reason"] == "agent_ended"


async def test_configured_tool_handler_answers_client_tool_calls(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def handler(name: str, parameters: dict[str, object]) -> str:
        return f"{name}: {parameters['day']} 10:00 is free"

    async def agent(call: AgentCall) -> None:
        await call.send(
            {
                "type": "client_tool_call",
                "client_tool_call": {
                    "tool_name": "open_calendar",
                    "tool_call_id": "tc_2",
                    "parameters": {"day": "monday"},
                    "event_id": 3,
                },
            }
        )
        await call.wait_for(lambda: bool(call.of_type("client_tool_result")))
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url, tool_handler=handler)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(400, until_closed=True)
        await leg.closed()
        await bridge.settled()

    (result,) = peer.calls[0].of_type("client_tool_result")
    assert result == {
        "type": "client_tool_result",
        "tool_call_id": "tc_2",
        "result": "open_calendar: monday 10:00 is free",
        "is_error": False,
    }


async def test_agent_correction_replaces_the_kept_agent_line(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def agent(call: AgentCall) -> None:
        await call.send(
            {
                "type": "agent_response",
                "agent_response_event": {"agent_response": "Your bill is due on", "event_id": 1},
            }
        )
        await call.send(
            {
                "type": "agent_response_correction",
                "agent_response_correction_event": {
                    "original_agent_response": "Your bill is due on",
                    "corrected_agent_response": "Your bill",
                    "event_id": 1,
                },
            }
        )
        await asyncio.sleep(0.05)
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(300, until_closed=True)
        await leg.closed()
        await bridge.settled()

    transcript = bridge.session(session.session_id).transcript
    assert [(t["role"], t["text"]) for t in transcript] == [("agent", "Your bill")]


async def test_transcript_kept_on_the_session_is_bounded(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def agent(call: AgentCall) -> None:
        for n in range(12):
            await call.send(
                {
                    "type": "user_transcript",
                    "user_transcription_event": {"user_transcript": f"line {n}", "event_id": n},
                }
            )
        await asyncio.sleep(0.05)
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url, bridge_transcript_limit=5)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(300, until_closed=True)
        await leg.closed()
        await bridge.settled()

    transcript = bridge.session(session.session_id).transcript
    assert [t["text"] for t in transcript] == [f"line {n}" for n in range(7, 12)]
