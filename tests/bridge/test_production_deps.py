"""The bridge wired as ``python -m bridge`` wires it (``BridgeDeps.from_settings``): the signed URL
from the ElevenLabs REST API and the hang-up through the Infobip Calls API, both served by the
project's HTTP stand-ins under uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from callflow.config import Settings
from callflow.store import SessionStore
from callflow_bridge.deps import BridgeDeps
from callflow_bridge.metrics import BridgeMetrics
from callflow_bridge.server import BridgeServer
from callflow_dev.local.servers import AsgiServer
from callflow_dev.sandbox.elevenlabs import ElevenLabsSandbox
from callflow_dev.sandbox.infobip import InfobipSandbox
from callflow_dev.sandbox.media_leg import run_media_leg

from .conftest import PATH_SECRET, TABLE, MakeSession
from .test_sandbox_dialogue import CALLEE, _agent_config

ELEVENLABS_KEY = "xi-test-key"
INFOBIP_KEY = "ib-test-key"


@pytest.fixture
def providers() -> Iterator[tuple[ElevenLabsSandbox, AsgiServer, InfobipSandbox, AsgiServer]]:
    eleven = ElevenLabsSandbox(ELEVENLABS_KEY, _agent_config())
    infobip = InfobipSandbox(INFOBIP_KEY)
    eleven_server = AsgiServer(eleven.app, name="elevenlabs").start()
    infobip_server = AsgiServer(infobip.app, name="infobip").start()
    try:
        yield eleven, eleven_server, infobip, infobip_server
    finally:
        eleven_server.stop()
        infobip_server.stop()


async def test_bridge_built_from_settings_gets_a_signed_url_and_hangs_up_through_the_api(
    store: SessionStore,
    make_session: MakeSession,
    providers: tuple[ElevenLabsSandbox, AsgiServer, InfobipSandbox, AsgiServer],
) -> None:
    eleven, eleven_server, infobip, infobip_server = providers
    settings = Settings(
        table_name=TABLE,
        bridge_path_secret=SecretStr(PATH_SECRET),
        bridge_host="127.0.0.1",
        bridge_port=0,
        elevenlabs_base_url=eleven_server.url,
        elevenlabs_api_key=SecretStr(ELEVENLABS_KEY),
        elevenlabs_agent_id=eleven.agent_id,
        infobip_base_url=infobip_server.url,
        infobip_api_key=SecretStr(INFOBIP_KEY),
    )
    lines: list[str] = []
    server = BridgeServer(
        settings,
        store,
        BridgeDeps.from_settings(settings),
        metrics=BridgeMetrics("Callflow", lines.append),
    )
    await server.start()
    session = make_session()
    try:
        url = f"ws://127.0.0.1:{server.port}/{PATH_SECRET}"
        result = await run_media_leg(url, session.custom, 16000, CALLEE)
        async with asyncio.timeout(5):
            while server.active_calls:  # noqa: ASYNC110 - the end is recorded after the close
                await asyncio.sleep(0.01)
    finally:
        await server.shutdown(1.0)

    paths = [(r.method, r.path) for r in eleven.requests]
    assert ("GET", "/v1/convai/conversation/get-signed-url") in paths
    assert result.hung_up_by == "bridge"
    hangups = [r for r in infobip.requests if r.path.endswith("/hangup")]
    assert [r.path for r in hangups] == ["/calls/1/calls/infobip-call-1/hangup"]
    stored = store.require(session.session_id)
    # The stand-in never placed this call, so it answers 404: the call is already over.
    assert stored.bridge["hangup"] == "already over"
    assert stored.bridge["end_reason"] == "agent_ended"
    assert stored.conversation_id in eleven.conversations
