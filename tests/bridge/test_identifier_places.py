"""Where a stream may carry its session id and token, and what happens when it carries none.

Infobip's placement of the identifiers is unconfirmed (PROVIDERS.md), so the bridge looks in every
plausible place; the token check is the same single-use claim whichever place they came from.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from callflow.models import media_identifier

from .conftest import Bridge, CallSession, MakeSession, StartBridge
from .peers import AgentPeer

HELLO = {"event": "websocket:connected", "content-type": "audio/l16;rate=16000"}

#: place -> (URL suffix, headers, extra frame keys) for a session
Placement = Callable[[CallSession], tuple[str, dict[str, str], dict[str, Any]]]

PLACEMENTS: dict[str, Placement] = {
    "top-level": lambda s: ("", {}, s.custom),
    "customData": lambda s: ("", {}, {"customData": s.custom}),
    "identifier": lambda s: ("", {}, {"identifier": media_identifier(s.session_id, s.token)}),
    "path": lambda s: (f"/{s.session_id}/{s.token}", {}, {}),
    "query": lambda s: (f"?session_id={s.session_id}&bridge_token={s.token}", {}, {}),
    "headers": lambda s: (
        "",
        {"X-Callflow-Session-Id": s.session_id, "X-Callflow-Bridge-Token": s.token},
        {},
    ),
}


async def _open(
    bridge: Bridge, suffix: str, headers: dict[str, str], frame: dict[str, Any]
) -> ClientConnection:
    ws = await connect(bridge.url + suffix, additional_headers=headers, open_timeout=3)
    await ws.send(json.dumps({**HELLO, **frame}))
    return ws


@pytest.mark.parametrize("place", list(PLACEMENTS))
async def test_identifiers_are_accepted_from_each_place_and_where_is_recorded(
    start_bridge: StartBridge, make_session: MakeSession, place: str
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        ws = await _open(bridge, *PLACEMENTS[place](session))
        for _ in range(5):
            await ws.send(bytes(640))
            await asyncio.sleep(0.02)
        admitted = ws.close_code is None and bridge.server.active_calls == 1
        await ws.close(1000, "callee hung up")
        await bridge.settled()

    assert admitted and peer.connections == 1
    stored = bridge.session(session.session_id)
    assert stored.media_ids_found_in == place
    admitted_entries = [e for e in stored.timeline if e.event == "media stream admitted"]
    assert admitted_entries[0].detail == {"ids_found_in": place}
    # The first frame's shape is kept with the claim: keys and types, never a value.
    first = stored.media_first_frame
    assert first["frame"]["event"] == "string[19]"
    assert session.token not in json.dumps(first) and session.session_id not in json.dumps(first)


@pytest.mark.parametrize("place", list(PLACEMENTS))
async def test_a_wrong_token_is_refused_in_every_place(
    start_bridge: StartBridge, make_session: MakeSession, place: str
) -> None:
    session = make_session()
    forged = CallSession(session.session_id, "tok-guessed")
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        ws = await _open(bridge, *PLACEMENTS[place](forged))
        await asyncio.wait_for(ws.wait_closed(), 3)

    assert (ws.close_code, ws.close_reason) == (1008, "unknown session or bad token")
    assert peer.connections == 0 and bridge.signed_urls == 0
    assert bridge.session(session.session_id).media_claimed_hash == ""


@pytest.mark.parametrize("place", ["path", "identifier"])
async def test_a_token_used_in_one_place_cannot_be_reused_from_another(
    start_bridge: StartBridge, make_session: MakeSession, place: str
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        first = await _open(bridge, *PLACEMENTS["top-level"](session))
        await first.send(bytes(640))
        await asyncio.sleep(0.1)
        second = await _open(bridge, *PLACEMENTS[place](session))
        await asyncio.wait_for(second.wait_closed(), 3)
        await first.close(1000, "callee hung up")
        await bridge.settled()

    assert (second.close_code, second.close_reason) == (1008, "unknown session or bad token")
    assert peer.connections == 1


async def test_a_frame_naming_nothing_is_closed_with_a_reason_and_its_shape_is_kept(
    start_bridge: StartBridge, caplog: pytest.LogCaptureFixture
) -> None:
    frame = {**HELLO, "callId": "secret-call-id", "customData": {"attempt": "1"}, "n": 3}
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        ws = await _open(bridge, "?foo=bar", {"X-Other": "x"}, frame)
        await asyncio.wait_for(ws.wait_closed(), 3)

    assert ws.close_code == 1008
    assert "no session_id and bridge_token" in (ws.close_reason or "")
    assert peer.connections == 0
    kept = bridge.store.last_unmatched_media()
    assert kept is not None
    shape = kept["shape"]
    assert shape["frame"] == {
        "event": "string[19]",
        "content-type": "string[20]",
        "callId": "string[14]",
        "customData": {"attempt": "string[1]"},
        "n": "number",
    }
    assert shape["query"] == ["foo"] and "x-other" in shape["headers"]
    assert "secret-call-id" not in caplog.text and "customData" in caplog.text


async def test_a_session_id_without_a_token_keeps_the_shape_on_that_session(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        ws = await _open(bridge, "", {}, {"customData": {"session_id": session.session_id}})
        await asyncio.wait_for(ws.wait_closed(), 3)

    assert (ws.close_code, ws.close_reason) == (1008, "the connected frame carries no bridge_token")
    stored = bridge.session(session.session_id)
    assert stored.media_unmatched_frame["frame"]["customData"] == {"session_id": "string[32]"}
    assert stored.media_claimed_hash == "" and peer.connections == 0


async def test_a_binary_first_frame_is_described_not_guessed(start_bridge: StartBridge) -> None:
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        ws = await connect(bridge.url, open_timeout=3)
        await ws.send(bytes(640))
        await asyncio.wait_for(ws.wait_closed(), 3)

    assert ws.close_code == 1008
    kept = bridge.store.last_unmatched_media()
    assert kept is not None and kept["shape"]["frame"] == "binary[640]"
