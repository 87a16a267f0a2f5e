"""Who may join: the token, the session and its phase, and what the phone leg may send."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from callflow.models import SessionStatus

from .conftest import PATH_SECRET, MakeSession, StartBridge
from .peers import AgentCall, AgentPeer, PhoneLeg, tone


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait for ``condition`` (the bridge's work runs on the same loop, at its own pace under
    load); fail after ``timeout_s`` rather than assert on a fixed sleep."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _refused(url: str, hello: object) -> tuple[int | None, str]:
    """The close code and reason of a stream that should be refused (a stream that is admitted
    instead fails the test: it is not closed within the time)."""
    async with connect(url, open_timeout=3) as ws:
        await ws.send(hello if isinstance(hello, str | bytes) else json.dumps(hello))
        await asyncio.wait_for(ws.wait_closed(), 3)
        return ws.close_code, ws.close_reason or ""


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: {**s.custom, "bridge_token": "guessed"}, id="wrong-token"),
        pytest.param(
            lambda s: {k: v for k, v in s.custom.items() if k != "bridge_token"},
            id="missing-token",
        ),
        pytest.param(lambda s: {**s.custom, "session_id": "0" * 32}, id="unknown-session"),
    ],
)
async def test_stream_without_valid_credentials_is_refused_before_the_agent(
    start_bridge: StartBridge, make_session: MakeSession, tamper: object
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        custom = tamper(session)  # type: ignore[operator]
        hello = {"event": "websocket:connected", "content-type": "audio/l16;rate=16000", **custom}
        code, _ = await _refused(bridge.url, hello)

    assert code == 1008
    assert bridge.signed_urls == 0 and peer.connections == 0
    assert bridge.server.active_calls == 0


async def test_a_token_admits_one_stream_and_a_second_is_refused_before_the_agent(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    """The second stream presents the live call's own session id and token: it is refused
    with the answer a wrong token gets, no agent is contacted for it, and the call goes on."""
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(100)
        await _until(lambda: peer.connections == 1)
        hello = {"event": "websocket:connected", **session.custom}
        code, reason = await _refused(bridge.url, hello)
        await leg.silence(100)
        still_live = leg.ws.close_code is None and bridge.server.active_calls == 1
        await leg.hang_up()
        await bridge.settled()

    assert (code, reason) == (1008, "unknown session or bad token")
    assert still_live
    assert peer.connections == 1 and bridge.signed_urls == 1
    stored = bridge.session(session.session_id)
    assert stored.conversation_id == "conv_test_1"
    assert bridge.store.session_for_conversation("conv_test_1") == session.session_id
    assert [e.event for e in stored.timeline].count("media stream admitted") == 1


async def test_a_stream_after_the_first_ended_is_refused(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    """Once used, the token stays used: a stream replaying it after the call's own stream
    ended (the session is still live until Infobip reports the end) is refused."""
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(100)
        await leg.hang_up()
        await bridge.settled()
        hello = {"event": "websocket:connected", **session.custom}
        code, reason = await _refused(bridge.url, hello)

    assert (code, reason) == (1008, "unknown session or bad token")
    assert peer.connections == 1 and bridge.signed_urls == 1


async def test_the_session_keeps_the_conversation_it_has(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    """A session's conversation is the first one announced: a later one is neither stored nor
    indexed, so its post-call webhook cannot find the session."""
    session = make_session(conversation_id="conv_first")
    async with AgentPeer(conversation_id="conv_later") as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await _until(lambda: peer.connections == 1)
        await leg.silence(100)
        await leg.hang_up()
        await bridge.settled()

    assert peer.connections == 1
    stored = bridge.session(session.session_id)
    assert stored.conversation_id == "conv_first"
    assert stored.bridge["end_reason"] == "caller_hung_up"
    assert bridge.store.session_for_conversation("conv_later") is None


@pytest.mark.parametrize(
    "status", [SessionStatus.CALL_ENDED, SessionStatus.COLLECTING, SessionStatus.COMPLETED]
)
async def test_stream_for_a_finished_session_is_refused(
    start_bridge: StartBridge, make_session: MakeSession, status: SessionStatus
) -> None:
    session = make_session(status=status)
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        hello = {"event": "websocket:connected", **session.custom}
        code, reason = await _refused(bridge.url, hello)

    assert code == 1008 and status.value in reason
    assert peer.connections == 0


@pytest.mark.parametrize("status", [SessionStatus.DIALING, SessionStatus.RINGING])
async def test_stream_arriving_before_call_established_is_accepted(
    start_bridge: StartBridge, make_session: MakeSession, status: SessionStatus
) -> None:
    async def agent(call: AgentCall) -> None:
        await call.ws.close(1000)

    session = make_session(status=status)
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(300, until_closed=True)
        await leg.closed()
        await bridge.settled()

    assert peer.connections == 1
    assert bridge.session(session.session_id).conversation_id == "conv_test_1"


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(b"\x00\x01" * 320, id="audio-first"),
        pytest.param("{not json", id="not-json"),
        pytest.param({"event": "websocket:dtmf", "digit": "1"}, id="wrong-event"),
        pytest.param("x" * 20000, id="oversized-text"),
    ],
)
async def test_malformed_first_frame_is_refused(
    start_bridge: StartBridge, make_session: MakeSession, first: object
) -> None:
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        code, _ = await _refused(bridge.url, first)
    assert code == 1008 and peer.connections == 0


async def test_malformed_frames_mid_call_are_ignored(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    speech = tone(16000, 100, 1500)

    async def agent(call: AgentCall) -> None:
        await call.wait_for(lambda: len(call.audio) >= len(speech))
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.ws.send(b"\x01\x02\x03")  # odd length: not 16-bit PCM
        await leg.ws.send("{broken")
        await leg.ws.send(json.dumps({"event": "websocket:dtmf", "digit": "xyz"}))
        await leg.play(speech)
        await leg.silence(300, until_closed=True)
        await leg.closed()
        await bridge.settled()

    assert bytes(peer.calls[0].audio[: len(speech)]) == speech
    stored = bridge.session(session.session_id).bridge
    assert stored["malformed_frames"] == 3
    assert stored["end_reason"] == "agent_ended"


async def test_oversized_frame_ends_the_phone_leg_and_the_agent(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.silence(100)
        await leg.ws.send(bytes(200_000))
        await leg.closed()
        await bridge.settled()
        call = peer.calls[0]
        await call.wait_for(lambda: call.closed_at is not None)

    assert leg.ws.close_code == 1009
    stored = bridge.session(session.session_id).bridge
    assert stored["end_reason"] == "phone_leg_error"


async def test_unsupported_phone_rate_ends_the_call_with_its_reason(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom, content_type="audio/l16;rate=11025")
        await leg.closed()
        await bridge.settled()

    stored = bridge.session(session.session_id).bridge
    assert stored["end_reason"] == "unsupported_format"
    assert "11025" in stored["end_detail"]
    assert peer.connections == 0
    assert len(bridge.hangups) == 1


async def test_health_route_and_unknown_paths(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        base = f"http://127.0.0.1:{bridge.server.port}"
        async with httpx.AsyncClient(timeout=3) as http:
            health = await http.get(f"{base}/health")
            other = await http.get(f"{base}/not-{PATH_SECRET}")
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{bridge.server.port}/wrong", open_timeout=3):
                pass

    assert health.status_code == 200
    assert health.headers["content-type"] == "application/json"
    assert health.json() == {"status": "ok", "active_calls": 0}
    assert other.status_code == 404
    assert refused.value.response.status_code == 404


class _FailingStore:
    """A session store whose table is unreachable."""

    def get(self, session_id: str) -> None:
        raise ConnectionError("dynamodb unreachable")

    def claim_media_stream(
        self,
        session_id: str,
        token_hash: str,
        statuses: Collection[SessionStatus],
        *,
        found_in: str = "",
        first_frame: dict[str, object] | None = None,
    ) -> None:
        raise ConnectionError("dynamodb unreachable")

    def note_unmatched_media(self, shape: dict[str, object]) -> None:
        raise ConnectionError("dynamodb unreachable")

    def set_fields(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("nothing is written for a stream that was never admitted")

    def set_conversation(self, session_id: str, conversation_id: str) -> None:
        raise AssertionError("no conversation is kept for a stream that was never admitted")

    def index_conversation(self, conversation_id: str, session_id: str) -> bool:
        raise AssertionError("nothing is indexed for a stream that was never admitted")


async def test_session_store_failure_closes_1011_without_contacting_the_agent(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        bridge.server.store = _FailingStore()
        hello = {"event": "websocket:connected", **session.custom}
        code, reason = await _refused(bridge.url, hello)

    assert (code, reason) == (1011, "session store unavailable")
    assert peer.connections == 0 and bridge.signed_urls == 0
