"""Draining on SIGTERM, the health route while draining, and the metrics the bridge emits."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from callflow_bridge.__main__ import serve_until_signalled

from .conftest import MakeSession, StartBridge
from .peers import AgentCall, AgentPeer, PhoneLeg, tone


async def test_shutdown_refuses_new_calls_and_closes_live_ones_with_1001_at_the_deadline(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    live, late = make_session(), make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, live.custom)
        caller = asyncio.create_task(leg.silence(3000, until_closed=True))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        draining = asyncio.create_task(bridge.server.shutdown(0.5))
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient(timeout=3) as http:
            health = await http.get(f"http://127.0.0.1:{bridge.server.port}/health")
        with pytest.raises(InvalidStatus) as refused:
            async with connect(bridge.url, open_timeout=3) as ws:
                await ws.send("{}")
        code_while_draining = leg.ws.close_code
        await leg.closed()
        closed_after = time.monotonic() - started
        await draining
        await caller

    assert code_while_draining is None  # still talking during the drain
    assert health.status_code == 503
    assert health.json() == {"status": "draining", "active_calls": 1}
    assert refused.value.response.status_code == 503
    assert leg.ws.close_code == 1001
    assert 0.45 <= closed_after < 1.5
    stored = bridge.session(live.session_id).bridge
    assert stored["end_reason"] == "shutdown"
    assert peer.calls[0].ws.close_code == 1000
    assert bridge.session(late.session_id).bridge == {}


async def test_shutdown_returns_as_soon_as_the_last_call_ends(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def agent(call: AgentCall) -> None:
        await asyncio.sleep(0.3)
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        caller = asyncio.create_task(leg.silence(3000, until_closed=True))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await bridge.server.shutdown(30)
        took = time.monotonic() - started
        await caller

    assert took < 2
    assert bridge.session(session.session_id).bridge["end_reason"] == "agent_ended"


async def test_sigterm_drains_calls_in_flight(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    session = make_session()
    async with AgentPeer() as peer:
        bridge = await start_bridge(peer.url, listen=False)
        service = asyncio.create_task(serve_until_signalled(bridge.server, 0.3))
        async with asyncio.timeout(3):
            while not bridge.server.port:  # noqa: ASYNC110 - the server offers no started event
                await asyncio.sleep(0.01)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        caller = asyncio.create_task(leg.silence(3000, until_closed=True))
        await asyncio.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(service, 5)
        await caller

    assert bridge.server.draining
    assert leg.ws.close_code == 1001
    assert bridge.session(session.session_id).bridge["end_reason"] == "shutdown"


async def test_call_metrics_are_emitted_as_embedded_metric_format(
    start_bridge: StartBridge, make_session: MakeSession
) -> None:
    async def agent(call: AgentCall) -> None:
        # Answer 200 ms after the caller stopped talking.
        await call.wait_for(lambda: len(call.audio) >= 640 * 15)
        await call.send_audio(tone(16000, 200, 2000), event_id=1)
        await asyncio.sleep(0.4)
        await call.ws.close(1000)

    session = make_session()
    async with AgentPeer(agent) as peer:
        bridge = await start_bridge(peer.url)
        leg = await PhoneLeg.open(bridge.url, session.custom)
        await leg.play(tone(16000, 100, 3000))  # 5 frames of speech
        await leg.silence(1000, until_closed=True)
        await leg.closed()
        await bridge.settled()

    docs = bridge.documents()
    for doc in docs:
        (directive,) = doc["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Callflow"
        assert doc["service"] == "callflow-bridge"
        for dimension_set in directive["Dimensions"]:
            assert all(name in doc for name in dimension_set)
        for metric in directive["Metrics"]:
            assert metric["Name"] in doc
    assert any("ActiveCalls" in doc for doc in docs)
    (call_doc,) = [doc for doc in docs if "FramesRelayed" in doc]
    assert call_doc["FramesRelayed"] >= 10 + 5  # caller frames in, agent frames out
    assert 0 < call_doc["ConnectTimeMs"] < 1000
    (latency,) = call_doc["TurnLatencyMs"]
    assert 180 <= latency <= 450
    (end_doc,) = [doc for doc in docs if "CallEnds" in doc]
    assert end_doc["reason"] == "agent_ended" and end_doc["CallEnds"] == 1
    assert end_doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["reason", "service"]]
    stored = bridge.session(session.session_id).bridge["metrics"]
    assert stored["turn_latency_ms"] == [latency]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_python_m_callflow_bridge_serves_health_and_exits_cleanly_on_sigterm() -> None:
    port = _free_port()
    env = {
        **os.environ,
        "CALLFLOW_BRIDGE_PATH_SECRET": "smoke-path",
        "CALLFLOW_BRIDGE_HOST": "127.0.0.1",
        "CALLFLOW_BRIDGE_PORT": str(port),
        "AWS_REGION": "us-east-1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callflow_bridge",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(timeout=1) as http, asyncio.timeout(20):
            while True:
                try:
                    health = await http.get(f"http://127.0.0.1:{port}/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert health.status_code == 200
    assert process.returncode == 0
    logs = [json.loads(line) for line in stderr.decode().splitlines()]
    assert any("draining 0 call(s)" in entry["message"] for entry in logs)
    gauges = [json.loads(line) for line in stdout.decode().splitlines()]
    assert gauges and all(doc["ActiveCalls"] == 0 for doc in gauges)
