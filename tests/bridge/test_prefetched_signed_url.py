"""The signed URL fetched when the call was placed (the session's ``agent_signed_url``): the bridge
opens the conversation with it while it is fresh, and falls back to a fresh one from ElevenLabs
when it is stale, absent or refused. Served by the ElevenLabs stand-in, whose signatures are
single-use and expire like the real ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr

from callflow.config import Settings
from callflow.providers.elevenlabs.client import ElevenLabsClient
from callflow.store import SessionStore
from callflow_bridge.agent_leg import usable_signed_url
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
SIGNED_URL_REQUEST = ("GET", "/v1/convai/conversation/get-signed-url")


@pytest.fixture
def eleven() -> Iterator[tuple[ElevenLabsSandbox, Settings]]:
    sandbox = ElevenLabsSandbox(ELEVENLABS_KEY, _agent_config())
    infobip = InfobipSandbox("ib-test-key")
    server = AsgiServer(sandbox.app, name="elevenlabs").start()
    infobip_server = AsgiServer(infobip.app, name="infobip").start()
    settings = Settings(
        table_name=TABLE,
        bridge_path_secret=SecretStr(PATH_SECRET),
        bridge_host="127.0.0.1",
        bridge_port=0,
        elevenlabs_base_url=server.url,
        elevenlabs_api_key=SecretStr(ELEVENLABS_KEY),
        elevenlabs_agent_id=sandbox.agent_id,
        infobip_base_url=infobip_server.url,
        infobip_api_key=SecretStr("ib-test-key"),
    )
    try:
        yield sandbox, settings
    finally:
        server.stop()
        infobip_server.stop()


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


def prefetch(settings: Settings) -> str:
    """What the place-call task stores: a URL from the REST API."""
    client = ElevenLabsClient(settings)
    try:
        return client.get_signed_url()
    finally:
        client.close()


async def call(server: BridgeServer, custom: dict[str, str]) -> None:
    url = f"ws://127.0.0.1:{server.port}/{PATH_SECRET}"
    result = await run_media_leg(url, custom, 16000, CALLEE)
    assert result.hung_up_by == "bridge", result
    async with asyncio.timeout(5):
        while server.active_calls:  # noqa: ASYNC110 - the end is recorded after the close
            await asyncio.sleep(0.01)


def signed_url_requests(sandbox: ElevenLabsSandbox) -> int:
    return sum((r.method, r.path) == SIGNED_URL_REQUEST for r in sandbox.requests)


def agent_connected(store: SessionStore, session_id: str) -> dict[str, object]:
    entries = [e for e in store.require(session_id).timeline if e.event == "agent connected"]
    assert len(entries) == 1, entries
    return entries[0].detail


async def test_a_fresh_prefetched_url_opens_the_conversation_without_asking_elevenlabs(
    store: SessionStore,
    make_session: MakeSession,
    eleven: tuple[ElevenLabsSandbox, Settings],
    bridge: BridgeServer,
) -> None:
    sandbox, settings = eleven
    url = prefetch(settings)
    session = make_session(agent_signed_url=url, agent_signed_url_at=int(time.time()) - 60)
    before = signed_url_requests(sandbox)

    await call(bridge, session.custom)

    assert signed_url_requests(sandbox) == before
    assert sandbox.refused == []
    detail = agent_connected(store, session.session_id)
    assert detail["signed_url"] == "prefetched"
    stored = store.require(session.session_id)
    assert stored.conversation_id in sandbox.conversations
    assert stored.bridge["end_reason"] == "agent_ended"


async def test_a_spent_prefetched_url_is_refused_and_a_fresh_one_opens_the_conversation(
    store: SessionStore,
    make_session: MakeSession,
    eleven: tuple[ElevenLabsSandbox, Settings],
    bridge: BridgeServer,
) -> None:
    sandbox, settings = eleven
    url = prefetch(settings)
    spent = make_session(agent_signed_url=url, agent_signed_url_at=int(time.time()))
    await call(bridge, spent.custom)  # uses the signature up
    session = make_session(agent_signed_url=url, agent_signed_url_at=int(time.time()))
    before = signed_url_requests(sandbox)

    await call(bridge, session.custom)

    assert sandbox.refused == [(1008, "Invalid or expired conversation signature")]
    assert signed_url_requests(sandbox) == before + 1
    assert agent_connected(store, session.session_id)["signed_url"] == "fetched"
    stored = store.require(session.session_id)
    assert stored.bridge["end_reason"] == "agent_ended"
    assert stored.conversation_id in sandbox.conversations


async def test_a_stale_prefetched_url_is_not_tried(
    store: SessionStore,
    make_session: MakeSession,
    eleven: tuple[ElevenLabsSandbox, Settings],
    bridge: BridgeServer,
) -> None:
    sandbox, settings = eleven
    url = prefetch(settings)
    old = int(time.time()) - settings.bridge_signed_url_max_age_seconds - 5
    session = make_session(agent_signed_url=url, agent_signed_url_at=old)
    before = signed_url_requests(sandbox)

    await call(bridge, session.custom)

    assert sandbox.refused == []
    assert signed_url_requests(sandbox) == before + 1
    assert agent_connected(store, session.session_id)["signed_url"] == "fetched"


async def test_without_a_prefetched_url_the_bridge_fetches_one(
    store: SessionStore,
    make_session: MakeSession,
    eleven: tuple[ElevenLabsSandbox, Settings],
    bridge: BridgeServer,
) -> None:
    sandbox, _ = eleven
    session = make_session()

    await call(bridge, session.custom)

    assert signed_url_requests(sandbox) == 1
    assert agent_connected(store, session.session_id)["signed_url"] == "fetched"


async def test_an_unreachable_prefetched_url_falls_back_to_a_fresh_one(
    store: SessionStore,
    make_session: MakeSession,
    eleven: tuple[ElevenLabsSandbox, Settings],
    bridge: BridgeServer,
) -> None:
    sandbox, _ = eleven
    # A port nothing listens on: the handshake fails outright.
    session = make_session(
        agent_signed_url="ws://127.0.0.1:9/v1/convai/conversation?conversation_signature=x",
        agent_signed_url_at=int(time.time()),
    )

    await call(bridge, session.custom)

    assert signed_url_requests(sandbox) == 1
    assert agent_connected(store, session.session_id)["signed_url"] == "fetched"
    assert store.require(session.session_id).bridge["end_reason"] == "agent_ended"


@pytest.mark.parametrize(
    ("fetched_ago_s", "usable"),
    [(0, True), (599, True), (601, False), (-30, True), (-120, False)],
)
def test_a_prefetched_url_is_used_only_while_fresh(fetched_ago_s: int, usable: bool) -> None:
    now = 1_800_000_000.0
    url = usable_signed_url(
        "wss://x/y?conversation_signature=s", int(now) - fetched_ago_s, 600, now
    )
    assert (url != "") is usable


def test_no_prefetched_url_is_none_to_use() -> None:
    assert usable_signed_url("", 1_800_000_000, 600, 1_800_000_000.0) == ""
    assert usable_signed_url("wss://x", 0, 600, 1_800_000_000.0) == ""
