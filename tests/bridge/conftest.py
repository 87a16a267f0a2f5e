"""Fixtures: the session table on moto, a session in a call, and a bridge started in-process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto import mock_aws
from pydantic import SecretStr

from callflow.config import Settings
from callflow.models import Session, SessionStatus, hash_token, new_session_id
from callflow.store import SessionStore
from callflow_bridge.deps import BridgeDeps, ToolHandler
from callflow_bridge.metrics import BridgeMetrics
from callflow_bridge.recording import StoreRecording
from callflow_bridge.server import BridgeServer
from callflow_dev.local.aws import create_table

TABLE = "callflow-bridge-tests"
PATH_SECRET = "media-7f3a"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionStore]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        create_table(TABLE, "us-east-1")
        yield SessionStore(TABLE, "us-east-1")


@dataclass
class CallSession:
    session_id: str
    token: str

    @property
    def custom(self) -> dict[str, str]:
        return {"session_id": self.session_id, "bridge_token": self.token, "attempt": "1"}


MakeSession = Callable[..., CallSession]


@pytest.fixture
def make_session(store: SessionStore) -> MakeSession:
    def make(status: SessionStatus = SessionStatus.IN_CALL, **fields: Any) -> CallSession:
        token = f"tok-{new_session_id()}"
        session = Session(
            session_id=new_session_id(),
            module="Leads",
            record_id="4000000012345",
            status=status,
            attempt=1,
            phone="+14155550123",
            call_id="infobip-call-1",
            bridge_token_hash=hash_token(token),
            variables={"First_Name": "Ada", "Company": "Analytical Engines", "score": 7},
            **fields,
        )
        store.create(session)
        return CallSession(session.session_id, token)

    return make


@dataclass
class Bridge:
    server: BridgeServer
    store: SessionStore
    hangups: list[tuple[float, str]] = field(default_factory=list)
    signed_urls: int = 0
    agent_ids: list[str] = field(default_factory=list)
    """The agent id each signed URL was asked for (empty: the configured agent)."""
    emitted: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/{PATH_SECRET}"

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.emitted]

    def session(self, session_id: str) -> Session:
        return self.store.require(session_id)

    async def settled(self, within_s: float = 5.0) -> None:
        """Every call has ended and recorded its end."""
        deadline = time.monotonic() + within_s
        while self.server.active_calls:
            assert time.monotonic() < deadline, "calls still active"
            await asyncio.sleep(0.01)


StartBridge = Callable[..., Awaitable[Bridge]]


@pytest.fixture
async def start_bridge(store: SessionStore) -> AsyncIterator[StartBridge]:
    started: list[Bridge] = []

    async def start(
        agent_url: str,
        *,
        tool_handler: ToolHandler | None = None,
        hangup_result: bool = True,
        listen: bool = True,
        store_recording: StoreRecording | None = None,
        **settings: Any,
    ) -> Bridge:
        config = Settings(
            table_name=TABLE,
            bridge_path_secret=SecretStr(PATH_SECRET),
            bridge_host="127.0.0.1",
            bridge_port=0,
            **settings,
        )
        bridge: Bridge

        async def signed_url(agent_id: str) -> str:
            bridge.signed_urls += 1
            bridge.agent_ids.append(agent_id)
            return agent_url

        async def hangup(call_id: str) -> bool:
            bridge.hangups.append((time.monotonic(), call_id))
            return hangup_result

        emitted: list[str] = []
        server = BridgeServer(
            config,
            store,
            BridgeDeps(
                signed_url=signed_url,
                hangup=hangup,
                tool_handler=tool_handler,
                store_recording=store_recording,
            ),
            metrics=BridgeMetrics(emit=emitted.append),
        )
        bridge = Bridge(server, store, emitted=emitted)
        if listen:
            await server.start()
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        if not bridge.server.draining:
            await bridge.server.shutdown(0.5)
