"""The bridge opens the session's flow's agent with the flow's overrides, not the configured
agent, and uses a prefetched signed URL only when it is for that agent. Served by the ElevenLabs
stand-in, which refuses an unknown agent and an override the agent does not enable."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from callflow.config import Settings
from callflow.store import SessionStore
from callflow_bridge.agent_leg import signed_url_agent, usable_signed_url
from callflow_bridge.deps import BridgeDeps
from callflow_bridge.metrics import BridgeMetrics
from callflow_bridge.server import BridgeServer
from callflow_dev.local.servers import AsgiServer
from callflow_dev.sandbox.elevenlabs import ElevenLabsSandbox
from callflow_dev.sandbox.infobip import InfobipSandbox

from .conftest import PATH_SECRET, TABLE, MakeSession
from .test_prefetched_signed_url import ELEVENLABS_KEY, agent_connected, call, signed_url_requests
from .test_sandbox_dialogue import _agent_config

OVERRIDES = {"agent": {"first_message": "Hello {{First_Name}}, a quick reminder."}}


@pytest.fixture
def eleven() -> Iterator[tuple[ElevenLabsSandbox, Settings]]:
    sandbox = ElevenLabsSandbox(
        ELEVENLABS_KEY, _agent_config(allowed_overrides=frozenset({"agent.first_message"}))
    )
    server = AsgiServer(sandbox.app, name="elevenlabs").start()
    infobip = AsgiServer(InfobipSandbox("ib-test-key").app, name="infobip").start()
    settings = Settings(
        table_name=TABLE,
        bridge_path_secret=SecretStr(PATH_SECRET),
        bridge_host="127.0.0.1",
        bridge_port=0,
        elevenlabs_base_url=server.url,
        elevenlabs_api_key=SecretStr(ELEVENLABS_KEY),
        elevenlabs_agent_id="agent_of_the_default_flow",  # the stand-in does not know it
        infobip_base_url=infobip.url,
        infobip_api_key=SecretStr("ib-test-key"),
    )
    try:
        yield sandbox, settings
    finally:
        server.stop()
        infobip.stop()


@pytest.fixture
async def bridge(
    store: SessionStore, eleven: tuple[ElevenLabsSandbox, Settings]
) -> AsyncIterator[BridgeServer]:
    _, settings = eleven
    server = BridgeServer(
        settings,
        store,
        BridgeDeps.from_settings(settings),
        metrics=BridgeMetrics(emit=lambda line: None),
    )
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown(1.0)


async def test_the_bridge_opens_the_flows_agent_with_its_overrides(
    store: SessionStore,
    make_session: MakeSession,
    eleven: tuple[ElevenLabsSandbox, Settings],
    bridge: BridgeServer,
) -> None:
    sandbox, _ = eleven
    # A URL prefetched for another agent (the flow was changed between dial and answer).
    other = "ws://127.0.0.1:9/v1/convai/conversation?agent_id=agent_other&conversation_signature=x"
    session = make_session(
        flow="reminder",
        agent_id=sandbox.agent_id,
        agent_overrides=OVERRIDES,
        agent_signed_url=other,
        agent_signed_url_at=int(time.time()),
    )

    await call(bridge, session.custom)

    assert signed_url_requests(sandbox) == 1
    assert agent_connected(store, session.session_id)["signed_url"] == "fetched"
    stored = store.require(session.session_id)
    assert stored.bridge["end_reason"] == "agent_ended"
    conversation = sandbox.conversations[stored.conversation_id]
    assert conversation.agent_id == sandbox.agent_id
    assert conversation.overrides == OVERRIDES


def test_a_prefetched_url_is_usable_only_for_its_agent() -> None:
    url = "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_b&conversation_signature=s"
    now = time.time()
    assert signed_url_agent(url) == "agent_b"
    assert usable_signed_url(url, int(now), 600, now, "agent_b") == url
    assert usable_signed_url(url, int(now), 600, now, "agent_a") == ""
    assert usable_signed_url(url, int(now), 600, now) == url  # a session from before flows
