"""How calls end: the agent ends, the caller hangs up, the agent refuses or drops."""

from __future__ import annotations

import asyncio
import time

from .conftest import MakeSession, StartBridge
from .peers import AgentCall, AgentPeer, PhoneLeg, tone


async def test_agent_end_call_plays_queued_audio_before_hanging_up(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    goodbye = tone(16000, 500, 2222)  # 25 frames, queued in one burst

    async def agent(call: AgentCall) -> None:
        await call.send(
            {
                "type": "agent_tool_response",
                "agent_tool_response": {
                    "tool_name": "end_call",
                    "tool_call_id": "tc_end",
                    "tool_type": "system",
                    "is_error": False,
                    "is_called": True,
                    "event_id": 9,
                },
            }
        )
        await call.send_audio(goodbye, event_id=9)
        await call.ws.close(1000, "Agent ended the call")

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(1500, until_closed=True)
        await leg.closed()
        await bridge.settled()

    played = b"".join(leg.audio_frames())
    # All of it, then a short tail of silence (the far end's buffer plays out), then hang-up.
    assert played[: len(goodbye)] == goodbye
    assert 0 < len(played) - len(goodbye) <= 640 * 25 and not played[len(goodbye) :].strip(b"\0")
    (hangup_at, call_id) = bridge.hangups[0]
    assert call_id == "infobip-call-1"
    last_frame_at = [t for t, m in leg.received if isinstance(m, bytes)][-1]
    assert hangup_at >= last_frame_at - 0.005
    assert leg.ws.close_code == 1000
    stored = bridge.session(session.session_id).bridge
    assert stored["end_reason"] == "agent_ended"
    assert stored["end_call_requested"] is True
    assert stored["agent_close"]["code"] == 1000


async def test_caller_hanging_up_closes_the_agent_at_once(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(200)
        hung_up_at = time.monotonic()
        await leg.hang_up()
        await bridge.settled()
        call = peer.calls[0]
        await call.wait_for(lambda: call.closed_at is not None)

    assert call.closed_at is not None and call.closed_at - hung_up_at < 0.3
    assert call.ws.close_code == 1000
    assert bridge.hangups == []  # Infobip ended it; nothing to hang up
    stored = bridge.session(session.session_id)
    assert stored.bridge["end_reason"] == "caller_hung_up"
    assert stored.conversation_id == "conv_test_1"


async def test_agent_refusing_the_connection_ends_the_call_cleanly(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with AgentPeer(refuse_with=429) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(500, until_closed=True)
        await leg.closed()
        await bridge.settled()

    assert leg.ws.close_code == 1000
    assert [call_id for _, call_id in bridge.hangups] == ["infobip-call-1"]
    stored = bridge.session(session.session_id).bridge
    assert stored["end_reason"] == "agent_unavailable"
    assert "429" in stored["end_detail"]


async def test_agent_error_close_is_recorded_with_its_reason(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def agent(call: AgentCall) -> None:
        await call.send(
            {
                "type": "error",
                "error_event": {
                    "code": 1002,
                    "error_type": "llm_timeout",
                    "message": "LLM response took over 20 seconds",
                },
            }
        )
        await call.ws.close(1002, "llm timeout")

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(500, until_closed=True)
        await leg.closed()
        await bridge.settled()

    stored = bridge.session(session.session_id)
    assert stored.bridge["end_reason"] == "agent_error"
    assert "1002" in stored.bridge["end_detail"]
    assert "LLM response took over 20 seconds" in stored.bridge["end_detail"]
    assert stored.conversation_id == "conv_test_1"
    assert len(bridge.hangups) == 1


async def test_agent_dropping_without_a_close_frame_ends_the_call(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def agent(call: AgentCall) -> None:
        await asyncio.sleep(0.1)
        call.ws.transport.abort()

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(600, until_closed=True)
        await leg.closed()
        await bridge.settled()

    stored = bridge.session(session.session_id).bridge
    assert stored["end_reason"] == "agent_error"
    assert stored["agent_close"]["code"] == 1006
    assert len(bridge.hangups) == 1


async def test_signed_url_failure_ends_the_call_without_an_agent(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    bridge = await start_bridge("ws://127.0.0.1:9/closed-port")
    leg = await PhoneLeg.open(bridge.url, session.custom)
    await leg.silence(500, until_closed=True)
    await leg.closed()
    await bridge.settled()

    stored = bridge.session(session.session_id).bridge
    assert stored["end_reason"] == "agent_unavailable"
    assert len(bridge.hangups) == 1


async def test_hangup_when_infobip_no_longer_knows_the_call_is_recorded(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def agent(call: AgentCall) -> None:
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url, hangup_result=False)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(400, until_closed=True)
        await leg.closed()
        await bridge.settled()

    assert bridge.session(session.session_id).bridge["hangup"] == "already over"
